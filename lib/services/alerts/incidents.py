"""Open problems, and acknowledging them.

An incident is one open episode of one (connection, ticked product): the rules sent its
check.failed (lib.services.alerts.rules), the product still counts and still fails now. Its ID
is short and names that episode alone, so an ID read from a list that has since changed (the
product recovered, or failed again later) is refused rather than acknowledging something else.

Acknowledging says someone took the problem on: its reminders stop until it recovers or fails
another way (the rules clear the acknowledgement then), and the channels that were told of the
failure are told who took it (PagerDuty: the alert is acknowledged, under the failure's dedup
key). It is decided when it is done: the role that may acknowledge, and the episode still open.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCTS
from lib.kernel.errors import FieldError, NotFoundError, ValidationError
from lib.kernel.words import iso, shown
from lib.notify.models import EventKind
from lib.services.alerts import rules
from lib.services.alerts.events import Subject, acknowledged_event
from lib.services.alerts.outbox import DELIVERED, Raised, covers, insert_ignoring, row
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.store.db import read_session, write_session
from lib.store.models import AlertChannel, AlertOutbox, AlertState, CurrentStatus, MaintenanceWindow, utcnow

ID_LENGTH = 10
_ID = re.compile(rf"[0-9a-f]{{{ID_LENGTH}}}")
_TOLD = (EventKind.FAILED.value, EventKind.STILL_FAILING.value)  # what tells a channel of a failure
ENDED = "No open incident has that ID: it has ended, or was mistyped. `switchboard incidents list` shows what is open."


def incident_id(connection_id: uuid.UUID, product: str, episode: str) -> str:
    """The same episode always has the same ID, and another episode (of any connection and
    product) another one."""
    return hashlib.sha256(f"{connection_id}|{product}|{episode}".encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Told:
    """A channel told of an incident: when it last got a message of it (None: not yet), and
    how its newest message stands (delivered, pending, held, failed)."""

    channel: str
    at: datetime | None
    status: str

    def describe(self) -> str:
        when = f" {shown(self.at)}" if self.at is not None else ""
        return f"{self.channel}{when}" + ("" if self.status == DELIVERED else f" ({self.status})")


@dataclass(frozen=True)
class Incident:
    """One open problem as the console and the command line show it."""

    id: str
    connection: str
    environment: str
    product: str
    product_label: str
    outcome: str
    outcome_label: str  # the outcome in plain words
    cause: str
    failing_since: datetime | None
    failures: int  # failing checks in a row
    alerted_at: datetime | None
    told: tuple[Told, ...]
    next_reminder_at: datetime | None  # None while acknowledged
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    maintenance_until: datetime | None = None  # a maintenance window covers it now, until then


@dataclass(frozen=True)
class Acknowledgement:
    """What ``acknowledge`` did: the incident as it stands now, and whether someone had
    acknowledged it already (then nothing changed and nobody was told again)."""

    incident: Incident
    already: bool

    def describe(self) -> str:
        i = self.incident
        what = f"{i.connection}: {i.product_label} ({i.outcome_label})"
        if self.already:
            return f"{i.acknowledged_by} already acknowledged {what} at {shown(i.acknowledged_at)}; nothing changed."
        return f"Acknowledged {what}: reminders stop until it recovers or fails another way."


def open_incidents(engine: Engine, *, actor: Principal, now: datetime | None = None) -> list[Incident]:
    """What fails now, newest episode first (then by connection), at most rules.OPEN_LIMIT of
    them. A reminder already due (the worker has not ticked since) is next at ``now``."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        states = session.scalars(
            select(AlertState)
            .where(col(AlertState.alerted_at).is_not(None), col(AlertState.subject) != rules.SECRET)
            .order_by(col(AlertState.failing_since).desc(), col(AlertState.connection_id), col(AlertState.subject))
            .limit(rules.OPEN_LIMIT)
        ).all()
        found = _incidents(session, states, now or utcnow())
    return sorted(found, key=lambda i: (-(i.failing_since.timestamp() if i.failing_since else 0), i.connection))


def _incidents(session: Session, states: Sequence[AlertState], now: datetime) -> list[Incident]:
    failing = rules.still_failing(session, states)
    told = _told(session, [state for state, _, _ in failing])
    windows = _windows_in_force(session, now) if failing else []
    return [
        replace(
            _incident(state, row, last, told.get((state.connection_id, state.subject), ()), now),
            maintenance_until=max(
                (w.ends_at for w in windows if covers(w, state.connection_id, row.environment, now)), default=None
            ),
        )
        for state, row, last in failing
    ]


def _windows_in_force(session: Session, now: datetime) -> Sequence[Any]:
    """The maintenance windows in force at ``now`` (by the index on their end; at most
    lib.services.alerts.maintenance.OPEN_MAX have not ended)."""
    query = select(
        col(MaintenanceWindow.connection_id),
        col(MaintenanceWindow.environment),
        col(MaintenanceWindow.starts_at),
        col(MaintenanceWindow.ends_at),
    ).where(col(MaintenanceWindow.ends_at) > now, col(MaintenanceWindow.starts_at) <= now)
    return session.connection().execute(query).all()


def _incident(state: AlertState, row: Any, last: CurrentStatus, told: tuple[Told, ...], now: datetime) -> Incident:
    product, outcome = PRODUCTS.get(state.subject), OUTCOMES.get(last.outcome)
    reminded = state.last_reminder_at or state.alerted_at
    due = None if state.acknowledged_at or reminded is None else max(reminded + rules.REMIND_EVERY, now)
    return Incident(
        id=incident_id(state.connection_id, state.subject, state.episode or ""),
        connection=row.name,
        environment=row.environment,
        product=state.subject,
        product_label=product.name if product else state.subject,
        outcome=last.outcome,
        outcome_label=outcome.label if outcome else last.outcome,
        cause=outcome.cause if outcome else "",
        failing_since=state.failing_since,
        failures=state.failures,
        alerted_at=state.alerted_at,
        told=told,
        next_reminder_at=due,
        acknowledged_by=state.acknowledged_by,
        acknowledged_at=state.acknowledged_at,
    )


def _told(session: Session, states: Sequence[AlertState]) -> dict[tuple[uuid.UUID, str], tuple[Told, ...]]:
    """Which channels each episode's check.failed and reminders were queued for, from the
    outbox (kept KEEP after they are finished): one query for them all. A row is the episode's
    when it says the episode's first failure (its ``failing_since``)."""
    if not states:
        return {}
    since = {(s.connection_id, s.subject): iso(s.failing_since) for s in states}
    rows = (
        session.connection()
        .execute(
            select(
                col(AlertOutbox.connection_id),
                col(AlertOutbox.product),
                col(AlertChannel.name),
                col(AlertOutbox.status),
                col(AlertOutbox.finished_at),
                col(AlertOutbox.event),
            )
            .join(AlertChannel, col(AlertChannel.id) == col(AlertOutbox.channel_id))
            .where(
                col(AlertOutbox.connection_id).in_({c for c, _ in since}),
                col(AlertOutbox.product).in_({p for _, p in since}),
                col(AlertOutbox.kind).in_(_TOLD),
            )
            .order_by(col(AlertOutbox.id))
        )
        .all()
    )
    newest: dict[tuple[uuid.UUID, str], dict[str, Told]] = {}
    for connection_id, product, channel, status, finished_at, event in rows:
        pair = (connection_id, product)
        if pair not in since or _episode_of(event) != since[pair]:
            continue
        by_channel = newest.setdefault(pair, {})
        before = by_channel.get(channel)
        at = finished_at if status == DELIVERED else (before.at if before else None)
        by_channel[channel] = Told(channel, at, status)
    return {pair: tuple(sorted(told.values(), key=lambda t: t.channel.casefold())) for pair, told in newest.items()}


def _episode_of(event: Any) -> str | None:
    """The first failure a queued event's episode began with, in the machine form; None when
    the stored event does not say."""
    details = event.get("details") if isinstance(event, dict) else None
    since = details.get("failing_since") if isinstance(details, dict) else None
    if not isinstance(since, str):
        return None
    try:
        return iso(datetime.fromisoformat(since))
    except ValueError:
        return None


def _checked_id(text: str) -> str:
    wanted = text.strip().lower()
    if not _ID.fullmatch(wanted):
        raise ValidationError(
            [
                FieldError(
                    "incident_id",
                    "Incident ID",
                    f"Use the {ID_LENGTH}-character ID (digits and a-f) that `switchboard incidents list` "
                    "or the Monitoring page shows, e.g. 3f9a0c12be.",
                )
            ]
        )
    return wanted


def acknowledge(engine: Engine, incident: str, *, actor: Principal, now: datetime | None = None) -> Acknowledgement:
    """``actor`` takes on the open incident ``incident`` (an ID): its reminders stop, the
    channels told of it are told who took it, and the audit trail says so. Refused when the
    episode it names has ended (or another one has begun): the list shows what is open now."""
    me = require(actor, Permission.ACKNOWLEDGE_ALERTS)
    wanted = _checked_id(incident)
    at = now or utcnow()
    with write_session(engine) as session:
        state = _locked(session, wanted)
        failing = rules.still_failing(session, [state]) if state is not None else []
        if not failing:
            raise NotFoundError(ENDED)
        state, row, last = failing[0]
        if state.acknowledged_at is not None:
            return Acknowledgement(_incidents(session, [state], at)[0], already=True)
        state.acknowledged_by, state.acknowledged_at = me.name[:120], at
        subject = Subject(row.id, row.name, row.environment, row.client_id_hint)
        event = acknowledged_event(
            subject,
            state.subject,
            last.outcome,
            episode=state.episode or "",
            failing_since=state.failing_since,
            by=state.acknowledged_by,
            at=at,
        )
        _tell(session, state, (event, row.id), at)
        audit.record(session, me, "incident.ack", f"{row.name}/{state.subject}", audit.OK, f"incident {wanted}")
        session.flush()
        return Acknowledgement(_incidents(session, [state], at)[0], already=False)


def _locked(session: Session, wanted: str) -> AlertState | None:
    """The alerted episode whose ID is ``wanted``, locked as the rules lock it (so a check
    stored meanwhile waits, or is seen); None when no open episode has that ID."""
    pairs = session.connection().execute(
        select(col(AlertState.connection_id), col(AlertState.subject), col(AlertState.episode)).where(
            col(AlertState.alerted_at).is_not(None), col(AlertState.subject) != rules.SECRET
        )
    )
    match = next(((c, s) for c, s, e in pairs if incident_id(c, s, e or "") == wanted), None)
    if match is None:
        return None
    state = session.scalars(
        select(AlertState)
        .where(col(AlertState.connection_id) == match[0], col(AlertState.subject) == match[1])
        .with_for_update()
    ).first()
    if state is None or state.alerted_at is None or incident_id(*match, state.episode or "") != wanted:
        return None  # it recovered, or another episode began, before the lock was taken
    return state


def _tell(session: Session, state: AlertState, raised: Raised, now: datetime) -> None:
    """Queue the acknowledgement for every channel still on that had a message of the episode."""
    since = iso(state.failing_since)
    channels = {
        channel_id
        for channel_id, event in session.connection().execute(
            select(col(AlertOutbox.channel_id), col(AlertOutbox.event))
            .join(AlertChannel, col(AlertChannel.id) == col(AlertOutbox.channel_id))
            .where(
                col(AlertOutbox.connection_id) == state.connection_id,
                col(AlertOutbox.product) == state.subject,
                col(AlertOutbox.kind).in_(_TOLD),
                col(AlertChannel.enabled),
            )
        )
        if _episode_of(event) == since
    }
    rows = [row(channel_id, raised, now) for channel_id in sorted(channels, key=str)]
    insert_ignoring(session, AlertOutbox, rows, ["channel_id", "event_id"])
