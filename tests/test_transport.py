"""The prober's transports (lib.eightbyeight.transport): httpx requests carried by aiohttp or by
httpx's own transport, every test over each (SWITCHBOARD_8X8_TRANSPORT). Each test talks to a
real server on 127.0.0.1 that answers with raw bytes, so what goes over the wire and what comes
back is exactly what the test says: the headers sent, answers read whole up to a cap and never
decoded, nothing followed or kept, and every network failure raised as the httpx error the
client classifies."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path

import httpx
import pytest

from lib.catalogue import policy
from lib.eightbyeight.loop import BackgroundLoop
from lib.eightbyeight.prober import Prober
from lib.eightbyeight.refusals import RefusedAnswer
from lib.eightbyeight.transport import open_transport
from lib.eightbyeight.transport_aiohttp import AiohttpTransport
from lib.eightbyeight.transport_httpx import HttpxTransport
from lib.kernel.config import EIGHTBYEIGHT_TRANSPORTS, eightbyeight_transport, load_settings
from lib.kernel.errors import ConfigError
from tests.fixtures.answers import Answer, AnswerServer, json_answer
from tests.fixtures.prober import over_each_transport

pytest_generate_tests = over_each_transport

ROOT = Path(__file__).resolve().parent.parent
Talk = Callable[[socket.socket, bytes], None]  # what the server does with a connection and its request


def reply(raw: bytes, *, then_close: bool = False) -> Talk:
    def answer(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(raw)
        if then_close:
            conn.shutdown(socket.SHUT_RDWR)

    return answer


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class RawServer:
    """Accepts connections on 127.0.0.1; for each request received calls ``answer``."""

    def __init__(self, answer: Talk) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv(65536)
                except OSError:
                    return
                if not request:
                    return
                self.requests.append(request)
                self.answer(conn, request)


@pytest.fixture
def loop(configured_transport: str) -> Iterator[BackgroundLoop]:
    """Where the configured transport (each in turn) runs."""
    running = BackgroundLoop()  # as the prober runs it
    yield running
    running.close()


def one_connection() -> httpx.AsyncBaseTransport:
    """The configured transport (``configured_transport``), with one connection."""
    return open_transport(eightbyeight_transport(), max_connections=1)


def send(
    loop: BackgroundLoop, *requests: httpx.Request, pause_s: float = 0.0, timeout: httpx.Timeout | None = None
) -> list[httpx.Response]:
    """Send ``requests`` one after another over one transport, ``pause_s`` apart."""

    async def run() -> list[httpx.Response]:
        transport = one_connection()
        answers = []
        try:
            for i, request in enumerate(requests):
                if timeout is not None:
                    request.extensions["timeout"] = timeout.as_dict()
                if i:
                    await asyncio.sleep(pause_s)
                answers.append(await transport.handle_async_request(request))
        finally:
            await transport.aclose()
        return answers

    return loop.run(run(), timeout=30)


def test_a_connection_the_server_closed_is_not_reused(loop: BackgroundLoop) -> None:
    server = RawServer(reply(OK, then_close=True))  # promises keep-alive, then hangs up
    first, second = send(loop, httpx.Request("GET", server.url), httpx.Request("GET", server.url), pause_s=0.2)
    assert [first.status_code, second.status_code] == [200, 200]
    assert server.accepted == 2  # the second request opened a new connection instead of failing on the old


def test_a_kept_alive_connection_is_reused(loop: BackgroundLoop) -> None:
    server = RawServer(reply(OK))
    answers = send(loop, httpx.Request("GET", server.url), httpx.Request("GET", server.url))
    assert [a.text for a in answers] == ["ok", "ok"]
    assert server.accepted == 1


def test_only_the_clients_headers_and_body_are_sent(loop: BackgroundLoop, answer_server: AnswerServer) -> None:
    """The answer server reads each request whole (httpcore writes the head and the body apart)."""
    answer_server.reset(json_answer({}))
    request = httpx.Request(
        "POST",
        f"{answer_server.url}/oauth/v2/token?x=a%20b",
        data={"grant_type": "client_credentials"},
        headers={"User-Agent": "Switchboard test", "Authorization": "Basic c2VudGluZWw="},
    )
    send(loop, request)
    (sent,) = answer_server.requests
    assert (sent.method, sent.path) == ("POST", "/oauth/v2/token?x=a%20b")
    assert sent.headers["user-agent"] == "Switchboard test"
    assert sent.headers["authorization"] == "Basic c2VudGluZWw="
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "accept-encoding" not in sent.headers and "cookie" not in sent.headers
    assert sent.body == b"grant_type=client_credentials"


# --- what an answer may be: issue 21, item 7 ------------------------------------------------

MIB = 1 << 20
FIFTY_MB = Answer(body=b"x" * MIB, repeat=50)


@cache
def gzip_bomb(unpacked_mib: int) -> bytes:
    """``unpacked_mib`` MiB of zeros, gzip-compressed (about a thousandth of that)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    return b"".join([*(packer.compress(zeros) for _ in range(unpacked_mib)), packer.flush()])


def refused(loop: BackgroundLoop, server: AnswerServer, answer: Answer) -> RefusedAnswer:
    """The transport's refusal of ``answer``; while it came, the process never held 8 MiB more
    than before (Python's allocations in every thread, the transport's included)."""
    server.reset(answer)
    request = httpx.Request("GET", f"{server.url}/cloud-storage")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(RefusedAnswer) as caught:
            send(loop, request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.request is request
    assert peak - before < 8 * MIB
    return caught.value


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_an_answer_larger_than_the_cap_is_refused_and_read_no_further(
    loop: BackgroundLoop, answer_server: AnswerServer, framing: str
) -> None:
    """A 50 MB answer, its length declared, chunked or to the end of the connection: the
    server got a few MiB at most out before the transport hung up."""
    error = refused(loop, answer_server, replace(FIFTY_MB, framing=framing))  # type: ignore[arg-type]
    assert str(error) == "8x8's answer was larger than 1 MiB; Switchboard stopped reading it."
    assert error.status == 200
    (sent,) = answer_server.wait_sent(1)  # the server noticed the hang-up
    assert sent < 8 * MIB < FIFTY_MB.size  # 0.25-1.3 MiB on a quiet machine


def test_an_answer_of_exactly_the_cap_is_read(loop: BackgroundLoop, answer_server: AnswerServer) -> None:
    answer_server.reset(Answer(body=b"y" * policy.MAX_ANSWER_BYTES, framing="chunked", piece_bytes=4096))
    (answer,) = send(loop, httpx.Request("GET", answer_server.url))
    assert len(answer.content) == policy.MAX_ANSWER_BYTES


@pytest.mark.parametrize("coding", [b"gzip", b"deflate", b"br", b"zstd", b"x-made-up", b"identity, gzip", b"GZIP"])
def test_an_answer_in_an_encoding_not_asked_for_is_refused_unread(
    loop: BackgroundLoop, answer_server: AnswerServer, coding: bytes
) -> None:
    """Nothing is decoded: this gzip answer of 1/4 MiB would unpack to 256 MiB."""
    bomb = gzip_bomb(256)
    assert len(bomb) < MIB / 2
    answer = json_answer({}, 200, (b"Content-Encoding", coding))
    error = refused(loop, answer_server, replace(answer, body=bomb))
    assert str(error) == (f"8x8 answered with Content-Encoding: {coding.decode()}, which Switchboard did not ask for.")


@pytest.mark.parametrize("coding", [b"identity", b"", b"Identity"])
def test_an_identity_encoded_answer_is_read(loop: BackgroundLoop, answer_server: AnswerServer, coding: bytes) -> None:
    answer_server.reset(json_answer({"count": 3}, 200, (b"Content-Encoding", coding)))
    (answer,) = send(loop, httpx.Request("GET", answer_server.url))
    assert answer.json() == {"count": 3}


def test_after_a_refused_answer_the_next_request_is_answered(loop: BackgroundLoop, answer_server: AnswerServer) -> None:
    """What was left unread goes with its connection: nothing of it is taken for the next answer."""
    big, small = replace(FIFTY_MB, framing="chunked"), json_answer(["uk"])
    answer_server.reset(lambda request: big if request.path == "/big" else small)

    async def run() -> tuple[type[BaseException] | None, list[object]]:
        transport, raised = one_connection(), None
        try:
            try:
                await transport.handle_async_request(httpx.Request("GET", f"{answer_server.url}/big"))
            except RefusedAnswer as exc:
                raised = type(exc)
            answer = await transport.handle_async_request(httpx.Request("GET", f"{answer_server.url}/small"))
            return raised, answer.json()
        finally:
            await transport.aclose()

    assert loop.run(run(), timeout=30) == (RefusedAnswer, ["uk"])


@pytest.mark.parametrize(
    "headers",
    [
        ((b"X-Long", b"v" * (policy.MAX_HEADER_LINE_BYTES + 1)),),
        tuple((b"X-Many-%d" % i, b"v") for i in range(policy.MAX_HEADERS + 1)),
    ],
    ids=["a-header-too-long", "too-many-headers"],
)
def test_headers_beyond_the_limits_are_refused(
    loop: BackgroundLoop, answer_server: AnswerServer, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    error = refused(loop, answer_server, Answer(headers=headers, body=b"[]"))
    assert str(error).startswith("8x8's answer is not HTTP that Switchboard reads:")
    assert error.status is None


def test_redirects_are_returned_not_followed_and_cookies_not_kept(loop: BackgroundLoop) -> None:
    server = RawServer(
        reply(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
            b"Set-Cookie: session=abc\r\nContent-Length: 0\r\n\r\n"
        )
    )
    first, _ = send(loop, httpx.Request("GET", server.url), httpx.Request("GET", server.url))
    assert first.status_code == 302 and first.headers["location"] == "http://127.0.0.1:9/elsewhere"
    assert len(server.requests) == 2  # nothing went to the Location
    assert b"cookie" not in server.requests[1].lower()


def test_proxy_variables_are_ignored(loop: BackgroundLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    server = RawServer(reply(OK))
    (answer,) = send(loop, httpx.Request("GET", server.url))
    assert answer.text == "ok"


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def silent(conn: socket.socket, _request: bytes) -> None:
    threading.Event().wait(5)  # reads the request and never answers


@pytest.mark.parametrize(
    ("server", "raised"),
    [
        (None, httpx.ConnectError),  # nothing listens
        (reply(b"", then_close=True), httpx.RemoteProtocolError),  # hangs up without an answer
        (reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", then_close=True), httpx.RemoteProtocolError),
        (silent, httpx.ReadTimeout),
    ],
    ids=["refused", "no-answer", "cut-short", "no-reply"],
)
def test_network_failures_are_raised_as_httpx_errors(
    loop: BackgroundLoop, server: Talk | None, raised: type[httpx.TransportError]
) -> None:
    url = RawServer(server).url if server else closed_port()
    request = httpx.Request("GET", url)
    with pytest.raises(raised) as caught:
        send(loop, request, timeout=httpx.Timeout(0.5))
    assert caught.value.request is request


def test_an_answer_that_is_not_http_is_refused_or_a_protocol_error(
    loop: BackgroundLoop, configured_transport: str
) -> None:
    """aiohttp's parser refuses it as an answer (an unexpected answer); h11 fails the connection
    (a network error). Either way nothing of it is read as an answer."""
    request = httpx.Request("GET", RawServer(reply(b"this is not HTTP\r\n\r\n", then_close=True)).url)
    raised = {"aiohttp": RefusedAnswer, "httpx": httpx.RemoteProtocolError}[configured_transport]
    with pytest.raises(raised) as caught:
        send(loop, request, timeout=httpx.Timeout(0.5))
    assert caught.value.request is request


# --- the switch: SWITCHBOARD_8X8_TRANSPORT ---------------------------------------------------

CARRIERS = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}


def test_the_configured_transport_carries_a_probers_requests(configured_transport: str) -> None:
    assert set(CARRIERS) == set(EIGHTBYEIGHT_TRANSPORTS)
    prober = Prober(RawServer(reply(OK)).url)  # as the console, the worker and the CLI make one
    try:
        assert type(prober.client.transport) is CARRIERS[configured_transport]
    finally:
        prober.close()
    assert load_settings().eightbyeight_transport == configured_transport


@pytest.mark.parametrize("value", ["curl", "AIOHTTP2", "httpx2"])
def test_an_unknown_transport_is_refused_naming_the_variable_and_the_choices(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_8X8_TRANSPORT", value)
    for make in (load_settings, lambda: Prober("http://127.0.0.1:9")):
        with pytest.raises(ConfigError) as caught:
            make()
        assert str(caught.value).startswith(f"SWITCHBOARD_8X8_TRANSPORT must be aiohttp or httpx, not '{value}'")


@pytest.mark.parametrize(("value", "kind"), [("", "aiohttp"), (" HTTPX ", "httpx"), ("Aiohttp", "aiohttp")])
def test_the_transport_setting_is_read_loosely(value: str, kind: str) -> None:
    assert eightbyeight_transport({"SWITCHBOARD_8X8_TRANSPORT": value}) == kind
    assert eightbyeight_transport({}) == "aiohttp"  # the default


def test_the_httpx_transport_never_imports_aiohttp() -> None:
    """The fallback holds even when aiohttp itself would not import."""
    probe = (
        "import sys\nfrom lib.eightbyeight.prober import Prober\n"
        "Prober('http://127.0.0.1:9').close()\nprint('aiohttp' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
        env={**os.environ, "SWITCHBOARD_8X8_TRANSPORT": "httpx"},
    )
    assert done.stdout.strip() == "False"
