"""The default transport: httpx's request and response models, sent over aiohttp's client
(the rules it keeps: lib.eightbyeight.transport).

It used to be httpcore's connection pools, whose pure-Python HTTP/1.1 machinery (h11, anyio
locks, a pool that revisits every connection at each state change) was most of a bulk check's
CPU: ~1.0 ms per request. aiohttp parses HTTP in C (llhttp) and keeps its pool in a few
dictionaries: 0.63-0.73 ms per request with the rest of the check unchanged (bench/bulk_check.py,
alternating runs on this machine). aiohttp's errors are raised as the httpx errors the client
handles, as httpx's own transport maps httpcore's.
"""

from __future__ import annotations

from functools import lru_cache

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from lib.catalogue import policy
from lib.eightbyeight.refusals import encoded, not_http, too_large, unasked_encoding

# aiohttp's error -> httpx's, looked up along the error's MRO (the most specific class first).
_AS_HTTPX: dict[type[BaseException], type[httpx.TransportError]] = {
    aiohttp.ConnectionTimeoutError: httpx.ConnectTimeout,
    aiohttp.ServerTimeoutError: httpx.ReadTimeout,
    aiohttp.ClientConnectorError: httpx.ConnectError,  # refused, no such host, TLS and certificate failures
    aiohttp.ServerDisconnectedError: httpx.RemoteProtocolError,
    aiohttp.ClientPayloadError: httpx.RemoteProtocolError,
    aiohttp.InvalidURL: httpx.UnsupportedProtocol,
    aiohttp.ClientOSError: httpx.ReadError,  # reset while the answer was awaited
    aiohttp.ClientError: httpx.TransportError,
}


def _as_httpx(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    if isinstance(exc, aiohttp.ClientResponseError) and isinstance(exc.__cause__, HttpProcessingError):
        # the parser refused the answer's head: not HTTP, or beyond the limits
        return not_http(request, exc.__cause__.message)
    kind = next((_AS_HTTPX[cls] for cls in type(exc).__mro__ if cls in _AS_HTTPX), httpx.TransportError)
    return kind(str(exc) or type(exc).__name__, request=request)


async def _read_capped(answer: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` bytes (nothing more is read)."""
    if answer.content_length is not None and answer.content_length > limit:
        return None
    chunks, size = [], 0
    while chunk := await answer.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@lru_cache(maxsize=4096)
def _address(url: str) -> URL:
    """httpx's URL is already encoded; parsed once (a fleet's probes go to a few addresses)."""
    return URL(url, encoded=True)


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's timeouts as aiohttp's: connecting, waiting for a free connection plus connecting,
    and each read. A request's whole time is bounded by the client's per-check deadline."""
    limits = request.extensions.get("timeout") or {}
    connect, pool = limits.get("connect"), limits.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        sock_connect=connect,
        sock_read=limits.get("read"),
        connect=None if connect is None or pool is None else connect + pool,
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` open connections, idle ones kept ``keepalive_expiry`` seconds.
    The session is made on first use, on the event loop that sends (aiohttp binds it there)."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        self._limit, self._keepalive = max_connections, keepalive_expiry
        self._tls = httpx.create_ssl_context()  # verification on; loading the CA list once is enough
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=0, ssl=self._tls, keepalive_timeout=self._keepalive
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),  # send only the headers the client chose
            max_line_size=policy.MAX_HEADER_LINE_BYTES,
            max_field_size=policy.MAX_HEADER_LINE_BYTES,
            max_headers=policy.MAX_HEADERS,
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            async with session.request(
                request.method,
                _address(str(request.url)),
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                timeout=_timeout(request),
            ) as answer:
                body = await self._body(answer, request)
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, request) from exc
        # httpx decodes the body as it builds the Response: only identity gets this far.
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request)

    async def _body(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> bytes:
        """The answer's body; RefusedAnswer for one in an encoding we did not ask for (not read
        at all) or longer than the cap (read no further)."""
        encoding = unasked_encoding(answer.headers.getall("Content-Encoding", ()))
        if encoding is None:
            body = await _read_capped(answer, policy.MAX_ANSWER_BYTES)
            if body is not None:
                return body
            refusal = too_large(request, answer.status)
        else:
            refusal = encoded(request, answer.status, encoding)
        answer.close()  # what is left unread goes with the connection, never back to the pool
        raise refusal

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
