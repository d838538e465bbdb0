"""Alerts: the rules that turn check results into events (lib.services.alerts.rules, fed by lib.services.checking.checks in
the transaction that stores each result), the outbox, the channels admins route them to, and
the worker's delivery with retries (lib.services.alerts.delivery). lib.notify turns one event into one
request or e-mail; nothing here speaks HTTP.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import col

from lib.notify.models import Attempt, Event
from lib.services.alerts import delivery, maintenance, rules
from lib.services.alerts.channels import locked
from lib.services.alerts.delivery import Clock, Send
from lib.services.alerts.events import channel_test_event, from_json
from lib.services.alerts.outbox import FAILED, HELD, PENDING, prune, row
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.services.runtime import Runtime
from lib.store.db import read_session, serialize, write_session
from lib.store.models import AlertChannel, AlertDelivery, AlertOutbox, AlertState, utcnow


def tick(rt: Runtime, *, worker: str, send: Send | None = None, now: Clock = utcnow) -> int:
    """A worker's alert work: reminders and secret ages, summaries of quiet and maintenance
    windows that ended, old outbox rows and log entries pruned, then every delivery due. Returns how many events
    were delivered. What is due goes out even when the first part fails, whose error is then
    raised (the tick failed, and says so)."""
    try:
        with write_session(rt.engine) as session:
            serialize(session, "alerts")
            at = now()
            rules.periodic(session, at)
            delivery.summarise(session, at)
            maintenance.summarise(session, at)
            prune(session, at)
    except Exception:
        delivery.deliver_due(rt, worker=worker, send=send, now=now)
        raise
    return delivery.deliver_due(rt, worker=worker, send=send, now=now)


def send_test(rt: Runtime, name: str, *, actor: Principal, send: Send | None = None) -> Attempt:
    """Send a channel.test event to the channel now (one attempt, never held by a quiet window,
    never retried), and say how it went; audited, and in the delivery log like any other. Its
    outbox row is settled before this returns, whatever happens to the attempt."""
    require(actor, Permission.MANAGE_ALERTS)
    now = utcnow()
    tester = f"test:{actor.name}"[:120]
    turned_off = Attempt(delivered=False, refused=True, error="The channel is turned off; turn it on first.")
    with write_session(rt.engine) as session:
        channel = locked(session, name)
        channel_name, enabled = channel.name, channel.enabled
        if enabled:  # queued already held by this call, so no worker's tick takes it first
            event = channel_test_event(channel.name, at=now, by=actor.name)
            queued = AlertOutbox(
                **row(channel.id, (event, None), now), claimed_by=tester, claimed_until=now + delivery.LEASE
            )
            session.add(queued)
            session.flush()
            assert queued.id is not None  # the flush gave it one
            outbox_id = queued.id
    attempt = (delivery.deliver_one(rt, outbox_id, worker=tester, send=send) if enabled else None) or turned_off
    said = f"HTTP {attempt.status}" if attempt.status else ""
    audit.record_now(
        rt.engine,
        actor,
        "channel.test",
        channel_name,
        audit.OK if attempt.delivered else audit.FAILED,
        "; ".join(s for s in (said, attempt.error or "") if s) or "delivered",
    )
    return attempt


# --- Reading it back (every role) -------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """An outbox row as the console shows it."""

    channel: str
    event: Event
    status: str
    attempts: int
    due_at: datetime
    last_error: str | None


def outbox(
    engine: Engine, *, actor: Principal, statuses: tuple[str, ...] = (PENDING, HELD, FAILED), limit: int = 200
) -> list[Queued]:
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        found = (
            session.connection()
            .execute(
                select(
                    col(AlertChannel.name),
                    col(AlertOutbox.event),
                    col(AlertOutbox.status),
                    col(AlertOutbox.attempts),
                    col(AlertOutbox.due_at),
                    col(AlertOutbox.last_error),
                )
                .join(AlertChannel, col(AlertChannel.id) == col(AlertOutbox.channel_id))
                .where(col(AlertOutbox.status).in_(statuses))
                .order_by(col(AlertOutbox.id).desc())
                .limit(limit)
            )
            .all()
        )
    return [
        Queued(name, from_json(event), status, attempts, due, error)
        for name, event, status, attempts, due, error in found
    ]


def delivery_log(engine: Engine, *, actor: Principal, limit: int = 200) -> list[AlertDelivery]:
    """The latest attempts, newest first."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        return list(session.scalars(select(AlertDelivery).order_by(col(AlertDelivery.id).desc()).limit(limit)).all())


def alerting(engine: Engine, *, actor: Principal, connection_id: uuid.UUID | None = None) -> set[tuple[uuid.UUID, str]]:
    """(connection id, product) pairs whose check.failed was raised and that have not
    recovered (of one connection, when given)."""
    require(actor, Permission.READ_STATUS)
    query = select(col(AlertState.connection_id), col(AlertState.subject)).where(
        col(AlertState.alerted_at).is_not(None)
    )
    if connection_id is not None:
        query = query.where(col(AlertState.connection_id) == connection_id)
    with read_session(engine) as session:
        return {(c, p) for c, p in session.connection().execute(query)}
