"""One delivery attempt of one event to one channel, and the check of a channel's URL.

lib.alerts calls :func:`deliver` from worker threads and decides about retries from the
:class:`Attempt` it returns: delivery never raises for what a network or a receiver does.
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

from lib.errors import FieldError, ValidationError
from lib.notify import payloads, signing
from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, ChannelKind, Destination, Event
from lib.notify.smtp import parse_mail_url, send_mail
from lib.notify.ssrf import (
    ALLOW_VARIABLE,
    Allow,
    IPAddress,
    Pinned,
    PinnedBackend,
    Refused,
    Resolver,
    Unresolved,
    connection_failure,
    ip_literal,
    pin,
    refusal,
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
    """Refuse a URL that can never be used for ``kind``: :class:`ValidationError` on the URL
    field, with the fix. Host names are not resolved here (every attempt does that)."""
    problem = _url_problem(kind, url.strip(), allow)
    if problem:
        raise ValidationError([FieldError("url", "URL", problem)])


_WHERE = {  # where each kind's address comes from
    ChannelKind.WEBHOOK: "the receiver's admin can give it",
    ChannelKind.SLACK: "copy it from the Slack app's Incoming Webhooks page",
    ChannelKind.TEAMS: "copy it from the Teams workflow \"When a Teams webhook request is received\""}


def _url_problem(kind: ChannelKind, url: str, allow: Allow) -> str | None:
    if kind is ChannelKind.EMAIL:
        try:
            host = parse_mail_url(url).host
        except ValueError as exc:
            return f"The mail server's URL {exc}"
        return _host_problem(host, allow)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"must be an https:// address; {_WHERE[kind]}."
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password; a webhook's secret goes in its own field."
    try:
        port_ok = parts.port != 0
    except ValueError:
        port_ok = False
    if not port_ok:
        return "has a port that is not a number from 1 to 65535."
    if parts.scheme == "http" and not allow.names(parts.hostname):
        return (f"must start with https://. Plain http:// would send alerts unencrypted; it is "
                f"only for hosts on {ALLOW_VARIABLE}.")
    return _host_problem(parts.hostname, allow)


def _host_problem(host: str, allow: Allow) -> str | None:
    if not host.isascii():
        return "must write its host name in ASCII (the xn-- form of an international name)."
    if allow.names(host):
        return None
    literal = ip_literal(host)
    reason = refusal(literal) if literal else (
        "this machine" if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost")
        else None)
    if reason:
        return (f"points at {host}, {reason}. Alerts go only to public internet addresses; "
                f"an internal receiver must be listed in {ALLOW_VARIABLE}.")
    return None


# ---- one attempt ----------------------------------------------------------------------------

def deliver(destination: Destination, event: Event, *, allow: Allow, timeout: float = DEFAULT_TIMEOUT,
            resolve: Resolver = resolve_host, ssl_context: ssl.SSLContext | None = None) -> Attempt:
    """Send ``event`` to ``destination`` once, within ``timeout`` seconds in all (see
    lib.notify.deadline). ``resolve`` and ``ssl_context`` are for tests (a name that resolves
    to a chosen address; a test CA)."""
    started = time.monotonic()
    try:
        check_destination(destination.kind, destination.url, allow=allow)
        with Deadline(timeout) as deadline:
            def lookup(name: str, port: int) -> list[IPAddress]:
                return deadline.call(lambda: resolve(name, port))

            if destination.kind is ChannelKind.EMAIL:
                server = parse_mail_url(destination.url)
                host = server.host
                pinned = pin(host, server.port, allow=allow, resolve=lookup)
                attempt = send_mail(server, destination.secret, event, pinned=pinned, deadline=deadline,
                                    ssl_context=ssl_context or default_tls())
            else:
                parts = urlsplit(destination.url.strip())
                host = (parts.hostname or "").lower()
                pinned = pin(host, parts.port or (443 if parts.scheme == "https" else 80), allow=allow,
                             resolve=lookup)
                attempt = _post(destination, event, pinned=pinned, deadline=deadline,
                                ssl_context=ssl_context or default_tls())
        if deadline.expired and not attempt.delivered:  # we ended it: say so, not how it broke
            attempt = Attempt(False, error=timed_out(host, timeout))
    except (ValidationError, Refused) as exc:
        attempt = Attempt(False, refused=True, error=str(exc))
    except Unresolved as exc:
        attempt = Attempt(False, error=str(exc))
    attempt = dataclasses.replace(attempt, duration_ms=round((time.monotonic() - started) * 1000))
    log.info("Alert %s to a %s channel: %s", event.id, destination.kind.value,
             "delivered" if attempt.delivered else attempt.error)
    return attempt


def _post(destination: Destination, event: Event, *, pinned: Pinned, deadline: Deadline,
          ssl_context: ssl.SSLContext) -> Attempt:
    host = pinned.host
    body = json.dumps(BODIES[destination.kind](event), ensure_ascii=False,
                      separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if destination.kind is ChannelKind.WEBHOOK:
        if not destination.secret:
            raise ValidationError([FieldError("secret", "Signing secret", "is missing; a webhook "
                                              "channel signs every message. Add the channel again.")])
        headers |= signing.signed_headers(destination.secret, event.id, int(time.time()), body)
    limits: dict[str, Any] = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), deadline.seconds)}
    try:
        with (httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=PinnedBackend(pinned, deadline),
                                      max_connections=1, retries=0) as pool,
              pool.stream("POST", destination.url.strip(), headers=headers, content=body,
                          extensions=limits) as response):
            status = response.status
            wait = _retry_after(_header(response.headers, b"retry-after"))
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
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
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
