"""The prober's transport: httpx's request and response models, sent over aiohttp's client.

The 8x8 client builds httpx requests and reads httpx responses (lib.eightbyeight.client); this
transport carries them. It used to be httpcore's connection pools, whose pure-Python HTTP/1.1
machinery (h11, anyio locks, a pool that revisits every connection at each state change) was
most of a bulk check's CPU: ~1.0 ms per request. aiohttp parses HTTP in C (llhttp) and keeps its
pool in a few dictionaries: 0.63-0.73 ms per request with the rest of the check unchanged
(bench/bulk_check.py, alternating runs on this machine).

Each answer is read whole before it is returned (8x8's answers to our probes are a few KiB),
its body as it came (httpx decodes any Content-Encoding when the client reads it). Nothing is
followed, stored or read from the environment: no redirects, no cookies, no proxy variables.
TLS verification is always on, with httpx's CA bundle (and SSL_CERT_FILE, as httpx honours it).
aiohttp's errors are raised as the httpx errors the client handles, as httpx's own transport
maps httpcore's.
"""

from __future__ import annotations

from functools import lru_cache

import aiohttp
import httpx
from yarl import URL

# aiohttp's error -> httpx's, looked up along the error's MRO (the most specific class first).
_AS_HTTPX: dict[type[BaseException], type[httpx.TransportError]] = {
    aiohttp.ConnectionTimeoutError: httpx.ConnectTimeout,
    aiohttp.ServerTimeoutError: httpx.ReadTimeout,
    aiohttp.ClientConnectorError: httpx.ConnectError,  # refused, no such host, TLS and certificate failures
    aiohttp.ServerDisconnectedError: httpx.RemoteProtocolError,
    aiohttp.ClientPayloadError: httpx.RemoteProtocolError,
    aiohttp.ClientResponseError: httpx.RemoteProtocolError,  # not an HTTP answer
    aiohttp.InvalidURL: httpx.UnsupportedProtocol,
    aiohttp.ClientOSError: httpx.ReadError,  # reset while the answer was awaited
    aiohttp.ClientError: httpx.TransportError,
}


def _as_httpx(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    kind = next((_AS_HTTPX[cls] for cls in type(exc).__mro__ if cls in _AS_HTTPX), httpx.TransportError)
    return kind(str(exc) or type(exc).__name__, request=request)


@lru_cache(maxsize=4096)
def _address(url: str) -> URL:
    """httpx's URL is already encoded; parsed once (a fleet's probes go to a few addresses)."""
    return URL(url, encoded=True)


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's timeouts as aiohttp's: connecting, waiting for a free connection plus connecting,
    and each read. A request's whole time is bounded by the client's per-check deadline."""
    limits = request.extensions.get("timeout") or {}
    connect, pool = limits.get("connect"), limits.get("pool")
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=limits.get("read"),
                                 connect=None if connect is None or pool is None else connect + pool)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` open connections, idle ones kept ``keepalive_expiry`` seconds.
    The session is made on first use, on the event loop that sends (aiohttp binds it there)."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        self._limit, self._keepalive = max_connections, keepalive_expiry
        self._tls = httpx.create_ssl_context()  # verification on; loading the CA list once is enough
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ssl=self._tls,
                                         keepalive_timeout=self._keepalive)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",))  # send only the headers the client chose
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            async with session.request(request.method, _address(str(request.url)), headers=headers,
                                       data=request.content or None, allow_redirects=False,
                                       timeout=_timeout(request)) as answer:
                body = await answer.read()
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, request) from exc
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
