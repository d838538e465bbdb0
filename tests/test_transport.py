"""The prober's transport (lib.eightbyeight.transport): httpx requests carried by aiohttp. Each
test talks to a real server on 127.0.0.1 that answers with raw bytes, so what goes over the
wire and what comes back is exactly what the test says: the headers sent, answers read whole,
nothing followed or kept, and every network failure raised as the httpx error the client
classifies."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from lib.eightbyeight.loop import BackgroundLoop
from lib.eightbyeight.transport import AiohttpTransport

Answer = Callable[[socket.socket, bytes], None]  # what the server does with a connection and its request


def reply(raw: bytes, *, then_close: bool = False) -> Answer:
    def answer(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(raw)
        if then_close:
            conn.shutdown(socket.SHUT_RDWR)
    return answer


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class RawServer:
    """Accepts connections on 127.0.0.1; for each request received calls ``answer``."""

    def __init__(self, answer: Answer) -> None:
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
def loop() -> Iterator[BackgroundLoop]:
    running = BackgroundLoop()  # as the prober runs it
    yield running
    running.close()


def send(loop: BackgroundLoop, *requests: httpx.Request, pause_s: float = 0.0,
         timeout: httpx.Timeout | None = None) -> list[httpx.Response]:
    """Send ``requests`` one after another over one transport, ``pause_s`` apart."""

    async def run() -> list[httpx.Response]:
        transport = AiohttpTransport(max_connections=1)
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


def test_only_the_clients_headers_and_body_are_sent(loop: BackgroundLoop) -> None:
    server = RawServer(reply(OK))
    request = httpx.Request("POST", f"{server.url}/oauth/v2/token?x=a%20b", data={"grant_type": "client_credentials"},
                            headers={"User-Agent": "Switchboard test", "Authorization": "Basic c2VudGluZWw="})
    send(loop, request)
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "POST /oauth/v2/token?x=a%20b HTTP/1.1"
    sent = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
    assert sent["user-agent"] == "Switchboard test"
    assert sent["authorization"] == "Basic c2VudGluZWw="
    assert sent["content-type"] == "application/x-www-form-urlencoded"
    assert "accept-encoding" not in sent and "cookie" not in sent
    assert body == b"grant_type=client_credentials"


def test_a_compressed_answer_is_decoded_once(loop: BackgroundLoop) -> None:
    packed = gzip.compress(b'{"count": 3}')
    server = RawServer(reply(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(packed) + packed))
    (answer,) = send(loop, httpx.Request("GET", server.url))
    assert answer.json() == {"count": 3}


def test_redirects_are_returned_not_followed_and_cookies_not_kept(loop: BackgroundLoop) -> None:
    server = RawServer(reply(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
                             b"Set-Cookie: session=abc\r\nContent-Length: 0\r\n\r\n"))
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


@pytest.mark.parametrize(("server", "raised"), [
    (None, httpx.ConnectError),  # nothing listens
    (reply(b"this is not HTTP\r\n\r\n", then_close=True), httpx.RemoteProtocolError),
    (reply(b"", then_close=True), httpx.RemoteProtocolError),  # hangs up without an answer
    (reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", then_close=True), httpx.RemoteProtocolError),
    (silent, httpx.ReadTimeout),
], ids=["refused", "not-http", "no-answer", "cut-short", "no-reply"])
def test_network_failures_are_raised_as_httpx_errors(loop: BackgroundLoop, server: Answer | None,
                                                     raised: type[httpx.TransportError]) -> None:
    url = RawServer(server).url if server else closed_port()
    request = httpx.Request("GET", url)
    with pytest.raises(raised) as caught:
        send(loop, request, timeout=httpx.Timeout(0.5))
    assert caught.value.request is request
