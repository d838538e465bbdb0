"""The outbox: each event, once per channel that routes it, written in the caller's transaction.

A row is unique per (channel, event id), so an event raised twice (two workers, a restart, a
reminder computed again) is queued once: the second insert does nothing. Rows finished (delivered,
failed for good, summarised) and delivery-log entries are kept for KEEP, then pruned by the
worker's tick, so neither table grows without end. The rules never look at the outbox to decide
what to raise (lib.services.alerts.rules keeps its own state), so pruning cannot raise an event again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session, col

from lib.notify.models import Event
from lib.services.alerts.events import to_json
from lib.store.db import insert_on_conflict
from lib.store.models import AlertChannel, AlertDelivery, AlertOutbox

PENDING, DELIVERED, FAILED, HELD, SUMMARISED = "pending", "delivered", "failed", "held", "summarised"
FINISHED = (DELIVERED, FAILED, SUMMARISED)
KEEP = timedelta(days=90)  # finished outbox rows and the delivery log, for the console and audits


def routes(events: Iterable[str], environments: Iterable[str], event: Event) -> bool:
    """Whether a channel with these choices receives ``event``: its kind is chosen, and its
    connection's environment is among the chosen ones (none chosen: every environment)."""
    wanted = {e.casefold() for e in environments}
    return event.kind.value in set(events) and (not wanted or (event.environment or "").casefold() in wanted)


def insert_ignoring(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT the rows, skipping any whose ``keys`` a row already has (on every engine)."""
    if not rows:
        return
    statement = insert_on_conflict(session.get_bind().dialect.name, model)
    session.connection().execute(statement.on_conflict_do_nothing(index_elements=keys), rows)


# An event and the connection it is about (None: about no connection, e.g. a test).
Raised = tuple[Event, uuid.UUID | None]


def row(channel_id: uuid.UUID, raised: Raised, now: datetime) -> dict[str, Any]:
    event, connection_id = raised
    return {
        "channel_id": channel_id,
        "event_id": event.id,
        "kind": event.kind.value,
        "connection_id": connection_id,
        "product": event.product,
        "event": to_json(event),
        "created_at": now,
        "due_at": now,
        "attempts": 0,
        "status": PENDING,
    }


def enqueue(session: Session, raised: Sequence[Raised], now: datetime) -> None:
    """Queue each event for every enabled channel that routes it."""
    if not raised:
        return
    channels = (
        session.connection()
        .execute(
            select(col(AlertChannel.id), col(AlertChannel.events), col(AlertChannel.environments)).where(
                col(AlertChannel.enabled)
            )
        )
        .all()
    )
    rows = [
        row(channel_id, item, now)
        for item in raised
        for channel_id, kinds, environments in channels
        if routes(kinds, environments, item[0])
    ]
    insert_ignoring(session, AlertOutbox, rows, ["channel_id", "event_id"])


def prune(session: Session, now: datetime) -> None:
    """Remove outbox rows finished, and delivery-log entries written, more than KEEP ago."""
    before = now - KEEP
    session.connection().execute(
        delete(AlertOutbox).where(col(AlertOutbox.status).in_(FINISHED), col(AlertOutbox.finished_at) < before)
    )
    session.connection().execute(delete(AlertDelivery).where(col(AlertDelivery.at) < before))
