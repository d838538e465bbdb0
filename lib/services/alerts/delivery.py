"""Delivering the outbox: claimed with a lease, one attempt at a time, retried with back-off.

A worker claims due rows a batch at a time in one write transaction (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, SQLite's ``BEGIN IMMEDIATE``), as lib.services.checking.worker claims due checks, marking them with
itself and a lease; each attempt is then recorded in a transaction that only counts while the
row is still its own. So however many workers share the database, each event goes out once.
Each row of a batch is read, tried and settled on its own: a row that cannot be read or sent,
whatever the reason, is recorded as a failed attempt, and the rows after it go out as usual.

Retries: immediately, then 5 s, 5 min, 30 min, 2 h and 5 h after each failure (or later, when
the receiver's Retry-After asks for more); after the sixth attempt the row is failed. A 410
turns the channel off with the reason (and an audit row); a destination the SSRF guard refuses
fails at once. A channel inside a quiet window has its events held; when the window ends they
go out as one window.summary, without those that recovered meanwhile.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, or_, select, update
from sqlmodel import Session, col

from lib.kernel.config import Settings
from lib.kernel.errors import CredentialUnreadable
from lib.kernel.redaction import registry
from lib.notify.models import Attempt, Destination, Event, EventKind
from lib.services.alerts import channels
from lib.services.alerts.events import from_json, summary_event
from lib.services.alerts.outbox import (
    DELIVERED,
    FAILED,
    HELD,
    PENDING,
    SUMMARISED,
    insert_ignoring,
    row,
)
from lib.services.alerts.windows import Window
from lib.services.guard import audit
from lib.services.guard.access import schedule as schedule_principal
from lib.services.runtime import Runtime
from lib.store import leases
from lib.store.db import write_session
from lib.store.models import (
    AlertChannel,
    AlertDelivery,
    AlertOutbox,
    AlertState,
    QuietWindow,
    utcnow,
)

# The wait before each attempt: the first at once; after the last one the event is failed.
BACKOFF = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
)
LEASE = timedelta(minutes=2)  # BATCH attempts of at most TIMEOUT each (lib.notify.deadline) fit with room
BATCH = 8
TIMEOUT = 10.0
LONGEST_WAIT = 86400.0  # seconds a sender's Retry-After may put off a retry (lib.notify caps it at an hour)

Send = Callable[[Destination, Event], Attempt]
Clock = Callable[[], datetime]

log = logging.getLogger(__name__)


def default_sender(settings: Settings) -> Send:
    """lib.notify's sender, with SWITCHBOARD_ALERT_ALLOW and the 10 s timeout."""
    from lib.notify.send import deliver

    allow = channels.allowed(settings)
    return lambda destination, event: deliver(destination, event, allow=allow, timeout=TIMEOUT)


@dataclass(frozen=True)
class Claimed:
    """A claimed outbox row, read for its attempt. What could not be read (the event, the
    channel's address) leaves ``event`` or ``destination`` None and says why in ``error``:
    that row fails alone."""

    id: int
    channel_id: uuid.UUID
    channel: str
    event_id: str
    kind: str
    attempts: int  # before this one
    event: Event | None
    destination: Destination | None
    error: str | None = None


def _windows(session: Session, channel_ids: set[uuid.UUID]) -> dict[uuid.UUID, list[Window]]:
    found: dict[uuid.UUID, list[Window]] = {}
    for w in session.scalars(select(QuietWindow).where(col(QuietWindow.channel_id).in_(channel_ids))).all():
        found.setdefault(w.channel_id, []).append(Window(tuple(w.weekdays), w.start, w.end, w.timezone))
    return found


def _claim(rt: Runtime, worker: str, now: datetime, batch: int, only: int | None = None) -> list[Claimed]:
    """Take up to ``batch`` due rows of enabled channels nobody holds; those of a channel in a
    quiet window are held instead (tests excepted). Each row is read on its own (:func:`_read`),
    so one that cannot be read is claimed like the others, and fails alone."""
    free = leases.free(AlertOutbox, now)
    if only is not None:  # a Send test: its row was queued already held by this same caller
        free = or_(free, leases.held_by(AlertOutbox, worker))
    due = (
        select(
            col(AlertOutbox.id),
            col(AlertOutbox.channel_id),
            col(AlertOutbox.event_id),
            col(AlertOutbox.kind),
            col(AlertOutbox.event),
            col(AlertOutbox.attempts),
        )
        .join(AlertChannel, col(AlertChannel.id) == col(AlertOutbox.channel_id))
        .where(col(AlertOutbox.status) == PENDING, col(AlertOutbox.due_at) <= now, col(AlertChannel.enabled), free)
        .order_by(col(AlertOutbox.due_at), col(AlertOutbox.id))
        .limit(batch)
        .with_for_update(skip_locked=True, of=AlertOutbox)
    )
    if only is not None:
        due = due.where(col(AlertOutbox.id) == only)
    with write_session(rt.engine) as session:
        rows = session.connection().execute(due).all()
        if not rows:
            return []
        by_id = {
            c.id: c
            for c in session.scalars(
                select(AlertChannel).where(col(AlertChannel.id).in_({r.channel_id for r in rows}))
            ).all()
        }
        windows = _windows(session, set(by_id))
        quiet = {cid for cid, found in windows.items() if any(w.covers(now) for w in found)}
        held = [r.id for r in rows if r.channel_id in quiet and r.kind != EventKind.TEST]
        taken = [r for r in rows if r.id not in held]
        if held:
            session.connection().execute(update(AlertOutbox).where(col(AlertOutbox.id).in_(held)).values(status=HELD))
        if taken:
            session.connection().execute(
                leases.take(AlertOutbox, col(AlertOutbox.id).in_([r.id for r in taken]), worker, now + LEASE)
            )
        return [_read(rt, r, by_id[r.channel_id]) for r in taken]


def _read(rt: Runtime, r: Any, channel: AlertChannel) -> Claimed:
    """One claimed row's event and its channel's decrypted address, or why they cannot be read."""
    event = destination = None
    try:
        event = from_json(r.event)
        destination = channels.destination(rt.vault, channel)
        error = None
    except CredentialUnreadable as exc:
        error = f"The channel's address could not be decrypted: {exc}"
    except Exception as exc:  # noqa: BLE001 - a row nobody can read fails alone; only the class is told
        what = "channel" if event else "queued event"
        error = f"The {what} could not be read ({type(exc).__name__}); this alert cannot be sent."
        log.warning("Alert %s to %s: %s", r.event_id, channel.name, error)
    return Claimed(r.id, r.channel_id, channel.name, r.event_id, r.kind, r.attempts, event, destination, error)


def _linked(settings: Settings, event: Event) -> Event:
    """The event with a link to its connection in the console, when the console's address is known."""
    if not (settings.public_origin and event.connection):
        return event
    return replace(event, link=f"{settings.public_origin}/connections?connection={quote(event.connection)}")


def _attempt(rt: Runtime, worker: str, item: Claimed, send: Send, now: Clock) -> Attempt:
    """Try one claimed row and settle it, whatever happens: its own failure, even an exception
    of the sender, is recorded as a failed attempt and never reaches the rows after it."""
    try:
        attempt = _try(rt, item, send)
    except Exception as exc:  # noqa: BLE001 - the sender broke its promise not to raise; only the class is told
        attempt = Attempt(False, error=f"The attempt ended on an unexpected error ({type(exc).__name__}).")
        log.warning("Alert %s to %s: %s", item.event_id, item.channel, attempt.error)
    at = now()
    try:
        _settle(rt, worker, item, attempt, at)
    except Exception as exc:  # noqa: BLE001 - recorded as failed, so the row is not tried again at every lease
        log.warning(
            "Alert %s to %s: its attempt could not be recorded (%s); marking it failed",
            item.event_id,
            item.channel,
            type(exc).__name__,
        )
        _give_up(rt, worker, item, f"The attempt could not be recorded ({type(exc).__name__}).", at)
    return attempt


def _try(rt: Runtime, item: Claimed, send: Send) -> Attempt:
    if item.event is None or item.destination is None:
        return Attempt(delivered=False, refused=True, error=item.error)
    return send(item.destination, _linked(rt.settings, item.event))


def _settle(rt: Runtime, worker: str, item: Claimed, attempt: Attempt, at: datetime) -> None:
    """Record the attempt on its row (while the row is still this worker's) and in the log."""
    number = item.attempts + 1
    status, outcome, due = PENDING, "retrying", at
    if attempt.delivered:
        status, outcome = DELIVERED, "delivered"
    elif attempt.gone:
        status, outcome = FAILED, "gone"
    elif attempt.refused:
        status, outcome = FAILED, "refused"
    elif number >= len(BACKOFF) or item.kind == EventKind.TEST:
        status, outcome = FAILED, "failed"
    else:
        due = at + max(BACKOFF[number], timedelta(seconds=min(attempt.retry_after or 0, LONGEST_WAIT)))
    error = registry.mask(attempt.error or "")
    with write_session(rt.engine) as session:
        session.connection().execute(
            leases.let_go(
                AlertOutbox, and_(col(AlertOutbox.id) == item.id, leases.held_by(AlertOutbox, worker))
            ).values(
                attempts=number,
                status=status,
                due_at=due,
                last_error=error or None,
                finished_at=None if status == PENDING else at,
            )
        )
        session.add(
            AlertDelivery(
                channel_id=item.channel_id,
                channel=item.channel,
                event_id=item.event_id,
                kind=item.kind,
                connection=item.event.connection[:120] if item.event and item.event.connection else None,
                product=item.event.product[:40] if item.event and item.event.product else None,
                attempt=number,
                at=at,
                http_status=attempt.status,
                outcome=outcome,
                error=error,
                duration_ms=attempt.duration_ms,
                worker=worker[:120],
            )
        )
        if attempt.gone:
            reason = f"the receiver answered 410 Gone at {at:%Y-%m-%d %H:%M} UTC"
            channels.disable(session, item.channel_id, reason)
            audit.record(
                session,
                schedule_principal(),
                "channel.disable",
                item.channel,
                audit.OK,
                f"turned off: {reason} (event {item.event_id})",
            )


def _give_up(rt: Runtime, worker: str, item: Claimed, error: str, at: datetime) -> None:
    """The row failed for good, when even its attempt could not be recorded; if the database
    refuses this too, its lease lapses and it is tried again later."""
    try:
        with write_session(rt.engine) as session:
            session.connection().execute(
                leases.let_go(
                    AlertOutbox, and_(col(AlertOutbox.id) == item.id, leases.held_by(AlertOutbox, worker))
                ).values(attempts=item.attempts + 1, status=FAILED, last_error=error, finished_at=at)
            )
    except Exception as exc:  # noqa: BLE001 - the other rows still go out
        log.warning(
            "Alert %s to %s: could not be marked failed either (%s)", item.event_id, item.channel, type(exc).__name__
        )


def deliver_due(rt: Runtime, *, worker: str, send: Send | None = None, now: Clock = utcnow, batch: int = BATCH) -> int:
    """Attempt every outbox row due at ``now()``, a claimed batch at a time, each row tried and
    settled on its own; the number delivered. ``send`` defaults to lib.notify's sender (made
    only when something is due)."""
    delivered = 0
    while claimed := _claim(rt, worker, now(), batch):
        send = send or default_sender(rt.settings)
        delivered += sum(_attempt(rt, worker, item, send, now).delivered for item in claimed)
    return delivered


def deliver_one(
    rt: Runtime, outbox_id: int, *, worker: str, send: Send | None = None, now: Clock = utcnow
) -> Attempt | None:
    """Attempt one row now (an admin's Send test), settled before this returns. None when it
    cannot be claimed (its channel was turned off meanwhile): then it is failed at once rather
    than left for a worker to send some other day."""
    claimed = _claim(rt, worker, now(), 1, only=outbox_id)
    if not claimed:
        with write_session(rt.engine) as session:
            session.connection().execute(
                update(AlertOutbox)
                .where(
                    col(AlertOutbox.id) == outbox_id,
                    col(AlertOutbox.status) == PENDING,
                    col(AlertOutbox.claimed_by).is_(None),
                )
                .values(status=FAILED, last_error="The channel is turned off.", finished_at=now())
            )
        return None
    return _attempt(rt, worker, claimed[0], send or default_sender(rt.settings), now)


def summarise(session: Session, now: datetime) -> None:
    """For each channel whose quiet window has ended: what it held, as one window.summary event,
    without failures that recovered meanwhile (and their recoveries)."""
    holding = set(
        session.connection()
        .execute(select(col(AlertOutbox.channel_id)).where(col(AlertOutbox.status) == HELD).distinct())
        .scalars()
    )
    if not holding:
        return
    windows = _windows(session, holding)
    alerting = {
        (c, p)
        for c, p in session.connection().execute(
            select(col(AlertState.connection_id), col(AlertState.subject)).where(
                col(AlertState.alerted_at).is_not(None)
            )
        )
    }
    for channel_id in holding:
        if any(w.covers(now) for w in windows.get(channel_id, ())):
            continue
        held = session.scalars(
            select(AlertOutbox)
            .where(col(AlertOutbox.channel_id) == channel_id, col(AlertOutbox.status) == HELD)
            .order_by(col(AlertOutbox.id))
            .with_for_update()
        ).all()
        failed_held = {(r.connection_id, r.product) for r in held if r.kind == EventKind.FAILED}
        kept = [(r, e) for r in held if not _recovered_meanwhile(r, alerting, failed_held) and (e := _readable(r))]
        for r in held:
            r.status, r.finished_at = SUMMARISED, now
        if kept:
            # What people must still act on when the window ends: held failures not yet recovered.
            still = sorted(
                {
                    f"{e.connection}: {e.product_label or e.product}"
                    for r, e in kept
                    if r.kind in (EventKind.FAILED, EventKind.STILL_FAILING)
                    and (r.connection_id, r.product) in alerting
                }
            )
            event = summary_event(channel_id, [e for _, e in kept], still_failing=still, at=now)
            insert_ignoring(session, AlertOutbox, [row(channel_id, (event, None), now)], ["channel_id", "event_id"])


def _readable(r: AlertOutbox) -> Event | None:
    """A held row's event, or None (left out of the summary, logged) when it cannot be read."""
    try:
        return from_json(r.event)
    except Exception as exc:  # noqa: BLE001 - one unreadable row never stops the summary
        log.warning("Held alert %s left out of its summary: it could not be read (%s)", r.event_id, type(exc).__name__)
        return None


def _recovered_meanwhile(
    r: AlertOutbox, alerting: set[tuple[uuid.UUID, str]], failed_held: set[tuple[uuid.UUID | None, str | None]]
) -> bool:
    pair = (r.connection_id, r.product)
    if r.kind in (EventKind.FAILED, EventKind.STILL_FAILING, EventKind.ACKNOWLEDGED):
        return pair not in alerting
    return r.kind == EventKind.RECOVERED and pair in failed_held
