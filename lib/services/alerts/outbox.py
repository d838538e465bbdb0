"""The outbox: each event, once per channel that routes it, written in the caller's transaction.

A row is unique per (channel, event id), so an event raised twice (two workers, a restart, a
reminder computed again) is queued once: the second insert does nothing. Rows finished (delivered,
failed for good, summarised) and delivery-log entries are kept for KEEP, then pruned by the
worker's tick, so neither table grows without end. The rules never look at the outbox to decide
what to raise (lib.services.alerts.rules keeps its own state), so pruning cannot raise an event again.

An event about a connection that a maintenance window covers at its moment is queued for no
channel (:func:`outside_maintenance`); the rules' state moves on as usual, so nothing is raised
for it after the window, whose end summary (lib.services.alerts.maintenance) says what still fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session, col

from lib.notify.models import Event, EventKind
from lib.services.alerts.events import to_json
from lib.store.db import insert_on_conflict
from lib.store.models import AlertChannel, AlertDelivery, AlertOutbox, MaintenanceWindow

PENDING, DELIVERED, FAILED, HELD, SUMMARISED = "pending", "delivered", "failed", "held", "summarised"
FINISHED = (DELIVERED, FAILED, SUMMARISED)
KEEP = timedelta(days=90)  # finished outbox rows and the delivery log, for the console and audits
# What a maintenance window keeps from the channels: what a connection's checks and token raise
# (a secret's age is no consequence of the work, and a channel test is about no connection).
MAINTAINED = frozenset({EventKind.FAILED, EventKind.RECOVERED, EventKind.STILL_FAILING, EventKind.DRIFTED})


def routes(events: Iterable[str], environments: Iterable[str], event: Event) -> bool:
    """Whether a channel with these choices receives ``event``: its kind is chosen, and its
    connection's environment is among the chosen ones (none chosen: every environment)."""
    return event.kind.value in set(events) and routes_environment(environments, event.environment)


def routes_environment(environments: Iterable[str], environment: str | None) -> bool:
    """Whether a channel for these environments (none: every one) hears of a connection in ``environment``."""
    wanted = {e.casefold() for e in environments}
    return not wanted or (environment or "").casefold() in wanted


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


def covers(window: Any, connection_id: uuid.UUID | None, environment: str | None, moment: datetime) -> bool:
    """Whether a maintenance window (a row, or anything with its fields) covers the connection
    (in ``environment``) at ``moment``: its start is in, its end out."""
    return bool(window.starts_at <= moment < window.ends_at) and in_scope(window, connection_id, environment)


def in_scope(window: Any, connection_id: uuid.UUID | None, environment: str | None) -> bool:
    """Whether a maintenance window is about the connection (in ``environment``): it names that
    connection, or its environment (ignoring case, as routing does), or neither (every one)."""
    if window.connection_id is not None:
        return bool(window.connection_id == connection_id)
    if window.environment is not None:
        return bool(window.environment.casefold() == (environment or "").casefold())
    return True


def _moment(event: Event, now: datetime) -> datetime:
    """When an event happened, for maintenance: a check's result when the check was made (one
    stored a moment after its window ended is still the window's); a reminder or a drift when it
    is raised."""
    if event.kind in (EventKind.FAILED, EventKind.RECOVERED) and event.checked_at is not None:
        return event.checked_at
    return now


def _began_inside(event: Event, window: Any) -> bool:
    """A recovery is kept from the channels only when its failure began inside the window (it
    was never announced). One that began before the window was announced before it, so its end
    is sent too: a receiver, PagerDuty among them, closes what it opened."""
    if event.kind is not EventKind.RECOVERED:
        return True
    since = event.details.get("failing_since")
    return not isinstance(since, str) or datetime.fromisoformat(since) >= window.starts_at


def outside_maintenance(session: Session, raised: Sequence[Raised], now: datetime) -> list[Raised]:
    """The events no maintenance window covers, in one query for the whole batch: the windows
    that overlap its moments (by the index on their end; at most OPEN_MAX not yet ended,
    lib.services.alerts.maintenance, and those ended since the batch's oldest moment)."""
    spared = {
        i: _moment(event, now)
        for i, (event, connection_id) in enumerate(raised)
        if connection_id is not None and event.kind in MAINTAINED
    }
    if not spared:
        return list(raised)
    windows = (
        session.connection()
        .execute(
            select(
                col(MaintenanceWindow.connection_id),
                col(MaintenanceWindow.environment),
                col(MaintenanceWindow.starts_at),
                col(MaintenanceWindow.ends_at),
            ).where(
                col(MaintenanceWindow.ends_at) > min(spared.values()),
                col(MaintenanceWindow.starts_at) <= max(spared.values()),
            )
        )
        .all()
    )
    covered = {
        i
        for i, moment in spared.items()
        if any(
            covers(w, raised[i][1], raised[i][0].environment, moment) and _began_inside(raised[i][0], w)
            for w in windows
        )
    }
    return [item for i, item in enumerate(raised) if i not in covered]


def enabled_channels(session: Session) -> Sequence[Any]:
    """Each enabled channel's id and routing (``events``, ``environments``: see :func:`routes`)."""
    query = select(col(AlertChannel.id), col(AlertChannel.events), col(AlertChannel.environments))
    return session.connection().execute(query.where(col(AlertChannel.enabled))).all()


def enqueue(session: Session, raised: Sequence[Raised], now: datetime) -> None:
    """Queue each event for every enabled channel that routes it, but those a maintenance
    window covers (:func:`outside_maintenance`)."""
    raised = outside_maintenance(session, raised, now)
    if not raised:
        return
    channels = enabled_channels(session)
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
