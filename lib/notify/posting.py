"""One JSON message POSTed to a pinned address: the sender the web kinds (webhook, Slack, Teams)
share, and what an HTTP answer means for the next attempt.

Redirects are never followed (a 3xx is a failure), so a receiver cannot bounce us to an
internal address. An error names the host and the status, never the URL's path or query (a
Slack or Teams URL is a credential) or what the receiver answered.
"""

from __future__ import annotations

import json
import ssl
from abc import abstractmethod
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore

from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, Destination, Event
from lib.notify.spec import Sender
from lib.notify.ssrf import Pinned, PinnedBackend, connection_failure

MAX_RETRY_AFTER = 3600.0  # a receiver asking for more is asked again within the hour
SLOW_DOWN = frozenset({429, 502, 503, 504})
USER_AGENT = "Switchboard-alerts/1"


class JsonPost(Sender):
    """A kind that POSTs one JSON body per event: the kind says what the body is, and any
    header it adds."""

    @abstractmethod
    def body(self, event: Event) -> dict[str, Any]:
        """What the receiver gets for ``event`` (lib.notify.payloads)."""

    def headers(self, destination: Destination, event: Event, body: bytes) -> dict[str, str]:
        """Headers besides the content type and user agent, e.g. a signature of ``body``."""
        return {}

    def address(self, url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        return (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)

    def send(
        self, destination: Destination, event: Event, *, pinned: Pinned, deadline: Deadline, ssl_context: ssl.SSLContext
    ) -> Attempt:
        body = json.dumps(self.body(event), ensure_ascii=False, separators=(",", ":")).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            *self.headers(destination, event, body).items(),
        ]
        limits: dict[str, Any] = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), deadline.seconds)}
        try:
            with (
                httpcore.ConnectionPool(
                    ssl_context=ssl_context,
                    network_backend=PinnedBackend(pinned, deadline),
                    max_connections=1,
                    retries=0,
                ) as pool,
                pool.stream("POST", destination.url, headers=headers, content=body, extensions=limits) as response,
            ):
                status = response.status
                wait = None if 200 <= status < 300 else retry_after(_header(response.headers, b"retry-after"))
        except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError) as exc:
            return Attempt(False, error=connection_failure(pinned.host, exc, deadline.seconds))
        return _answered(pinned.host, status, wait)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k.lower() == name), None)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), within 0 .. MAX_RETRY_AFTER."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to float()
        seconds = float(value)  # thousands of digits: inf, capped below
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _answered(host: str, status: int, wait: float | None) -> Attempt:
    """What an HTTP status means for this attempt and the next."""
    if 200 <= status < 300:
        return Attempt(True, status=status)
    said = f"{host} answered HTTP {status}"
    if status == 410:
        return Attempt(
            False,
            status=status,
            gone=True,
            error=f"{said} (Gone): this address no longer takes messages. Replace the channel's URL with a new one.",
        )
    if status in SLOW_DOWN:
        asked = f"; it asked to wait {wait:g} s" if wait is not None else ""
        what = "too many messages" if status == 429 else "the receiver is unavailable for now"
        return Attempt(False, status=status, retry_after=wait, error=f"{said}: {what}{asked}.")
    if 300 <= status < 400:
        error = f"{said}, a redirect. Redirects are not followed; set the channel's URL to the final address."
    elif status in (401, 403):
        error = (
            f"{said}: it refused us. Check the channel's URL and, for a webhook, that the "
            "receiver has the current signing secret."
        )
    elif status == 404:
        error = (
            f"{said}: no such address there. Check the channel's URL (a deleted Slack app or "
            "Teams workflow answers so)."
        )
    elif status < 500:
        error = f"{said}: it refused the message."
    else:
        error = f"{said}: a failure on the receiver's side."
    return Attempt(False, status=status, error=error)
