"""The fallback transport (SWITCHBOARD_8X8_TRANSPORT=httpx): httpx's own, httpcore's connection
pools and h11's parser, under the rules every transport keeps (lib.eightbyeight.transport).

httpx's transport returns an answer as soon as its head has arrived; the body is read here, up
to the cap, and only in the identity encoding. It honours the request's timeouts (connect, read,
write, and the wait for a free connection) itself, follows nothing, keeps no cookie and reads no
proxy variable (those belong to httpx.AsyncClient, which the client does not use). h11 bounds a
head only as a whole (100 KiB), so the status line, header and header-count limits aiohttp's
parser keeps are checked here once the head is in. An answer h11 cannot parse at all is raised as
httpx.RemoteProtocolError (a failed connection), where aiohttp's parser refuses it as an answer.
"""

from __future__ import annotations

import httpx

from lib.catalogue import policy
from lib.eightbyeight.refusals import encoded, not_http, too_large, unasked_encoding

_STATUS_LINE = len(b"HTTP/1.1 200 ")  # before the reason phrase


def _beyond_limits(answer: httpx.Response) -> str | None:
    """Why the answer's head is beyond the limits on the status line and headers, or None."""
    limit = policy.MAX_HEADER_LINE_BYTES
    reason = answer.extensions.get("reason_phrase", b"")
    if _STATUS_LINE + len(reason) > limit:
        return f"its status line is longer than {limit} bytes"
    headers = answer.headers.raw
    if len(headers) > policy.MAX_HEADERS:
        return f"it has more than {policy.MAX_HEADERS} headers"
    if any(len(name) > limit or len(value) > limit for name, value in headers):
        return f"a header is longer than {limit} bytes"
    return None


def _declared_length(answer: httpx.Response) -> int | None:
    value = answer.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None  # h11 refuses a Content-Length that is not one number


async def _read_capped(answer: httpx.Response, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` bytes (nothing more is read)."""
    declared = _declared_length(answer)
    if declared is not None and declared > limit:
        return None
    chunks, size = [], 0
    async for chunk in answer.aiter_raw():  # as sent: httpx decodes when the Response is built
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class HttpxTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` open connections, idle ones kept ``keepalive_expiry`` seconds."""

    def __init__(self, max_connections: int, keepalive_expiry: float = 30.0) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        )
        # Verification on, with the CA list loaded once; retries are the client's (none here).
        self._pool = httpx.AsyncHTTPTransport(
            verify=httpx.create_ssl_context(), limits=limits, trust_env=False, retries=0
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            answer = await self._pool.handle_async_request(request)
            try:
                body = await self._body(answer, request)
            finally:
                # Unread, the rest goes with the connection: httpcore closes one whose answer did not end.
                await answer.aclose()
        except httpx.TransportError as exc:
            exc.request = request  # as httpx.AsyncClient would: every error names its request
            raise
        # httpx decodes the body as it builds the Response: only identity gets this far.
        return httpx.Response(answer.status_code, headers=answer.headers.raw, content=body, request=request)

    async def _body(self, answer: httpx.Response, request: httpx.Request) -> bytes:
        """The answer's body; RefusedAnswer for a head beyond the limits or an encoding we did not
        ask for (the body not read at all), or a body longer than the cap (read no further)."""
        if (why := _beyond_limits(answer)) is not None:
            raise not_http(request, why)
        if (encoding := unasked_encoding(answer.headers.get_list("Content-Encoding"))) is not None:
            raise encoded(request, answer.status_code, encoding)
        body = await _read_capped(answer, policy.MAX_ANSWER_BYTES)
        if body is None:
            raise too_large(request, answer.status_code)
        return body

    async def aclose(self) -> None:
        await self._pool.aclose()
