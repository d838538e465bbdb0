"""One delivery attempt of one event to one channel, and the check of a channel's URL.

lib.services.alerts calls :func:`deliver` from worker threads and decides about retries from the
:class:`Attempt` it returns: delivery never raises, whatever a network, a receiver or a
channel's stored value does. The channel's values are checked again first (lib.notify.kinds),
since a store may hold some saved before a rule existed.
Redirects are never followed (a 3xx is a failure), so a receiver cannot bounce us to an
internal address; every attempt resolves and checks the host again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import ssl
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore

from lib.kernel.errors import FieldError, ValidationError
from lib.notify import kinds, payloads, signing
from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, ChannelKind, Destination, Event
from lib.notify.smtp import parse_mail_url, send_mail
from lib.notify.ssrf import (
    Allow,
    IPAddress,
    Pinned,
    PinnedBackend,
    Refused,
    Resolver,
    Unresolved,
    connection_failure,
    pin,
    resolve_host,
    timed_out,
)

DEFAULT_TIMEOUT = 10.0
MAX_RETRY_AFTER = 3600.0  # a receiver asking for more is asked again within the hour
SLOW_DOWN = frozenset({429, 502, 503, 504})
USER_AGENT = "Switchboard-alerts/1"
BODIES = {ChannelKind.WEBHOOK: payloads.webhook_body, ChannelKind.SLACK: payloads.slack_body,
          ChannelKind.TEAMS: payloads.teams_body}

log = logging.getLogger(__name__)


def default_tls() -> ssl.SSLContext:
    """The system's trust store (and SSL_CERT_FILE), certificates and host names checked."""
    return ssl.create_default_context()


# ---- the URL, before anything is sent -------------------------------------------------------

def check_destination(kind: ChannelKind, url: str, *, allow: Allow) -> None:
    """Refuse a URL no attempt can use for ``kind`` (lib.notify.kinds' rules, less the kind's
    URL shape, which is checked when a channel is saved): :class:`ValidationError` on the URL
    field, with the fix. Host names are not resolved here (every attempt does that)."""
    problem = kinds.url_problem(kind, url.strip(), allow, saving=False)
    if problem:
        raise ValidationError([FieldError("url", "URL", problem)])


# ---- one attempt ----------------------------------------------------------------------------

def deliver(destination: Destination, event: Event, *, allow: Allow, timeout: float = DEFAULT_TIMEOUT,
            resolve: Resolver = resolve_host, ssl_context: ssl.SSLContext | None = None) -> Attempt:
    """Send ``event`` to ``destination`` once, within ``timeout`` seconds in all (see
    lib.notify.deadline). Never raises (short of KeyboardInterrupt and the like): whatever goes
    wrong, a channel's stored value included, is a failed attempt saying what, logged in one
    line that quotes no URL and no secret. ``resolve`` and ``ssl_context`` are for tests (a
    name that resolves to a chosen address; a test CA)."""
    started = time.monotonic()
    level = logging.INFO
    try:
        attempt = _attempt(destination, event, allow=allow, timeout=timeout, resolve=resolve,
                           ssl_context=ssl_context)
    except (ValidationError, Refused) as exc:
        attempt = Attempt(False, refused=True, error=str(exc))
    except Unresolved as exc:
        attempt = Attempt(False, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one channel's value never stops the others' alerts
        # Only the class's name: an exception's text may quote the URL or the secret it choked on.
        attempt, level = Attempt(False, error=unexpected(exc)), logging.WARNING
    attempt = dataclasses.replace(attempt, duration_ms=round((time.monotonic() - started) * 1000))
    log.log(level, "Alert %s to a %s channel: %s", event.id, destination.kind.value,
            "delivered" if attempt.delivered else attempt.error)
    return attempt


def unexpected(exc: BaseException) -> str:
    """A failed attempt's error for an exception nobody foresaw: its class, never its text."""
    return (f"The attempt ended on an unexpected error ({type(exc).__name__}). Check the channel's URL and "
            "secret (edit the channel to give them again); if it goes on, report it with this message.")


def _attempt(destination: Destination, event: Event, *, allow: Allow, timeout: float, resolve: Resolver,
             ssl_context: ssl.SSLContext | None) -> Attempt:
    kinds.check(destination.kind, destination.url.strip(), destination.secret, allow=allow, saving=False)
    ssl_context = ssl_context or default_tls()
    with Deadline(timeout) as deadline:
        def lookup(name: str, port: int) -> list[IPAddress]:
            return deadline.call(lambda: resolve(name, port))

        if destination.kind is ChannelKind.EMAIL:
            server = parse_mail_url(destination.url)
            host = server.host
            pinned = pin(host, server.port, allow=allow, resolve=lookup)
            attempt = send_mail(server, destination.secret, event, pinned=pinned, deadline=deadline,
                                ssl_context=ssl_context)
        else:
            parts = urlsplit(destination.url.strip())
            host = (parts.hostname or "").lower()
            pinned = pin(host, parts.port or (443 if parts.scheme == "https" else 80), allow=allow,
                         resolve=lookup)
            attempt = _post(destination, event, pinned=pinned, deadline=deadline, ssl_context=ssl_context)
    if deadline.expired and not attempt.delivered:  # we ended it: say so, not how it broke
        return Attempt(False, error=timed_out(host, timeout))
    return attempt


def _post(destination: Destination, event: Event, *, pinned: Pinned, deadline: Deadline,
          ssl_context: ssl.SSLContext) -> Attempt:
    host = pinned.host
    body = json.dumps(BODIES[destination.kind](event), ensure_ascii=False,
                      separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if destination.kind is ChannelKind.WEBHOOK and destination.secret:  # checked before: it has one
        headers |= signing.signed_headers(destination.secret, event.id, int(time.time()), body)
    limits: dict[str, Any] = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), deadline.seconds)}
    try:
        with (httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=PinnedBackend(pinned, deadline),
                                      max_connections=1, retries=0) as pool,
              pool.stream("POST", destination.url.strip(), headers=headers, content=body,
                          extensions=limits) as response):
            status = response.status
            wait = None if 200 <= status < 300 else _retry_after(_header(response.headers, b"retry-after"))
    except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError) as exc:
        return Attempt(False, error=connection_failure(host, exc, deadline.seconds))
    return _answered(host, status, wait)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k.lower() == name), None)


def _retry_after(value: str | None, now: datetime | None = None) -> float | None:
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
        return Attempt(False, status=status, gone=True, error=f"{said} (Gone): this address no "
                       "longer takes messages. Replace the channel's URL with a new one.")
    if status in SLOW_DOWN:
        asked = f"; it asked to wait {wait:g} s" if wait is not None else ""
        what = "too many messages" if status == 429 else "the receiver is unavailable for now"
        return Attempt(False, status=status, retry_after=wait,
                       error=f"{said}: {what}{asked}.")
    if 300 <= status < 400:
        error = (f"{said}, a redirect. Redirects are not followed; set the channel's URL to the "
                 "final address.")
    elif status in (401, 403):
        error = (f"{said}: it refused us. Check the channel's URL and, for a webhook, that the "
                 "receiver has the current signing secret.")
    elif status == 404:
        error = (f"{said}: no such address there. Check the channel's URL (a deleted Slack app or "
                 "Teams workflow answers so).")
    elif status < 500:
        error = f"{said}: it refused the message."
    else:
        error = f"{said}: a failure on the receiver's side."
    return Attempt(False, status=status, error=error)
