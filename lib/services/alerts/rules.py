"""The alert rules: which check results, token answers and ages are worth telling admins.

``observe`` runs inside the transaction that stores check results (lib.services.checking.checks.store), so an
event is queued if and only if the result that caused it is stored. ``periodic`` runs at every
worker tick: reminders while a product stays down, and secrets growing old. Only the products
an admin ticked count (all five when none are), as everywhere else (lib.services.history.status).

- check.failed: a ticked product failed FAIL_AFTER times in a row (a flap raises nothing).
- check.recovered: it works again, and only after a check.failed was sent for the episode.
- check.still_failing: every REMIND_EVERY while it stays down after check.failed, unless someone
  acknowledged the episode (lib.services.alerts.incidents); an acknowledgement lasts until the
  episode recovers or fails another way (news again: reminders resume).
- products.drifted: the token grants other products than last time, or (first time seen) not
  every ticked one.
- secret.aging: the Client Secret is older than SECRET_WARN_AGE; again every SECRET_STEP.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import Session, col

from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import TOKEN
from lib.notify.models import EventKind
from lib.services.alerts.events import Subject, aging_event, check_event, drift_event
from lib.services.alerts.outbox import Raised, enqueue, insert_ignoring
from lib.services.history import rollups
from lib.services.history.status import CheckRecord
from lib.store.models import AlertState, Check, Connection, CurrentStatus, utcnow

FAIL_AFTER = 2
REMIND_EVERY = timedelta(hours=24)
SECRET_WARN_AGE = timedelta(days=180)
SECRET_STEP = timedelta(days=30)
OPEN_LIMIT = 1_000  # open episodes a joining channel is told of (the oldest connections' first)
SECRET = "secret"  # the AlertState subject that remembers the last secret-age step announced

_SUBJECT = (
    col(Connection.id),
    col(Connection.name),
    col(Connection.environment),
    col(Connection.client_id_hint),
    col(Connection.expected_products),
    col(Connection.granted_products),
    col(Connection.granted_at),
)


def _subject(row: Any) -> Subject:
    return Subject(row.id, row.name, row.environment, row.client_id_hint)


def _counts(row: Any, product: str) -> bool:
    return not row.expected_products or product in row.expected_products


def observe(
    session: Session,
    records: Sequence[CheckRecord],
    granted: Mapping[uuid.UUID, frozenset[str]],
    *,
    fail_after: int = FAIL_AFTER,
) -> None:
    """Feed a batch of stored results (and what the tokens granted) to the rules, in the
    caller's write transaction, before the granted products are recorded."""
    ids = {r.connection_id for r in records if r.product != TOKEN} | set(granted)
    if not ids:
        return
    known = {
        row.id: row for row in session.connection().execute(select(*_SUBJECT).where(col(Connection.id).in_(ids))).all()
    }
    raised = [*_drift(known, granted)]
    results = [
        r
        for r in records
        if r.product != TOKEN and r.connection_id in known and _counts(known[r.connection_id], r.product)
    ]
    if results:
        raised += _with_uptime(
            session, _results(session, results, known, fail_after), max(r.checked_at for r in results)
        )
    enqueue(session, raised, utcnow())


def _with_uptime(session: Session, raised: list[Raised], at: datetime) -> list[Raised]:
    """check.failed and check.recovered say how reliable the product was over 30 days until
    ``at`` (``uptime_30d``, 0 to 1; left out without checks), from the rollups, which hold this
    batch's checks already: one read for the whole batch, by the rollups' key."""
    wanted = {c for event, c in raised if event.kind in (EventKind.FAILED, EventKind.RECOVERED) and c is not None}
    if not wanted:
        return raised
    found = rollups.counts(session.connection(), at, connection_ids=wanted)
    shares = rollups.ratios(found)["30d"]
    uptime = {
        (uuid.UUID(str(c)), p): float(share)
        for c, p, share in zip(found["connection_id"], found["product"], shares, strict=True)
        if not math.isnan(share)
    }
    return [
        (replace(event, details={**event.details, "uptime_30d": uptime[(c, event.product)]}), c)
        if c is not None and (c, event.product) in uptime and event.kind in (EventKind.FAILED, EventKind.RECOVERED)
        else (event, c)
        for event, c in raised
    ]


def _drift(known: Mapping[uuid.UUID, Any], granted: Mapping[uuid.UUID, frozenset[str]]) -> list[Raised]:
    found: list[Raised] = []
    for connection_id, products in granted.items():
        row = known.get(connection_id)
        if row is None:
            continue
        previous = None if row.granted_products is None else frozenset(row.granted_products)
        ticked, now_granted = frozenset(row.expected_products), frozenset(products)
        if (now_granted != previous) if previous is not None else bool(ticked - now_granted):
            found.append(
                (
                    drift_event(
                        _subject(row),
                        granted=now_granted,
                        previous=previous,
                        ticked=ticked,
                        since=row.granted_at,  # since when 8x8 listed the previous ones
                        at=utcnow(),
                    ),
                    connection_id,
                )
            )
    return found


def _states(session: Session, pairs: Collection[tuple[uuid.UUID, str]]) -> dict[tuple[uuid.UUID, str], AlertState]:
    """The rules' rows for these pairs, locked until the transaction ends (PostgreSQL)."""
    rows = session.scalars(
        select(AlertState)
        .where(
            col(AlertState.connection_id).in_({c for c, _ in pairs}), col(AlertState.subject).in_({p for _, p in pairs})
        )
        .with_for_update()
    ).all()
    return {(s.connection_id, s.subject): s for s in rows if (s.connection_id, s.subject) in pairs}


def _results(
    session: Session, results: Sequence[CheckRecord], known: Mapping[uuid.UUID, Any], fail_after: int
) -> list[Raised]:
    pairs = {(r.connection_id, r.product) for r in results}
    states = _states(session, pairs)
    missing = {(r.connection_id, r.product) for r in results if not r.ok} - set(states)
    if missing:  # made by this or (concurrently) another transaction, then locked like the rest
        insert_ignoring(
            session,
            AlertState,
            [{"connection_id": c, "subject": p, "failures": 0} for c, p in missing],
            ["connection_id", "subject"],
        )
        states |= _states(session, missing)
    raised: list[Raised] = []
    for r in results:
        state = states.get((r.connection_id, r.product))
        if state is None:  # ok, and never failed
            continue
        subject = _subject(known[r.connection_id])
        if r.ok:
            if state.alerted_at is not None:
                raised.append(_check_event(session, EventKind.RECOVERED, subject, state, r))
            state.failures, state.failing_since, state.alerted_at, state.last_reminder_at = 0, None, None, None
            state.acknowledged_by = state.acknowledged_at = None
        else:
            if state.last_outcome != r.outcome:  # a different failure is news: reminders resume
                state.acknowledged_by = state.acknowledged_at = None
            if state.failures == 0:
                state.failing_since, state.episode = r.checked_at, r.checked_at.isoformat()
            state.failures += 1
            if state.failures >= fail_after and state.alerted_at is None:
                raised.append(_check_event(session, EventKind.FAILED, subject, state, r))
                state.alerted_at = state.last_reminder_at = r.checked_at
        state.last_outcome = r.outcome
    return raised


def _check_event(session: Session, kind: EventKind, subject: Subject, state: AlertState, r: CheckRecord) -> Raised:
    """check.failed says what the product did before the episode began (the last failure's
    outcome would only repeat its own); check.recovered says what it failed with, and for how
    long, with 8x8's words for the failure."""
    details: dict[str, Any] = {
        "failures_in_a_row": state.failures,
        "failing_since": state.failing_since.isoformat() if state.failing_since else None,
    }
    if kind is EventKind.FAILED:
        previous = _before(session, r.connection_id, r.product, state.failing_since)
        details["detail"] = r.detail or None
    else:
        previous = state.last_outcome
        if state.failing_since is not None:
            details["down_for_s"] = max(0, int((r.checked_at - state.failing_since).total_seconds()))
    return (
        check_event(
            kind,
            subject,
            r.product,
            r.outcome,
            previous=previous,
            checked_at=r.checked_at,
            http_status=r.http_status,
            episode=state.episode or "",
            details=details,
        ),
        r.connection_id,
    )


def _before(session: Session, connection_id: uuid.UUID, product: str, since: datetime | None) -> str | None:
    """The outcome of the newest check made before ``since`` (the episode's first failure);
    None when there was none, or it has been pruned. One connection's newest rows, by index."""
    if since is None:
        return None
    return session.scalars(
        select(col(Check.outcome))
        .where(col(Check.connection_id) == connection_id, col(Check.product) == product, col(Check.started_at) < since)
        .order_by(col(Check.id).desc())
        .limit(1)
    ).first()


def periodic(session: Session, now: datetime) -> None:
    """Reminders and secret ages, as they stand at ``now``, queued in the caller's transaction
    (which lib.services.alerts serializes across workers)."""
    enqueue(session, [*_reminders(session, now), *_aging(session, now)], now)


def _reminders(session: Session, now: datetime) -> list[Raised]:
    due = session.scalars(
        select(AlertState)
        .where(
            col(AlertState.alerted_at).is_not(None),
            col(AlertState.subject) != SECRET,
            col(AlertState.acknowledged_at).is_(None),
            or_(col(AlertState.last_reminder_at).is_(None), col(AlertState.last_reminder_at) <= now - REMIND_EVERY),
        )
        .with_for_update()
    ).all()
    raised: list[Raised] = []
    for state, row, last in still_failing(session, due):
        assert state.alerted_at is not None
        reminder = int((now - state.alerted_at) / REMIND_EVERY)
        details = {
            "failures_in_a_row": state.failures,
            "reminder": reminder,
            "failing_since": state.failing_since.isoformat() if state.failing_since else None,
        }
        raised.append(
            (
                check_event(
                    EventKind.STILL_FAILING,
                    _subject(row),
                    state.subject,
                    last.outcome,
                    previous=None,
                    checked_at=last.checked_at,
                    http_status=last.http_status,
                    episode=state.episode or "",
                    details=details,
                    extra=reminder,
                ),
                state.connection_id,
            )
        )
        state.last_reminder_at = now
    return raised


def still_failing(session: Session, states: Sequence[AlertState]) -> list[tuple[AlertState, Any, CurrentStatus]]:
    """Of these alerted states, those whose product still counts and still fails now: each with
    its connection's row and its current status."""
    if not states:
        return []
    known = {
        row.id: row
        for row in session.connection()
        .execute(select(*_SUBJECT).where(col(Connection.id).in_({s.connection_id for s in states})))
        .all()
    }
    current = {
        (c.connection_id, c.product): c
        for c in session.scalars(select(CurrentStatus).where(col(CurrentStatus.connection_id).in_(known))).all()
    }
    found = []
    for state in states:
        row, last = known.get(state.connection_id), current.get((state.connection_id, state.subject))
        if row is not None and last is not None and _counts(row, state.subject) and last.outcome != OutcomeKey.OK:
            found.append((state, row, last))
    return found


def open_failures(session: Session) -> list[Raised]:
    """The check.failed of every episode still open, as it was raised (same id: a channel that
    already has it gets it once), for a channel that joins while they fail (lib.services.alerts
    .channels) so it does not wait for the next 24-hour reminder."""
    alerted = session.scalars(
        select(AlertState)
        .where(col(AlertState.alerted_at).is_not(None), col(AlertState.subject) != SECRET)
        .order_by(col(AlertState.connection_id), col(AlertState.subject))
        .limit(OPEN_LIMIT)
    ).all()
    found: list[Raised] = []
    for state, row, last in still_failing(session, alerted):
        details = {
            "failures_in_a_row": state.failures,
            "failing_since": state.failing_since.isoformat() if state.failing_since else None,
        }
        found.append(
            (
                check_event(
                    EventKind.FAILED,
                    _subject(row),
                    state.subject,
                    last.outcome,
                    previous=_before(session, state.connection_id, state.subject, state.failing_since),
                    checked_at=last.checked_at,
                    http_status=last.http_status,
                    episode=state.episode or "",
                    details=details,
                ),
                state.connection_id,
            )
        )
    return found


def _aging(session: Session, now: datetime) -> list[Raised]:
    old = (
        session.connection()
        .execute(
            select(*_SUBJECT, col(Connection.secret_set_at), col(AlertState.episode))
            .outerjoin(
                AlertState, and_(col(AlertState.connection_id) == col(Connection.id), col(AlertState.subject) == SECRET)
            )
            .where(col(Connection.secret_set_at) <= now - SECRET_WARN_AGE)
        )
        .all()
    )
    raised: list[Raised] = []
    marks = []
    for row in old:
        age = now - row.secret_set_at
        step = int((age - SECRET_WARN_AGE) / SECRET_STEP)
        mark = f"{row.secret_set_at.isoformat()}#{step}"
        if row.episode == mark:
            continue
        raised.append(
            (aging_event(_subject(row), secret_set_at=row.secret_set_at, age_days=age.days, step=step, at=now), row.id)
        )
        marks.append({"connection_id": row.id, "mark": mark})
    if marks:
        insert_ignoring(
            session,
            AlertState,
            [{"connection_id": m["connection_id"], "subject": SECRET, "failures": 0} for m in marks],
            ["connection_id", "subject"],
        )
        for marked in marks:
            state = session.get(AlertState, (marked["connection_id"], SECRET))
            assert state is not None
            state.episode = marked["mark"]
    return raised
