"""One delivery attempt of one event to one channel, and the check of a channel's URL.

lib.services.alerts calls :func:`deliver` from worker threads and decides about retries from the
:class:`Attempt` it returns: delivery never raises, whatever a network, a receiver or a
channel's stored value does. The channel's values are checked again first against its kind's
fields (lib.notify.kinds), since a store may hold some saved before a rule existed; then the
kind's sender sends, to the address the SSRF guard resolved, checked and pinned (every attempt
resolves again).
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import Sequence

from lib.kernel.errors import FieldError, ValidationError
from lib.notify import kinds
from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, Destination, Event
from lib.notify.spec import Given
from lib.notify.ssrf import (
    Allow,
    IPAddress,
    Refused,
    Resolver,
    Unresolved,
    pin,
    resolve_host,
    timed_out,
)

DEFAULT_TIMEOUT = 10.0

log = logging.getLogger(__name__)


def default_tls() -> ssl.SSLContext:
    """The system's trust store (and SSL_CERT_FILE), certificates and host names checked."""
    return ssl.create_default_context()


# ---- the URL, before anything is sent -------------------------------------------------------


def check_destination(kind: str, url: str, *, allow: Allow) -> None:
    """Refuse a URL no attempt can use for ``kind`` (its URL field's rules, less the shape its
    service gives its URLs, which is checked when a channel is saved): :class:`ValidationError`
    on the URL field, with the fix. Host names are not resolved here (every attempt does that)."""
    field = kinds.get(kind).url
    problem = field.problem(Given(url.strip(), "", allow, saving=False))
    if problem:
        raise ValidationError([FieldError(field.name, field.label, problem)])


# ---- one attempt ----------------------------------------------------------------------------


def deliver(
    destination: Destination,
    event: Event,
    *,
    allow: Allow,
    timeout: float = DEFAULT_TIMEOUT,
    resolve: Resolver = resolve_host,
    ssl_context: ssl.SSLContext | None = None,
) -> Attempt:
    """Send ``event`` to ``destination`` once, within ``timeout`` seconds in all (see
    lib.notify.deadline). Never raises (short of KeyboardInterrupt and the like): whatever goes
    wrong, a channel's stored value included, is a failed attempt saying what, logged in one
    line that quotes no URL and no secret. ``resolve`` and ``ssl_context`` are for tests (a
    name that resolves to a chosen address; a test CA)."""
    started = time.monotonic()
    level = logging.INFO
    try:
        attempt = _attempt(destination, event, allow=allow, timeout=timeout, resolve=resolve, ssl_context=ssl_context)
    except (ValidationError, Refused) as exc:
        attempt = Attempt(False, refused=True, error=str(exc))
    except Unresolved as exc:
        attempt = Attempt(False, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one channel's value never stops the others' alerts
        # Only the class's name: an exception's text may quote the URL or the secret it choked on.
        attempt, level = Attempt(False, error=unexpected(exc)), logging.WARNING
    attempt = dataclasses.replace(attempt, duration_ms=round((time.monotonic() - started) * 1000))
    log.log(
        level,
        "Alert %s to a %s channel: %s",
        event.id,
        destination.kind,
        "delivered" if attempt.delivered else attempt.error,
    )
    return attempt


def unexpected(exc: BaseException) -> str:
    """A failed attempt's error for an exception nobody foresaw: its class, never its text."""
    return (
        f"The attempt ended on an unexpected error ({type(exc).__name__}). Check the channel's URL and "
        "secret (edit the channel to give them again); if it goes on, report it with this message."
    )


def _attempt(
    destination: Destination,
    event: Event,
    *,
    allow: Allow,
    timeout: float,
    resolve: Resolver,
    ssl_context: ssl.SSLContext | None,
) -> Attempt:
    kind = kinds.get(destination.kind)
    destination = dataclasses.replace(destination, url=destination.url.strip())
    kind.check(destination.url, destination.secret, allow=allow, saving=False)
    ssl_context = ssl_context or default_tls()
    with Deadline(timeout) as deadline:

        def lookup(name: str, port: int) -> Sequence[IPAddress]:
            return deadline.call(lambda: resolve(name, port))

        host, port = kind.sender.address(destination.url)
        pinned = pin(host, port, allow=allow, resolve=lookup)
        attempt = kind.sender.send(destination, event, pinned=pinned, deadline=deadline, ssl_context=ssl_context)
    if deadline.expired and not attempt.delivered:  # we ended it: say so, not how it broke
        return Attempt(False, error=timed_out(host, timeout))
    return attempt
