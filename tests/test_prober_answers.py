"""Issue 21, "prove the class": whatever comes back from 8x8's address, the prober turns every
step of a check into one outcome of the catalogue, with a detail of bounded length and a wait
the schedule can add to a date, and nothing raises out of it.

The real 8x8 client (a Prober, as the console, the CLI and the worker use it) over real
sockets, against tests/fixtures/answers.py's server answering with generated answers: any
status, Retry-After and other headers at their extremes or garbage (non-ASCII too),
Content-Encoding, bodies from empty to past the cap, malformed JSON, HTML, binary, lengths that
lie, answers cut short and slow trickles. Short timeouts keep the slow ones quick. Over each
transport (SWITCHBOARD_8X8_TRANSPORT).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from lib.catalogue import policy
from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, Shape
from lib.eightbyeight.answers import COUNT_MAX, DETAIL_LIMIT, build_probe
from lib.eightbyeight.models import Credentials, ProbeResult, Target
from lib.eightbyeight.prober import Prober
from lib.eightbyeight.retry import CEILING
from tests.fixtures.answers import (
    GOOD_TOKEN,
    Answer,
    AnswerServer,
    Request,
    json_answer,
    status_line,
)
from tests.fixtures.prober import RecordingSleep, over_each_transport

pytest_generate_tests = over_each_transport
pytestmark = pytest.mark.usefixtures("configured_transport")

CAP = policy.MAX_ANSWER_BYTES
READ_TIMEOUT_S = 0.2
TARGET = Target(
    Credentials(None, "answers-client-id", SecretStr("answers-client-secret")),
    {
        "analytics_region": "us",
        "storage_region": "us-east",
        "qm_region": "us-east",
        "chat_region": "us",
        "tenant_id": "tenant-1",
        "pbx": "pbx-1",
    },
)
NET_WORDS = "Switchboard could not read 8x8's answer"  # the client's last resort (EightByEight._timed)


def check(server: AnswerServer, answer_for: Callable[[Request], Answer]) -> list[ProbeResult]:
    """One check of TARGET by a new Prober (nothing carried from one example to the next), with
    short timeouts, and back-off recorded rather than waited for."""
    server.reset(answer_for)
    prober = Prober(server.url, timeout=httpx.Timeout(1.0, read=READ_TIMEOUT_S), deadline_s=1.0, sleep=RecordingSleep())
    results: list[ProbeResult] = []
    try:
        prober.check([TARGET], lambda _t, result: results.append(result))
    finally:
        prober.close()
    return results


def at(where: str, answer: Answer) -> Callable[[Request], Answer]:
    """``answer`` for the token request (``where == "token"``) or for every product probe, a
    good token otherwise."""

    def answer_for(request: Request) -> Answer:
        return answer if (request.path == "/oauth/v2/token") == (where == "token") else GOOD_TOKEN

    return answer_for


def assert_classified(results: list[ProbeResult]) -> None:
    assert sorted(r.product for r in results) == sorted(("token", *TARGET.products))  # each step once
    for result in results:
        assert result.outcome in OUTCOMES
        assert isinstance(result.detail, str) and 0 < len(result.detail) <= DETAIL_LIMIT
        assert NET_WORDS not in result.detail, result.detail  # a rule classified it, not the net
        wait = result.retry_after_s
        assert wait is None or (math.isfinite(wait) and 0 <= wait <= CEILING)
        assert result.http_status is None or 100 <= result.http_status <= 999


# --- the generated answers ------------------------------------------------------------------


def _utf8(max_size: int) -> st.SearchStrategy[bytes]:
    return st.text(max_size=max_size).map(str.encode)


RETRY_AFTERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(str),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda when: format_datetime(when.replace(tzinfo=UTC), usegmt=True)
    ),
    st.text(max_size=40),
    st.sampled_from(["300000000000", "9" * 4400, "Fri, 31 Dec 9999 23:59:59 -2359", "²", ""]),
).map(str.encode)
CODINGS = st.sampled_from(
    [b"gzip", b"deflate", b"br", b"zstd", b"identity", b"IDENTITY", b"", b"identity, gzip", b"x-made-up", b"gzip, gzip"]
)
HEADERS = st.lists(
    st.one_of(
        st.tuples(st.just(b"Retry-After"), RETRY_AFTERS),
        st.tuples(st.just(b"Retry-After"), RETRY_AFTERS),
        st.tuples(st.just(b"Content-Encoding"), CODINGS),
        st.tuples(
            st.just(b"Content-Type"),
            st.sampled_from(
                [
                    b"application/json",
                    b"text/html",
                    b"application/octet-stream",
                    b"application/json; charset=utf-16",
                    b"\xff\xfe",
                ]
            ),
        ),
        st.tuples(
            st.sampled_from(
                [
                    b"X-Tenant-Info",
                    b"Location",
                    b"Set-Cookie",
                    b"Connection",
                    b"Transfer-Encoding",
                    b"Content-Length",
                    b"WWW-Authenticate",
                    b"X-Caf\xc3\xa9",
                ]
            ),
            st.one_of(st.binary(max_size=60), _utf8(60)),
        ),
    ),
    max_size=5,
)
OVERSIZED = (b"X-Long", b"v" * (policy.MAX_HEADER_LINE_BYTES + 1))

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SHAPED = st.one_of(
    JSON,
    st.lists(st.text(max_size=12), max_size=5),  # Cloud Storage's region names
    st.fixed_dictionaries({"data": st.lists(JSON, max_size=3)}),  # Chat's page
    st.fixed_dictionaries(  # a token answer
        {
            "access_token": st.one_of(
                st.text(max_size=30),
                st.from_regex(r"[A-Za-z0-9._~+/-]{4,40}", fullmatch=True),
                st.just("t" * (policy.MAX_TOKEN_CHARS + 1)),
            )
        },
        optional={
            "api_product_list": st.one_of(st.text(max_size=40), st.lists(JSON, max_size=3)),
            "api_product_list_json": JSON,
            "expires_in": JSON,
        },
    ),
    st.fixed_dictionaries({"fault": st.fixed_dictionaries({"faultstring": JSON, "detail": JSON})}),  # Apigee's
    st.fixed_dictionaries({}, optional={"ErrorCode": JSON, "Error": JSON, "message": JSON, "errors": JSON}),
)
BODIES = st.one_of(
    SHAPED.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.just(b"<html><body><h1>Service temporarily unavailable</h1></body></html>"),
    st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth),  # deeper than json recurses
    st.just(b'{"access_token": "cut-sh'),
    st.sampled_from([CAP, CAP + 1, 3 * CAP]).map(lambda size: b"[" + b" " * (size - 2) + b"]"),
)


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    body = draw(BODIES)
    framing = draw(st.sampled_from(["length", "length", "chunked", "close"]))
    piece = draw(st.sampled_from([1 << 16, 64, 1]))
    pieces = -(-len(body) // piece)
    # A trickle, kept short: a few pieces more than a read timeout apart, or up to 40 a little apart.
    pause = draw(st.sampled_from([0.0, 0.0, 0.005, READ_TIMEOUT_S + 0.05]))
    if pause * pieces > 0.5:
        pause = 0.0
    headers = draw(HEADERS) + ([OVERSIZED] if draw(st.integers(0, 9)) == 0 else [])
    return Answer(
        status_line(
            draw(st.one_of(st.integers(100, 599), st.sampled_from([200, 401, 404, 429, 503]))),
            draw(st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=20), _utf8(20))),
        ),
        tuple(headers),
        body,
        framing=framing,  # type: ignore[arg-type]
        declared_length=draw(st.one_of(st.none(), st.none(), st.integers(0, len(body) + 10)))
        if framing == "length"
        else None,
        piece_bytes=piece,
        pause_s=pause,
    )


def _gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([*(packer.compress(bytes(1 << 20)) for _ in range(64)), packer.flush()])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(answer=answers(), where=st.sampled_from(["token", "products"]))
@example(answer=json_answer({}, 429, (b"Retry-After", b"300000000000")), where="products")  # item 4's answer
@example(answer=Answer(body=b"[" * 100_000), where="products")
@example(answer=json_answer({"access_token": "caf\u00e9-token"}), where="token")
def test_every_answer_is_classified_and_nothing_escapes(
    answer_server: AnswerServer, answer: Answer, where: str
) -> None:
    assert_classified(check(answer_server, at(where, answer)))


# --- the answers of issue 21, item 7 -------------------------------------------------------------


def test_a_50_mb_answer_is_an_unexpected_answer_read_no_further(answer_server: AnswerServer) -> None:
    fifty_mb = Answer(body=b"[" * (1 << 20), repeat=50, framing="chunked")
    results = {r.product: r for r in check(answer_server, at("products", fifty_mb))}
    assert_classified(list(results.values()))
    for key in PRODUCT_KEYS:
        assert (results[key].outcome, results[key].http_status) == ("unexpected_response", 200)
        assert results[key].detail == "8x8's answer was larger than 1 MiB; Switchboard stopped reading it."
    sent = answer_server.wait_sent(6)  # the token's answer and five probes'
    assert sum(sent) < 5 * 8 * (1 << 20) < 5 * fifty_mb.size


def test_a_gzip_bomb_is_an_unexpected_answer_never_unpacked(answer_server: AnswerServer) -> None:
    bomb = _gzip_bomb()  # 64 MiB of zeros in 64 KiB
    answer = Answer(status_line(200), ((b"Content-Encoding", b"gzip"), (b"Content-Type", b"application/json")), bomb)
    (token,) = [r for r in check(answer_server, at("token", answer)) if r.product == "token"]
    assert (token.outcome, token.http_status) == ("unexpected_response", 200)
    assert token.detail == "8x8 answered with Content-Encoding: gzip, which Switchboard did not ask for."


# --- issue 22: a good answer's detail says what was read, from which product ------------------

SHAPED_GOOD = {  # a good answer of each shape, holding n things
    Shape.JSON_ARRAY: lambda n: [{"id": i} for i in range(n)],
    Shape.STRING_ARRAY: lambda n: [f"region-{i}" for i in range(n)],
    Shape.COUNT: str,
    Shape.PAGED_DATA: lambda n: {"data": [{"id": i} for i in range(n)]},
}


def good_answers(n: int) -> Callable[[Request], Answer]:
    """A good token, then for each product a good answer of its shape holding ``n`` things."""
    by_path = {build_probe(product, TARGET.settings)[0]: product for product in PRODUCTS.values()}

    def answer_for(request: Request) -> Answer:
        product = by_path.get(request.path.split("?", 1)[0])
        return GOOD_TOKEN if product is None else json_answer(SHAPED_GOOD[product.probe.success](n))

    return answer_for


def test_a_good_answer_says_how_many_of_what_were_read_from_which_product(answer_server: AnswerServer) -> None:
    details = {r.product: r.detail for r in check(answer_server, good_answers(12)) if r.product != "token"}
    assert details == {
        "cc_realtime_analytics": "12 queues read from CC Realtime Analytics.",
        "cc_historical_analytics": "12 report types read from CC Historical Analytics.",
        "cloud_storage": "Regions holding data: " + ", ".join(f"region-{i}" for i in range(12)) + ".",
        "quality_management": "12 users counted by Quality Management.",
        "cc_chat": "12 chat webhooks read from Contact Center Chat.",
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 40))
@example(n=1)
def test_every_good_detail_is_worded_from_the_catalogue(answer_server: AnswerServer, n: int) -> None:
    for result in check(answer_server, good_answers(n)):
        assert result.ok, result
        if result.product == "token":
            continue
        product = PRODUCTS[result.product]
        noun = product.reads.one if n == 1 else product.reads.many
        if product.probe.success is Shape.STRING_ARRAY:
            assert result.detail.lower().startswith(f"{product.reads.many}: ")
        else:
            assert result.detail.startswith(f"{n} {noun} ") and result.detail.endswith(f" {product.name}.")


@pytest.mark.parametrize("body", ["²", "-3", -3, "1" * 16, COUNT_MAX + 1, True, 2.5, " 7 x"])
def test_a_count_is_a_whole_number_of_bounded_size(answer_server: AnswerServer, body: object) -> None:
    results = {r.product: r for r in check(answer_server, at("products", json_answer(body)))}
    assert results["quality_management"].outcome == "unexpected_response"
    assert "not a count (a whole number) as Quality Management returns" in results["quality_management"].detail


@pytest.mark.parametrize(
    ("body", "said"), [(0, "0 users"), (" 7 ", "7 users"), ("1", "1 user"), (COUNT_MAX, f"{COUNT_MAX:,} users")]
)
def test_a_count_in_range_is_read(answer_server: AnswerServer, body: object, said: str) -> None:
    results = {r.product: r for r in check(answer_server, at("products", json_answer(body)))}
    assert results["quality_management"].detail == f"{said} counted by Quality Management."
