"""Delivering the outbox: claimed with a lease, one attempt at a time, retried with back-off.

A worker claims due rows a batch at a time in one write transaction (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, SQLite's ``BEGIN IMMEDIATE``), as lib.worker claims due checks, marking them with
itself and a lease; each attempt is then recorded in a transaction that only counts while the
row is still its own. So however many workers share the database, each event goes out once.

Retries: immediately, then 5 s, 5 min, 30 min, 2 h and 5 h after each failure (or later, when
the receiver's Retry-After asks for more); after the sixth attempt the row is failed. A 410
turns the channel off with the reason (and an audit row); a destination the SSRF guard refuses
fails at once. A channel inside a quiet window has its events held; when the window ends they
go out as one window.summary, without those that recovered meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import or_, update
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from lib import audit
from lib.access import schedule as schedule_principal
from lib.alerts import channels
from lib.alerts.events import from_json, summary_event
from lib.alerts.outbox import DELIVERED, FAILED, HELD, PENDING, SUMMARISED, insert_ignoring, row
from lib.alerts.windows import Window
from lib.config import Settings
from lib.errors import CredentialUnreadable
from lib.notify.models import Attempt, Destination, Event, EventKind
from lib.redaction import registry
from lib.runtime import Runtime
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
BACKOFF = (timedelta(0), timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=5))
LEASE = timedelta(minutes=2)  # BATCH attempts of at most TIMEOUT each (lib.notify.deadline) fit with room
BATCH = 8
TIMEOUT = 10.0

Send = Callable[[Destination, Event], Attempt]
Clock = Callable[[], datetime]


def default_sender(settings: Settings) -> Send:
    """lib.notify's sender, with SWITCHBOARD_ALERT_ALLOW and the 10 s timeout."""
    from lib.notify.send import deliver

    allow = channels.allowed(settings)
    return lambda destination, event: deliver(destination, event, allow=allow, timeout=TIMEOUT)


@dataclass(frozen=True)
class Claimed:
    id: int
    channel_id: uuid.UUID
    channel: str
    event: Event
    attempts: int  # before this one
    destination: Destination | None  # None: unreadable, see ``error``
    error: str | None = None


def _windows(session: Session, channel_ids: set[uuid.UUID]) -> dict[uuid.UUID, list[Window]]:
    found: dict[uuid.UUID, list[Window]] = {}
    for w in session.exec(select(QuietWindow).where(col(QuietWindow.channel_id).in_(channel_ids))).all():
        found.setdefault(w.channel_id, []).append(Window(tuple(w.weekdays), w.start, w.end, w.timezone))
    return found


def _claim(rt: Runtime, worker: str, now: datetime, batch: int, only: int | None = None) -> list[Claimed]:
    """Take up to ``batch`` due rows of enabled channels nobody holds; those of a channel in a
    quiet window are held instead (tests excepted)."""
    due = (sql_select(AlertOutbox.id, AlertOutbox.channel_id, AlertOutbox.kind, AlertOutbox.event,
                      AlertOutbox.attempts)
           .join(AlertChannel, col(AlertChannel.id) == col(AlertOutbox.channel_id))
           .where(AlertOutbox.status == PENDING, col(AlertOutbox.due_at) <= now, col(AlertChannel.enabled),
                  or_(col(AlertOutbox.claimed_until).is_(None), col(AlertOutbox.claimed_until) < now))
           .order_by(AlertOutbox.due_at, AlertOutbox.id).limit(batch)
           .with_for_update(skip_locked=True, of=AlertOutbox))  # type: ignore[arg-type]
    if only is not None:
        due = due.where(AlertOutbox.id == only)
    with write_session(rt.engine) as session:
        rows = session.connection().execute(due).all()
        if not rows:
            return []
        by_id = {c.id: c for c in session.exec(select(AlertChannel).where(
            col(AlertChannel.id).in_({r.channel_id for r in rows}))).all()}
        windows = _windows(session, set(by_id))
        quiet = {cid for cid, found in windows.items() if any(w.covers(now) for w in found)}
        held = [r.id for r in rows if r.channel_id in quiet and r.kind != EventKind.TEST]
        taken = [r for r in rows if r.id not in held]
        if held:
            session.connection().execute(update(AlertOutbox).where(col(AlertOutbox.id).in_(held)).values(status=HELD))
        if taken:
            session.connection().execute(update(AlertOutbox).where(col(AlertOutbox.id).in_([r.id for r in taken]))
                                         .values(claimed_by=worker, claimed_until=now + LEASE))
        claimed = []
        for r in taken:
            channel = by_id[r.channel_id]
            try:
                found, error = channels.destination(rt.vault, channel), None
            except CredentialUnreadable as exc:
                found, error = None, f"The channel's address could not be decrypted: {exc}"
            claimed.append(Claimed(r.id, r.channel_id, channel.name, from_json(r.event), r.attempts, found, error))
        return claimed


def _linked(settings: Settings, event: Event) -> Event:
    """The event with a link to its connection in the console, when the console's address is known."""
    if not (settings.public_origin and event.connection):
        return event
    return replace(event, link=f"{settings.public_origin}/connections?connection={quote(event.connection)}")


def _attempt(rt: Runtime, worker: str, item: Claimed, send: Send, now: Clock) -> Attempt:
    if item.destination is None:
        attempt = Attempt(delivered=False, refused=True, error=item.error)
    else:
        attempt = send(item.destination, _linked(rt.settings, item.event))
    at, number = now(), item.attempts + 1
    status, outcome, due = PENDING, "retrying", at
    if attempt.delivered:
        status, outcome = DELIVERED, "delivered"
    elif attempt.gone:
        status, outcome = FAILED, "gone"
    elif attempt.refused:
        status, outcome = FAILED, "refused"
    elif number >= len(BACKOFF) or item.event.kind is EventKind.TEST:
        status, outcome = FAILED, "failed"
    else:
        due = at + max(BACKOFF[number], timedelta(seconds=attempt.retry_after or 0))
    error = registry.mask(attempt.error or "")
    with write_session(rt.engine) as session:
        session.connection().execute(
            update(AlertOutbox).where(col(AlertOutbox.id) == item.id, AlertOutbox.claimed_by == worker)
            .values(attempts=number, status=status, due_at=due, last_error=error or None, claimed_by=None,
                    claimed_until=None, finished_at=None if status == PENDING else at))
        session.add(AlertDelivery(channel_id=item.channel_id, channel=item.channel, event_id=item.event.id,
                                  kind=item.event.kind.value, attempt=number, at=at, http_status=attempt.status,
                                  outcome=outcome, error=error, duration_ms=attempt.duration_ms, worker=worker[:120]))
        if attempt.gone:
            reason = f"the receiver answered 410 Gone at {at:%Y-%m-%d %H:%M} UTC"
            channels.disable(session, item.channel_id, reason)
            audit.record(session, schedule_principal(), "channel.disable", item.channel, audit.OK,
                         f"turned off: {reason} (event {item.event.id})")
    return attempt


def deliver_due(rt: Runtime, *, worker: str, send: Send | None = None, now: Clock = utcnow,
                batch: int = BATCH) -> int:
    """Attempt every outbox row due at ``now()``, a claimed batch at a time; the number delivered.
    ``send`` defaults to lib.notify's sender (made only when something is due)."""
    delivered = 0
    while claimed := _claim(rt, worker, now(), batch):
        send = send or default_sender(rt.settings)
        delivered += sum(_attempt(rt, worker, item, send, now).delivered for item in claimed)
    return delivered


def deliver_one(rt: Runtime, outbox_id: int, *, worker: str, send: Send | None = None,
                now: Clock = utcnow) -> Attempt | None:
    """Attempt one row now (an admin's Send test); None when it is not due or someone holds it."""
    claimed = _claim(rt, worker, now(), 1, only=outbox_id)
    if not claimed:
        return None
    return _attempt(rt, worker, claimed[0], send or default_sender(rt.settings), now)


def summarise(session: Session, now: datetime) -> None:
    """For each channel whose quiet window has ended: what it held, as one window.summary event,
    without failures that recovered meanwhile (and their recoveries)."""
    holding = set(session.connection().execute(
        sql_select(AlertOutbox.channel_id).where(AlertOutbox.status == HELD).distinct()).scalars())
    if not holding:
        return
    windows = _windows(session, holding)
    alerting = {(c, p) for c, p in session.connection().execute(
        sql_select(AlertState.connection_id, AlertState.subject).where(col(AlertState.alerted_at).is_not(None)))}
    for channel_id in holding:
        if any(w.covers(now) for w in windows.get(channel_id, ())):
            continue
        held = session.exec(select(AlertOutbox).where(AlertOutbox.channel_id == channel_id, AlertOutbox.status == HELD)
                            .order_by(col(AlertOutbox.id)).with_for_update()).all()
        failed_held = {(r.connection_id, r.product) for r in held if r.kind == EventKind.FAILED}
        kept = [from_json(r.event) for r in held if not _recovered_meanwhile(r, alerting, failed_held)]
        for r in held:
            r.status, r.finished_at = SUMMARISED, now
        if kept:
            insert_ignoring(session, AlertOutbox, [row(channel_id, (summary_event(channel_id, kept, at=now), None), now)],
                            ["channel_id", "event_id"])


def _recovered_meanwhile(r: AlertOutbox, alerting: set[tuple[uuid.UUID | None, str | None]],
                         failed_held: set[tuple[uuid.UUID | None, str | None]]) -> bool:
    pair = (r.connection_id, r.product)
    if r.kind in (EventKind.FAILED, EventKind.STILL_FAILING):
        return pair not in alerting
    return r.kind == EventKind.RECOVERED and pair in failed_held
