"""One delivery attempt against real receivers on 127.0.0.1: what each answer means for the
Attempt (2xx, 500, 410, 429/503 with Retry-After, a receiver that hangs), the signed webhook a
reference verifier accepts, the URL checks an admin meets, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import IPv4Address, ip_address

import jsonschema
import pytest
from standardwebhooks.webhooks import Webhook

from lib.kernel.errors import ValidationError
from lib.notify.models import Destination
from lib.notify.posting import MAX_RETRY_AFTER, retry_after
from lib.notify.send import check_destination, deliver
from lib.notify.signing import new_secret
from lib.notify.ssrf import Allow
from tests.fixtures.notify import LOCAL, sample_event, tls_contexts
from tests.fixtures.receiver import Answer, Receiver, Trickler, unanswered
from tests.test_notify_payloads import schema


def test_a_signed_webhook_is_delivered_and_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    with Receiver(Answer(204)) as receiver:
        attempt = deliver(Destination("webhook", receiver.url("/in?tenant=1"), secret), sample_event(), allow=LOCAL)
    assert (attempt.delivered, attempt.status, attempt.error, attempt.refused) == (True, 204, None, False)
    assert attempt.duration_ms >= 0
    [request] = receiver.received
    assert request.path == "/in?tenant=1" and request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "evt_2f1c9a"
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "check.failed" and payload["data"]["connection"] == "Acme EU"


def test_slack_and_teams_receive_their_documented_shapes() -> None:
    with Receiver(Answer(200)) as receiver:
        for kind in ("slack", "teams"):
            assert deliver(Destination(kind, receiver.url()), sample_event(), allow=LOCAL).delivered
    slack, teams = (json.loads(r.body) for r in receiver.received)
    jsonschema.validate(slack, schema("slack_message"))
    jsonschema.validate(teams, schema("teams_message"))
    assert "webhook-signature" not in receiver.received[0].headers


def test_a_500_is_a_failure_to_retry() -> None:
    with Receiver(Answer(500)) as receiver:
        attempt = deliver(Destination("slack", receiver.url()), sample_event(), allow=LOCAL)
    assert (attempt.delivered, attempt.status, attempt.gone, attempt.refused, attempt.retry_after) == (
        False,
        500,
        False,
        False,
        None,
    )
    assert attempt.error == "127.0.0.1 answered HTTP 500: a failure on the receiver's side."


def test_a_410_says_the_endpoint_is_gone() -> None:
    with Receiver(Answer(410)) as receiver:
        attempt = deliver(Destination("teams", receiver.url()), sample_event(), allow=LOCAL)
    assert (attempt.delivered, attempt.status, attempt.gone) == (False, 410, True)
    assert "no longer takes messages. Replace the channel's URL" in attempt.error


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "7", 7.0),
        (503, "0", 0.0),
        (502, "86400", MAX_RETRY_AFTER),  # capped
        (504, "soon", None),  # unreadable: no figure
    ],
)
def test_slow_down_answers_carry_retry_after(status: int, header: str, expected: float | None) -> None:
    with Receiver(Answer(status, {"Retry-After": header})) as receiver:
        attempt = deliver(Destination("slack", receiver.url()), sample_event(), allow=LOCAL)
    assert (attempt.delivered, attempt.status, attempt.retry_after) == (False, status, expected)


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    with Receiver(Answer(503, {"Retry-After": when})) as receiver:
        attempt = deliver(Destination("slack", receiver.url()), sample_event(), allow=LOCAL)
    assert attempt.retry_after is not None and 110 <= attempt.retry_after <= 120
    assert "the receiver is unavailable for now; it asked to wait" in attempt.error


def test_a_hanging_receiver_times_out() -> None:
    with Receiver(Answer(hang=True)) as receiver:
        started = time.monotonic()
        attempt = deliver(Destination("slack", receiver.url()), sample_event(), allow=LOCAL, timeout=0.5)
        elapsed = time.monotonic() - started
    assert (attempt.delivered, attempt.status, attempt.refused) == (False, None, False)
    assert attempt.error == "127.0.0.1 did not answer within 0.5 s."
    assert elapsed < 5 and 400 <= attempt.duration_ms < 5000


TRICKLED = {  # answers that would take a minute at a byte every 0.1 s
    "http": ("slack", b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 600 + b"\r\nContent-Length: 0\r\n\r\n"),
    "smtp greeting": ("email", b"220-" + b"a" * 600 + b"\r\n220 ready\r\n"),
    "smtp reply cut mid-line": ("email", b"421 " + b"a" * 600 + b"\r\n"),  # not an SMTP 421
}


@pytest.mark.parametrize("case", TRICKLED)
def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout(case: str) -> None:
    """Each byte restarts a socket's timeout; the attempt as a whole still ends on time, so it
    stays inside the delivery lease and no other worker sends the event again."""
    kind, answer = TRICKLED[case]
    with Trickler(answer, every=0.1) as receiver:
        url = (
            f"smtp://127.0.0.1:{receiver.port}?from=alerts@example.com&to=ops@example.com"
            if kind == "email"
            else f"http://127.0.0.1:{receiver.port}/hook"
        )
        attempt = deliver(Destination(kind, url), sample_event(), allow=LOCAL, timeout=1.0)
    assert (attempt.delivered, attempt.status, attempt.refused) == (False, None, False)
    assert attempt.error == "127.0.0.1 did not answer within 1 s."
    assert 900 <= attempt.duration_ms < 3000, attempt.duration_ms


def test_a_trickle_over_tls_is_cut_off_too() -> None:
    server_tls, client_tls = tls_contexts("hooks.test")
    with Trickler(TRICKLED["http"][1], every=0.1, tls=server_tls) as receiver:
        attempt = deliver(
            Destination("teams", f"https://hooks.test:{receiver.port}/hook"),
            sample_event(),
            allow=Allow.of(["hooks.test"]),
            timeout=1.0,
            ssl_context=client_tls,
            resolve=lambda host, port: [ip_address("127.0.0.1")],
        )
    assert (attempt.delivered, attempt.error) == (False, "hooks.test did not answer within 1 s.")
    assert 900 <= attempt.duration_ms < 3000, attempt.duration_ms


def test_an_address_that_drops_packets_leaves_time_for_the_next_one() -> None:
    with Receiver(Answer(204)) as receiver, unanswered("127.0.0.2", receiver.port):
        attempt = deliver(
            Destination("slack", receiver.url(host="hooks.test")),
            sample_event(),
            allow=Allow.of(["hooks.test"]),
            timeout=2.0,
            resolve=lambda host, port: [ip_address("127.0.0.2"), ip_address("127.0.0.1")],
        )
    assert (attempt.delivered, attempt.status) == (True, 204), attempt.error
    assert 900 <= attempt.duration_ms < 2000, attempt.duration_ms  # the first address had half the time


def test_a_name_that_takes_too_long_to_look_up_ends_the_attempt_on_time() -> None:
    test_over = threading.Event()

    def slow(host: str, port: int) -> list[IPv4Address]:
        test_over.wait(30)  # the lookup hangs for as long as the test runs
        return [ip_address("127.0.0.1")]  # type: ignore[list-item]

    try:
        attempt = deliver(
            Destination("slack", "https://hooks.test/x"),
            sample_event(),
            allow=Allow.of(["hooks.test"]),
            timeout=0.5,
            resolve=slow,
        )
    finally:
        test_over.set()
    assert attempt.error == "Looking up hooks.test took too long; check the host name and this server's DNS."
    assert attempt.duration_ms < 2000


def test_nothing_listening_is_a_failure_not_an_exception() -> None:
    with Receiver() as receiver:
        url = receiver.url()
    attempt = deliver(Destination("teams", url), sample_event(), allow=LOCAL)
    assert attempt.error == "The connection to 127.0.0.1 failed: connection refused."


def test_the_default_timeout_is_ten_seconds() -> None:
    assert deliver.__kwdefaults__["timeout"] == 10.0


def test_a_webhook_without_a_valid_secret_is_refused() -> None:
    with Receiver() as receiver:
        for secret in (None, "not-a-secret"):
            attempt = deliver(Destination("webhook", receiver.url(), secret), sample_event(), allow=LOCAL)
            assert attempt.refused and attempt.error.startswith("Signing secret:")
    assert receiver.received == []


@pytest.mark.parametrize("kind", ["webhook", "slack", "teams"])
def test_a_stored_url_with_a_non_ascii_path_is_a_refused_attempt_not_an_exception(kind: str) -> None:
    """Issue 21, item 5: httpcore raised TypeError for such a URL, at every attempt."""
    with Receiver() as receiver:
        attempt = deliver(Destination(kind, receiver.url("/hoök?team=ü"), new_secret()), sample_event(), allow=LOCAL)
    assert (attempt.delivered, attempt.refused) == (False, True)
    assert attempt.error.startswith("URL: must write its path and query in ASCII: percent-encode")
    assert receiver.received == []


def test_an_unexpected_exception_is_a_failed_attempt_told_by_its_class_only(caplog: pytest.LogCaptureFixture) -> None:
    def broken(host: str, port: int) -> list[IPv4Address]:
        raise RuntimeError("SENTINEL-value-the-exception-quoted")

    caplog.set_level(logging.DEBUG, logger="lib.notify")
    attempt = deliver(
        Destination("slack", "https://hooks.slack.com/services/T0/B0/x"), sample_event(), allow=Allow(), resolve=broken
    )
    assert (attempt.delivered, attempt.refused, attempt.status) == (False, False, None)
    assert attempt.error.startswith("The attempt ended on an unexpected error (RuntimeError).")
    [logged] = [r for r in caplog.records if r.name.startswith("lib.notify")]  # once
    assert logged.levelno == logging.WARNING and logged.exc_info is None and "RuntimeError" in logged.getMessage()
    assert all("SENTINEL" not in text for text in (attempt.error, logged.getMessage(), str(logged.__dict__)))


@pytest.mark.parametrize(
    ("kind", "url", "message"),
    [
        ("webhook", "ftp://hooks.example.com/x", "must be an https:// address; the receiver's admin"),
        ("slack", "hooks.slack.com/services/T/B/x", "copy it from the Slack app's Incoming Webhooks"),
        ("teams", "", "copy it from the Teams workflow"),
        ("webhook", "http://hooks.example.com/x", "must start with https://. Plain http://"),
        ("webhook", "https://user:pw@hooks.example.com/x", "must not contain a user name or password"),
        ("webhook", "https://hooks.example.com:99999/x", "has a port that is not a number"),
        ("webhook", "https://hooks.example.com:0/x", "has a port that is not a number"),
        ("email", "smtp://mail.example.com:0?from=a@example.com&to=b@example.com", "has a port that is not a number"),
        ("email", "smtp://mail.example.com?from=a@example.com&to=jörg@example.com", "needs recipient addresses"),
        ("webhook", "https://hööks.example.com/x", "in ASCII (the xn-- form"),
        ("webhook", "https://169.254.169.254/latest", "a link-local address"),
        ("email", "https://mail.example.com", "The mail server's URL must look like smtp://"),
        ("email", "smtp://u:pw@mail.example.com?from=a@example.com&to=b@example.com", "must not contain the password"),
        ("email", "smtp://mail.example.com?to=b@example.com", "needs one sender address as from="),
        ("email", "smtp://mail.example.com?from=a@example.com", "needs recipient addresses as to="),
        ("email", "smtp://mail.example.com?from=a@example.com&to=nobody", "needs recipient addresses"),
        (
            "email",
            "smtp://mail.example.com?from=a@example.com&to=b@example.com&cc=c@example.com",
            "has cc, which mail channels do not use",
        ),
        ("email", "smtp://10.0.0.25?from=a@example.com&to=b@example.com", "10.0.0.25, a private address"),
    ],
)
def test_a_url_that_can_never_work_is_refused_when_added(kind: str, url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(".", r"\.")) as refused:
        check_destination(kind, url, allow=Allow())
    assert [(e.field, e.label) for e in refused.value.errors] == [("url", "URL")]


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("slack", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("teams", "https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x"),
        ("webhook", "https://hooks.example.com/switchboard"),
        (
            "email",
            (
                "smtp://alerts%40example.com@mail.example.com:587?from=alerts@example.com"
                "&to=ops@example.com,oncall@example.com"
            ),
        ),
    ],
)
def test_good_urls_pass(kind: str, url: str) -> None:
    check_destination(kind, url, allow=Allow())


def test_no_secret_reaches_the_error_the_log_or_the_payload(caplog: pytest.LogCaptureFixture) -> None:
    """Sentinels in every secret place: the webhook secret, the URL's path and query (Slack and
    Teams URLs are credentials) and the SMTP password. None may show up anywhere we write."""
    caplog.set_level(logging.DEBUG)
    webhook_secret = new_secret()
    path = "/services/T000/B000/SENTINELSECRETPATH?sig=SENTINELSECRETQUERY"
    sentinels = [
        webhook_secret,
        webhook_secret.removeprefix("whsec_"),
        "SENTINELSECRETPATH",
        "SENTINELSECRETQUERY",
        "SENTINELSMTPPASSWORD",
    ]
    event = sample_event()
    attempts = []
    with Receiver(
        Answer(200),
        Answer(500),
        Answer(302, {"Location": "http://10.0.0.1/x"}),
        Answer(410),
        Answer(429, {"Retry-After": "3"}),
        Answer(hang=True),
    ) as receiver:
        for kind in ("webhook", "slack", "teams", "webhook", "slack", "teams"):
            destination = Destination(kind, receiver.url(path), webhook_secret)
            attempts.append(deliver(destination, event, allow=LOCAL, timeout=0.5))
            assert webhook_secret not in repr(destination) and "SENTINEL" not in repr(destination)
        bodies = [r.body.decode() for r in receiver.received]
        signatures = [r.headers.get("webhook-signature", "") for r in receiver.received]
    # Refused and failing ones too: a URL a person mistyped, an unreachable host.
    attempts.append(deliver(Destination("slack", "http://hooks.slack.example" + path), event, allow=Allow()))
    attempts.append(deliver(Destination("slack", "https://hooks.slack.invalid" + path), event, allow=Allow()))
    attempts.append(
        deliver(
            Destination(
                "email", "smtp://alerts@127.0.0.1:1?from=a@example.com&to=b@example.com", "SENTINELSMTPPASSWORD"
            ),
            event,
            allow=LOCAL,
        )
    )
    assert [a.delivered for a in attempts] == [True] + [False] * 8
    assert len(bodies) == 6 and all(s.startswith("v1,") for s in signatures[::3])
    written = [a.error or "" for a in attempts] + bodies + [r.getMessage() for r in caplog.records]
    written += [str(r.__dict__) for r in caplog.records]
    assert caplog.records, "the attempts were logged"
    for sentinel in sentinels:
        assert all(sentinel not in text for text in written), sentinel
    assert all("/services/" not in (a.error or "") for a in attempts)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("²", None),
        ("9" * 400, MAX_RETRY_AFTER),
        ("Fri, 31 Dec 9999 23:59:59 -2359", MAX_RETRY_AFTER),
        ("garbage", None),
        ("30", 30.0),
    ],
)
def test_a_receivers_retry_after_is_a_bounded_wait_or_none(value: str, seconds: float | None) -> None:
    """ "²" passed str.isdigit and broke float(): the delivered message was sent again."""
    assert retry_after(value) == seconds
