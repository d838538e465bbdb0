"""The schedule: how often the ticked products of each connection are checked, what is paused,
when each (connection, product) is next due, and which workers are alive.

Each connection's slots lie on a grid of its own: every ``every`` from the Unix epoch, shifted by
an offset derived from the connection id (a fraction of the interval), so a fleet is spread
over the whole interval instead of asking 8x8 all at once, and every instance computes the same
slots. After a check the product is due in the next slot of the grid at least a quarter
interval away, failing or not: never sooner, and a check that ran late (a worker catching up)
is not followed by another one moments later. A product answering rate_limited skips a slot
and waits at least as long as 8x8's Retry-After asked.

lib.services.checking.worker claims and runs what is due; this module keeps the settings and the due rows, and
reads them back for the console and ``switchboard schedule``.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlmodel import Session, col

from lib.catalogue import policy
from lib.catalogue.outcomes import OutcomeKey
from lib.kernel.errors import FieldError, ValidationError
from lib.kernel.words import SPAN_EXAMPLES, parse_span, span
from lib.services.connections import ConnectionView
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.store import leases
from lib.store.db import read_session, serialize, write_session
from lib.store.models import (
    Connection,
    ConnectionSchedule,
    DueCheck,
    ScheduleSetting,
    WorkerHeartbeat,
    utcnow,
)

DEFAULT_EVERY = timedelta(minutes=15)
MIN_EVERY = timedelta(minutes=1)
MAX_EVERY = timedelta(days=7)
LONGEST_WAIT = timedelta(seconds=policy.RETRY_AFTER_CEILING_S)  # the most a Retry-After delays a check
ALIVE_TICKS = 3  # a worker not seen for this many of its ticks counts as stopped
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SETTING_ID = 1


# --- Slots ----------------------------------------------------------------------------------


def parse_every(text: str) -> timedelta:
    """An interval as people write it (``15m``), within MIN_EVERY and MAX_EVERY."""
    every = parse_span(text)
    if every is None:
        raise ValidationError(
            [
                FieldError(
                    "every",
                    "Interval",
                    f"'{text}' is not an interval: write a whole number and a unit, e.g. {SPAN_EXAMPLES}.",
                )
            ]
        )
    _check_every(every)
    return every


def _check_every(every: timedelta) -> None:
    if not MIN_EVERY <= every <= MAX_EVERY:
        raise ValidationError(
            [
                FieldError(
                    "every",
                    "Interval",
                    f"Checks run at most every {span(MIN_EVERY)} and at least "
                    f"every {span(MAX_EVERY)}, not every {span(every)}. "
                    "Use e.g. 15m.",
                )
            ]
        )


def offset(connection_id: uuid.UUID, every: timedelta) -> timedelta:
    """Where in each interval the connection's slots fall: the same fraction of the interval
    on every instance, spread evenly over [0, every) across connections."""
    fraction = int.from_bytes(hashlib.sha256(connection_id.bytes).digest()[:8], "big") / 2**64
    return timedelta(seconds=int(fraction * every.total_seconds()))


def next_slot(after: datetime, every: timedelta, shift: timedelta) -> datetime:
    """The first slot (epoch + shift + k x every) strictly after ``after``."""
    passed = (after - _EPOCH - shift) // every
    return _EPOCH + shift + (passed + 1) * every


def next_due(
    now: datetime, every: timedelta, shift: timedelta, outcome: str, retry_after_s: float | None = None
) -> datetime:
    """When a product just checked with ``outcome`` is due again: the next slot at least a
    quarter interval away; after rate_limited the slot after that, and no sooner than 8x8's
    Retry-After (at most LONGEST_WAIT: whatever 8x8 asked, the status is checked again)."""
    due = next_slot(now + every / 4, every, shift)
    if outcome != OutcomeKey.RATE_LIMITED:
        return due
    return next_slot(max(due, now + asked_wait(retry_after_s)), every, shift)


def asked_wait(retry_after_s: float | None) -> timedelta:
    """A Retry-After as a wait the schedule honours: none for a missing, negative or NaN
    value; at most LONGEST_WAIT (gateways send epochs in milliseconds)."""
    if retry_after_s is None or math.isnan(retry_after_s) or retry_after_s <= 0:
        return timedelta(0)
    return timedelta(seconds=min(retry_after_s, LONGEST_WAIT.total_seconds()))


# --- Settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intervals:
    """The schedule's settings as they stand: the default, and each connection's own."""

    every: timedelta = DEFAULT_EVERY
    paused: bool = False  # for all connections
    own: Mapping[uuid.UUID, ConnectionSchedule] = field(default_factory=dict)

    def has_own_every(self, connection_id: uuid.UUID) -> bool:
        row = self.own.get(connection_id)
        return row is not None and row.every_s is not None

    def every_for(self, connection_id: uuid.UUID) -> timedelta:
        row = self.own.get(connection_id)
        return timedelta(seconds=row.every_s) if row is not None and row.every_s is not None else self.every

    def paused_for(self, connection_id: uuid.UUID) -> bool:
        row = self.own.get(connection_id)
        return self.paused or (row is not None and row.paused)

    def next_slot(self, connection_id: uuid.UUID, now: datetime) -> datetime:
        every = self.every_for(connection_id)
        return next_slot(now, every, offset(connection_id, every))

    def next_due(
        self, connection_id: uuid.UUID, now: datetime, outcome: str, retry_after_s: float | None = None
    ) -> datetime:
        every = self.every_for(connection_id)
        return next_due(now, every, offset(connection_id, every), outcome, retry_after_s)


def intervals(session: Session) -> Intervals:
    setting = session.get(ScheduleSetting, _SETTING_ID)
    own = {row.connection_id: row for row in session.scalars(select(ConnectionSchedule)).all()}
    if setting is None:
        return Intervals(own=own)
    return Intervals(timedelta(seconds=setting.every_s), setting.paused, own)


def _default_row(session: Session) -> ScheduleSetting:
    row = session.get(ScheduleSetting, _SETTING_ID)
    if row is None:
        row = ScheduleSetting(id=_SETTING_ID, every_s=int(DEFAULT_EVERY.total_seconds()), updated_at=utcnow())
        session.add(row)
    return row


def _own_row(session: Session, connection_id: uuid.UUID) -> ConnectionSchedule:
    row = session.get(ConnectionSchedule, connection_id)
    if row is None:
        row = ConnectionSchedule(connection_id=connection_id, updated_at=utcnow())
        session.add(row)
    return row


def _stamped(row: ScheduleSetting | ConnectionSchedule, actor: Principal) -> None:
    row.updated_at, row.updated_by = utcnow(), actor.name[:120]


def _target(view: ConnectionView | None) -> str:
    return view.name if view is not None else "all connections"


def set_every(
    engine: Engine, every: timedelta | None, *, actor: Principal, connection: ConnectionView | None = None
) -> None:
    """Check every connection (or the one given) this often; ``None`` with a connection makes
    it follow the default again. What is not running now is due again on the new grid."""
    require(actor, Permission.MANAGE_CONNECTIONS)
    if every is not None:
        _check_every(every)
    if every is None and connection is None:
        raise ValidationError([FieldError("every", "Interval", "Give the interval for all connections, e.g. 15m.")])
    with write_session(engine) as session:
        serialize(session, "schedule")
        if connection is None:
            assert every is not None  # refused above when both are None
            row: ScheduleSetting | ConnectionSchedule = _default_row(session)
            row.every_s = int(every.total_seconds())
        else:
            row = _own_row(session, connection.id)
            row.every_s = int(every.total_seconds()) if every is not None else None
        _stamped(row, actor)
        session.flush()
        _move_to_new_grid(session, intervals(session), connection)
        audit.record(
            session,
            actor,
            "schedule.set",
            _target(connection),
            audit.OK,
            f"every {span(every)}" if every is not None else "follows the default interval",
        )


def _move_to_new_grid(session: Session, now_set: Intervals, connection: ConnectionView | None) -> None:
    """Due rows not claimed by a worker: due in the next slot of their connection's grid."""
    now = utcnow()
    query = select(col(DueCheck.connection_id)).where(col(DueCheck.claimed_by).is_(None)).distinct()
    if connection is not None:
        query = query.where(col(DueCheck.connection_id) == connection.id)
    ids = list(session.connection().execute(query).scalars())
    if connection is None:  # the default moved: not the connections that keep their own interval
        ids = [i for i in ids if not now_set.has_own_every(i)]
    moves = [{"c": i, "due": now_set.next_slot(i, now)} for i in ids]
    if moves:
        session.connection().execute(
            update(DueCheck)
            .where(col(DueCheck.connection_id) == bindparam("c"), col(DueCheck.claimed_by).is_(None))
            .values(due_at=bindparam("due")),
            moves,
        )


def set_paused(engine: Engine, paused: bool, *, actor: Principal, connection: ConnectionView | None = None) -> None:
    """Pause (or resume) the scheduled checks of every connection, or of the one given. A check
    running now finishes; on resume, what fell due meanwhile runs at the next tick, once."""
    require(actor, Permission.MANAGE_CONNECTIONS)
    with write_session(engine) as session:
        serialize(session, "schedule")
        row = _default_row(session) if connection is None else _own_row(session, connection.id)
        row.paused = paused
        _stamped(row, actor)
        audit.record(session, actor, "schedule.pause" if paused else "schedule.resume", _target(connection), audit.OK)


# --- Due rows -------------------------------------------------------------------------------


def connections_stamp(engine: Engine) -> tuple[object, ...]:
    """Changes whenever a connection is added, edited or removed: when due rows need a sync.
    The sum of versions moves with every edit, whatever the clocks of the hosts making them."""
    with read_session(engine) as session:
        return tuple(
            session.connection()
            .execute(select(func.count(), func.max(col(Connection.updated_at)), func.sum(col(Connection.version))))
            .one()
        )


def sync(engine: Engine, views: Iterable[ConnectionView]) -> None:
    """One due row per connection and tested product (the ticked ones, or all five when none
    are): new ones due in the connection's next slot (a product newly ticked on a connection
    already scheduled: at once), unticked ones gone."""
    now = utcnow()
    wanted = {(view.id, product) for view in views for product in view.tested_products}
    with write_session(engine) as session:
        serialize(session, "schedule")
        conn = session.connection()
        have = {(c, p) for c, p in conn.execute(select(col(DueCheck.connection_id), col(DueCheck.product)))}
        gone = have - wanted
        if gone:
            conn.execute(
                delete(DueCheck).where(
                    col(DueCheck.connection_id) == bindparam("c"), col(DueCheck.product) == bindparam("p")
                ),
                [{"c": c, "p": p} for c, p in gone],
            )
        new = wanted - have
        if new:
            now_set = intervals(session)
            scheduled = {c for c, _ in have - gone}
            conn.execute(
                insert(DueCheck),
                [
                    {"connection_id": c, "product": p, "due_at": now if c in scheduled else now_set.next_slot(c, now)}
                    for c, p in new
                ],
            )


# --- Reading it back ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionPlan:
    """One connection's schedule as the console and ``schedule show`` show it."""

    connection_id: uuid.UUID
    name: str
    every: timedelta
    own_every: bool  # its own interval, not the default
    paused: bool  # by itself or with all connections
    next_check: datetime | None  # the earliest due slot of its products; None: not scheduled yet
    last_run: datetime | None  # its newest scheduled check
    due: bool = False  # a worker's next tick takes one of its slots (claimable now)


@dataclass(frozen=True)
class Overview:
    every: timedelta
    paused: bool
    connections: list[ConnectionPlan]
    # The intervals of connections with one of their own that differs from the default, shortest
    # first (one entry per such connection).
    own: tuple[timedelta, ...] = ()


def claimable(now: datetime) -> list[ColumnElement[bool]]:
    """What makes a due-check row one a worker takes at ``now``: its slot has come, no worker
    holds it (or its lease ran out) and its connection is not paused. The worker's claim and
    ``schedule show``'s "(due)" both ask this."""
    paused = select(col(ConnectionSchedule.connection_id)).where(col(ConnectionSchedule.paused))
    return [col(DueCheck.due_at) <= now, leases.free(DueCheck, now), col(DueCheck.connection_id).not_in(paused)]


def overview(engine: Engine, actor: Principal, connection_ids: Collection[uuid.UUID] | None = None) -> Overview:
    """The default interval and pause, and the schedule of each connection by name (of those
    given; none for an empty collection)."""
    require(actor, Permission.READ_STATUS)
    now = utcnow()
    takes = func.max(case((and_(*claimable(now)), 1), else_=0))
    query = (
        select(
            col(Connection.id),
            col(Connection.name),
            func.min(col(DueCheck.due_at)),
            func.max(col(DueCheck.last_checked_at)),
            takes,
        )
        .outerjoin(DueCheck, col(DueCheck.connection_id) == col(Connection.id))
        .group_by(col(Connection.id), col(Connection.name), col(Connection.name_key))
        .order_by(col(Connection.name_key))
    )
    if connection_ids is not None:
        query = query.where(col(Connection.id).in_(connection_ids))
    with read_session(engine) as session:
        now_set = intervals(session)
        rows = session.connection().execute(query).all() if connection_ids is None or connection_ids else []
    plans = [
        ConnectionPlan(
            cid,
            name,
            now_set.every_for(cid),
            now_set.has_own_every(cid),
            now_set.paused_for(cid),
            _aware(due),
            _aware(last),
            bool(taken) and not now_set.paused,
        )
        for cid, name, due, last, taken in rows
    ]
    own = tuple(
        sorted(
            every
            for cid in now_set.own
            if now_set.has_own_every(cid) and (every := now_set.every_for(cid)) != now_set.every
        )
    )
    return Overview(now_set.every, now_set.paused, plans, own)


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates skip the column type: SQLite hands back text, PostgreSQL an aware datetime."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Worker:
    """A worker's last sign of life and how its ticks end (lib.services.checking.worker writes them)."""

    worker_id: str
    host: str
    pid: int
    tick: timedelta
    last_tick_at: datetime  # when its latest tick began
    last_seen_at: datetime
    last_ok_tick_at: datetime | None = None  # when a tick last ran its checks and alerts without an error
    last_failed_tick_at: datetime | None = None
    last_failure: str | None = None

    def alive(self, now: datetime) -> bool:
        return now - self.last_seen_at <= ALIVE_TICKS * self.tick

    @property
    def failing(self) -> bool:
        """Its latest tick that ended failed (the process lives, but the schedule does not run)."""
        return self.last_failed_tick_at is not None and (
            self.last_ok_tick_at is None or self.last_failed_tick_at > self.last_ok_tick_at
        )


def workers(engine: Engine, actor: Principal) -> list[Worker]:
    """Every worker seen lately, the most recently seen first."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        return workers_in(session)


def workers_in(session: Session) -> list[Worker]:
    """:func:`workers`, in the caller's session (the metrics read them in theirs)."""
    rows = session.scalars(select(WorkerHeartbeat).order_by(col(WorkerHeartbeat.last_seen_at).desc())).all()
    return [
        Worker(
            r.worker_id,
            r.host,
            r.pid,
            timedelta(seconds=r.tick_s),
            r.last_tick_at,
            r.last_seen_at,
            r.last_ok_tick_at,
            r.last_failed_tick_at,
            r.last_failure,
        )
        for r in rows
    ]
