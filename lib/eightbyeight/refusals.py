"""The rules every transport of the 8x8 client keeps about an answer, as errors the client
reports: an answer too large, in a Content-Encoding we did not ask for, or not HTTP at all
(lib.eightbyeight.transport says why each is refused)."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from lib.catalogue import policy


class RefusedAnswer(httpx.TransportError):
    """An answer the transport would not read whole or decode; the message says why, in words
    for the people reading a check's detail, and ``status`` is the answer's HTTP status when
    its head was read."""

    def __init__(self, message: str, request: httpx.Request, status: int | None = None) -> None:
        super().__init__(message, request=request)
        self.status = status


def _size(limit: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def unasked_encoding(values: Iterable[str]) -> str | None:
    """The answer's Content-Encoding (its header ``values``) when it is anything but identity."""
    values = list(values)
    codings = [c.strip().lower() for value in values for c in value.split(",")]
    return ", ".join(values) if any(c not in ("", "identity") for c in codings) else None


def too_large(request: httpx.Request, status: int) -> RefusedAnswer:
    return RefusedAnswer(
        f"8x8's answer was larger than {_size(policy.MAX_ANSWER_BYTES)}; Switchboard stopped reading it.",
        request,
        status,
    )


def encoded(request: httpx.Request, status: int, encoding: str) -> RefusedAnswer:
    return RefusedAnswer(
        f"8x8 answered with Content-Encoding: {encoding[:40]}, which Switchboard did not ask for.", request, status
    )


def not_http(request: httpx.Request, why: str) -> RefusedAnswer:
    """An answer whose head is not HTTP, or beyond the limits: refused as a whole (no status)."""
    return RefusedAnswer(f"8x8's answer is not HTTP that Switchboard reads: {why}", request)
