"""The prober's transport: httpx's request and response models, sent over aiohttp's client.

The 8x8 client builds httpx requests and reads httpx responses (lib.eightbyeight.client); this
transport carries them. It used to be httpcore's connection pools, whose pure-Python HTTP/1.1
machinery (h11, anyio locks, a pool that revisits every connection at each state change) was
most of a bulk check's CPU: ~1.0 ms per request. aiohttp parses HTTP in C (llhttp) and keeps its
pool in a few dictionaries: 0.63-0.73 ms per request with the rest of the check unchanged
(bench/bulk_check.py, alternating runs on this machine).

Each answer is read whole before it is returned, but only up to a cap (8x8's answers to our
probes are a few KiB; lib.catalogue.policy.MAX_ANSWER_BYTES, and limits on the status line and
headers): reading stops there and the answer is refused with RefusedAnswer, which the client
reports as an unexpected answer. So is an answer in a Content-Encoding other than identity: we
ask for none, and decoding one (a 777 KB gzip answer can unpack to gigabytes) is never tried.
An answer that is not HTTP the parser accepts is refused the same way. Nothing is followed,
stored or read from the environment: no redirects, no cookies, no proxy variables.
TLS verification is always on, with httpx's CA bundle (and SSL_CERT_FILE, as httpx honours it).
aiohttp's errors are raised as the httpx errors the client handles, as httpx's own transport
maps httpcore's.
"""

from __future__ import annotations

from functools import lru_cache

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy
from yarl import URL

from lib.catalogue import policy


class RefusedAnswer(httpx.TransportError):
    """An answer the transport would not read whole or decode; the message says why, in words
    for the people reading a check's detail, and ``status`` is the answer's HTTP status when
    its head was read."""

    def __init__(self, message: str, request: httpx.Request, status: int | None = None) -> None:
        super().__init__(message, request=request)
        self.status = status


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
        return RefusedAnswer(f"8x8's answer is not HTTP that Switchboard reads: {exc.__cause__.message}", request)
    kind = next((_AS_HTTPX[cls] for cls in type(exc).__mro__ if cls in _AS_HTTPX), httpx.TransportError)
    return kind(str(exc) or type(exc).__name__, request=request)


def _size(limit: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def _unasked_encoding(headers: CIMultiDictProxy[str]) -> str | None:
    """The answer's Content-Encoding when it is anything but identity (or none)."""
    values = headers.getall("Content-Encoding", ())
    codings = [c.strip().lower() for value in values for c in value.split(",")]
    return ", ".join(values) if any(c not in ("", "identity") for c in codings) else None


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
            skip_auto_headers=("Accept-Encoding",),  # send only the headers the client chose
            max_line_size=policy.MAX_HEADER_LINE_BYTES, max_field_size=policy.MAX_HEADER_LINE_BYTES,
            max_headers=policy.MAX_HEADERS)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            async with session.request(request.method, _address(str(request.url)), headers=headers,
                                       data=request.content or None, allow_redirects=False,
                                       timeout=_timeout(request)) as answer:
                body = await self._body(answer, request)
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, request) from exc
        # httpx decodes the body as it builds the Response: only identity gets this far.
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request)

    async def _body(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> bytes:
        """The answer's body; RefusedAnswer for one in an encoding we did not ask for (not read
        at all) or longer than the cap (read no further)."""
        encoding = _unasked_encoding(answer.headers)
        if encoding is None:
            body = await _read_capped(answer, policy.MAX_ANSWER_BYTES)
            if body is not None:
                return body
            why = f"8x8's answer was larger than {_size(policy.MAX_ANSWER_BYTES)}; Switchboard stopped reading it."
        else:
            why = f"8x8 answered with Content-Encoding: {encoding[:40]}, which Switchboard did not ask for."
        answer.close()  # what is left unread goes with the connection, never back to the pool
        raise RefusedAnswer(why, request, answer.status)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
