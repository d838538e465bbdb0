"""Maintenance windows: a planned time in which one connection, one environment or every
connection is worked on. Its checks still run and are stored as usual, but what they raise is
queued for no channel (lib.services.alerts.outbox.outside_maintenance); the alert rules' state
moves on all the same, so a failure that began inside raises nothing afterwards. When the window
ends, one maintenance.ended event names what still fails among the connections it covered (a
ticked product whose current status is not ok), and nothing at all is sent when everything works.
Quiet windows (per channel, lib.services.alerts.windows) are another thing, and still apply.

Admins add and remove windows (audited); every role reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session, col

from lib.catalogue.limits import ENVIRONMENT_MAX
from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import PRODUCTS
from lib.kernel.errors import FieldError, NotFoundError, ValidationError
from lib.kernel.words import count, iso, shown, span
from lib.notify.models import EventKind
from lib.services.alerts.events import maintenance_event
from lib.services.alerts.outbox import covers, enabled_channels, in_scope, insert_ignoring, routes_environment, row
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.store.db import read_session, write_session
from lib.store.models import AlertOutbox, Connection, CurrentStatus, MaintenanceWindow, utcnow

LONGEST = timedelta(days=31)  # a window longer than this is no maintenance: turn the channel off
AHEAD = timedelta(days=365)  # how far ahead a window may start
OPEN_MAX = 1_000  # windows not yet ended; enqueue reads them for every batch of events
REASON_MAX = 200
KEEP = timedelta(days=400)  # ended windows, as long as the default audit trail
BATCH = 100  # ended windows summarised, and old ones pruned, per tick

_LABELS = {
    "starts_at": "From",
    "ends_at": "To",
    "connection": "Connection",
    "environment": "Environment",
    "reason": "Reason",
}


@dataclass(frozen=True)
class MaintenanceView:
    """A window as the console and the command line show it."""

    id: int
    connection_id: uuid.UUID | None
    connection: str | None  # its name now
    environment: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_at: datetime
    created_by: str
    summarised_at: datetime | None

    @property
    def covered(self) -> str:
        """What it covers, in words: "connection Acme EU", "environment prod", "every connection"."""
        if self.connection_id is not None:
            return f"connection {self.connection}"
        return f"environment {self.environment}" if self.environment is not None else "every connection"

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        """In words, for the console and the command line alike."""
        return "in force" if self.active(now) else "planned" if now < self.starts_at else "ended"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connection": self.connection,
            "environment": self.environment,
            "covers": self.covered,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
        }


def _refused(field: str, message: str) -> FieldError:
    return FieldError(field, _LABELS[field], message)


def _utc(moment: datetime) -> datetime:
    """Moments as given (a naive one is UTC), aware and in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> list[FieldError]:
    if ends_at <= starts_at:
        return [_refused("ends_at", f"End the window after it starts ({shown(starts_at)}).")]
    problems = []
    if ends_at <= now:
        problems.append(_refused("ends_at", f"The window would be over already: end it after now ({shown(now)})."))
    if ends_at - starts_at > LONGEST:
        problems.append(
            _refused("ends_at", f"A window lasts at most {span(LONGEST)}: end it by {shown(starts_at + LONGEST)}.")
        )
    if starts_at > now + AHEAD:
        problems.append(_refused("starts_at", f"Start the window within {span(AHEAD)} from now."))
    return problems


def _check_reason(reason: str) -> list[FieldError]:
    if len(reason) > REASON_MAX or not reason.isprintable():
        return [_refused("reason", f"Use at most {REASON_MAX} printable characters, e.g. 'Rotating secrets'.")]
    return []


def _connection(session: Session, name: str) -> tuple[uuid.UUID, str] | FieldError:
    """The connection named so (ignoring case, as every name lookup does), or why not."""
    if not name.strip():
        return _refused("connection", "Choose the connection, or leave it out to cover every connection.")
    found = (
        session.connection()
        .execute(
            select(col(Connection.id), col(Connection.name)).where(col(Connection.name_key) == name.strip().casefold())
        )
        .first()
    )
    if found is None:
        return _refused(
            "connection", f"No connection is named '{name[:80]}'. List them with: switchboard connections list"
        )
    return found.id, found.name


def _environment(session: Session, given: str) -> str | FieldError:
    """An environment some connection has (ignoring case), as that connection spells it: a
    window for one nobody has would cover nothing, silently."""
    wanted = given.strip()
    if not wanted or len(wanted) > ENVIRONMENT_MAX or not wanted.isprintable():
        return _refused("environment", f"Use 1-{ENVIRONMENT_MAX} printable characters, e.g. 'production'.")
    known = sorted({e for e in session.scalars(select(col(Connection.environment)).distinct()) if e})
    for environment in known:
        if environment.casefold() == wanted.casefold():
            return environment
    return _refused(
        "environment",
        f"No connection has the environment '{wanted}'. "
        + (f"Choose one of {', '.join(known[:20])}." if known else "No connection has an environment label yet."),
    )


def add(
    engine: Engine,
    *,
    starts_at: datetime,
    ends_at: datetime,
    actor: Principal,
    connection: str | None = None,
    environment: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> MaintenanceView:
    """A new window for one connection (by name), one environment or (neither given, None)
    every connection.
    Every field is checked first and every refusal named at once; nothing is saved unless all
    pass. Audited as maintenance.add."""
    require(actor, Permission.MANAGE_ALERTS)
    now = _utc(now or utcnow())
    starts_at, ends_at, reason = _utc(starts_at), _utc(ends_at), reason.strip()
    problems = _check_times(starts_at, ends_at, now) + _check_reason(reason)
    if connection is not None and environment is not None:
        problems.append(
            _refused("environment", "Give a connection or an environment, not both (neither: every connection).")
        )
    with write_session(engine) as session:
        target = _connection(session, connection) if connection is not None else None
        place = _environment(session, environment) if environment is not None and connection is None else None
        problems += [p for p in (target, place) if isinstance(p, FieldError)]
        open_now = session.scalars(
            select(func.count()).select_from(MaintenanceWindow).where(col(MaintenanceWindow.ends_at) > now)
        ).one()
        if open_now >= OPEN_MAX:
            problems.append(
                _refused(
                    "starts_at",
                    f"{count(open_now, 'window')} have not ended yet, the most there may be: remove some first.",
                )
            )
        if problems:
            raise ValidationError(problems)
        assert not isinstance(target, FieldError) and not isinstance(place, FieldError)
        window = MaintenanceWindow(
            connection_id=target[0] if target else None,
            environment=place,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            created_at=now,
            created_by=actor.name[:120],
        )
        session.add(window)
        session.flush()
        view = _view(window, target[1] if target else None)
        audit.record(session, actor, "maintenance.add", view.covered, audit.OK, _described(view))
    return view


def _described(view: MaintenanceView) -> str:
    return f"#{view.id} from {iso(view.starts_at)} to {iso(view.ends_at)}" + (f"; {view.reason}" if view.reason else "")


def _view(window: MaintenanceWindow, connection: str | None) -> MaintenanceView:
    assert window.id is not None  # stored
    return MaintenanceView(
        window.id,
        window.connection_id,
        connection,
        window.environment,
        window.starts_at,
        window.ends_at,
        window.reason,
        window.created_at,
        window.created_by,
        window.summarised_at,
    )


def _views(session: Session, now: datetime) -> list[MaintenanceView]:
    """Windows not yet ended (at most OPEN_MAX: :func:`add` refuses more), soonest first."""
    found = session.execute(
        select(MaintenanceWindow, col(Connection.name))
        .outerjoin(Connection, col(Connection.id) == col(MaintenanceWindow.connection_id))
        .where(col(MaintenanceWindow.ends_at) > now)
        .order_by(col(MaintenanceWindow.starts_at), col(MaintenanceWindow.id))
        .limit(OPEN_MAX)
    ).all()
    return [_view(window, name) for window, name in found]


def list_windows(engine: Engine, *, actor: Principal, now: datetime | None = None) -> list[MaintenanceView]:
    """Current and upcoming windows, soonest first (every role)."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        return _views(session, _utc(now or utcnow()))


def active_windows(engine: Engine, now: datetime, *, actor: Principal) -> list[MaintenanceView]:
    """The windows in force at ``now``."""
    return [w for w in list_windows(engine, actor=actor, now=now) if w.active(_utc(now))]


def covering(
    windows: Sequence[MaintenanceView], connection_id: uuid.UUID, environment: str | None, now: datetime
) -> MaintenanceView | None:
    """Of ``windows``, the one covering the connection at ``now`` that ends last, if any."""
    found = [w for w in windows if covers(w, connection_id, environment or None, _utc(now))]
    return max(found, key=lambda w: w.ends_at, default=None)


def remove(engine: Engine, window_id: int, *, actor: Principal, now: datetime | None = None) -> str:
    """Take a window away: one not yet begun (or long summarised) is deleted; one in force ends
    now, so its summary of what still fails follows at the next tick. What was done, in words.
    Audited as maintenance.remove."""
    require(actor, Permission.MANAGE_ALERTS)
    now = _utc(now or utcnow())
    with write_session(engine) as session:
        window = session.scalars(
            select(MaintenanceWindow).where(col(MaintenanceWindow.id) == window_id).with_for_update()
        ).first()
        if window is None:
            raise NotFoundError(f"No maintenance window #{window_id}. `switchboard maintenance list` shows them.")
        name = session.scalars(select(col(Connection.name)).where(col(Connection.id) == window.connection_id)).first()
        view = _view(window, name)
        if window.starts_at <= now and window.summarised_at is None:
            window.ends_at = min(window.ends_at, now)
            said = f"Ended maintenance window #{window_id} ({view.covered}) now; what still fails is sent next."
        else:
            session.delete(window)
            said = f"Removed maintenance window #{window_id} ({view.covered})."
        audit.record(session, actor, "maintenance.remove", view.covered, audit.OK, said)
    return said


# --- The worker's part: the summary when a window ends ------------------------------------------


def summarise(session: Session, now: datetime) -> None:
    """For each window that has ended and was not summarised yet (BATCH at a time, the oldest
    first), one maintenance.ended event to each enabled channel that routes check.failed for
    what still fails, or none when everything works; then forget windows ended KEEP ago. In the
    tick's transaction, which lib.services.alerts serializes across workers, so each window is
    summarised once."""
    ended = session.scalars(
        select(MaintenanceWindow)
        .where(col(MaintenanceWindow.ends_at) <= now, col(MaintenanceWindow.summarised_at).is_(None))
        .order_by(col(MaintenanceWindow.ends_at))
        .limit(BATCH)
        .with_for_update()
    ).all()
    if ended:
        channels = enabled_channels(session)
        failing = _failing(session)
        named = {
            r.id: r
            for r in session.connection().execute(
                select(col(Connection.id), col(Connection.name), col(Connection.environment)).where(
                    col(Connection.id).in_({w.connection_id for w in ended if w.connection_id is not None})
                )
            )
        }
        for window in ended:
            one = named.get(window.connection_id)
            view = _view(window, one.name if one else None)
            covered = [f for f in failing if in_scope(window, f.connection_id, f.environment)]
            _queue(session, view, (one.environment if one else view.environment) or None, covered, channels, now)
            window.summarised_at = now
    old = (
        select(col(MaintenanceWindow.id))
        .where(col(MaintenanceWindow.ends_at) < now - KEEP, col(MaintenanceWindow.summarised_at).is_not(None))
        .limit(BATCH)
    )
    session.connection().execute(delete(MaintenanceWindow).where(col(MaintenanceWindow.id).in_(old)))


@dataclass(frozen=True)
class _Failing:
    """A ticked product whose current status is not ok."""

    connection_id: uuid.UUID
    environment: str
    said: str  # "connection: product"


def _failing(session: Session) -> list[_Failing]:
    """Every ticked product failing now (its current status, one row per connection and product)."""
    found = session.connection().execute(
        select(
            col(Connection.id),
            col(Connection.name),
            col(Connection.environment),
            col(Connection.expected_products),
            col(CurrentStatus.product),
        )
        .join(CurrentStatus, col(CurrentStatus.connection_id) == col(Connection.id))
        .where(col(CurrentStatus.outcome) != OutcomeKey.OK)
        .order_by(col(Connection.name_key), col(CurrentStatus.product))
    )
    return [
        _Failing(r.id, r.environment, f"{r.name}: {PRODUCTS[r.product].name}")
        for r in found
        if r.product in PRODUCTS and (not r.expected_products or r.product in r.expected_products)
    ]


def _queue(
    session: Session,
    view: MaintenanceView,
    environment: str | None,
    failing: list[_Failing],
    channels: Sequence[Any],
    now: datetime,
) -> None:
    """The window's maintenance.ended, for each channel that routes check.failed, listing what
    still fails in the environments that channel hears of; none where that is nothing."""
    rows = []
    for channel_id, kinds, environments in channels:
        if EventKind.FAILED.value not in kinds:
            continue
        heard = [f.said for f in failing if routes_environment(environments, f.environment)]
        if heard:
            event = maintenance_event(
                view.id,
                view.covered,
                starts_at=view.starts_at,
                ends_at=view.ends_at,
                reason=view.reason,
                still_failing=heard,
                connection=view.connection,
                environment=environment,
                at=now,
            )
            rows.append(row(channel_id, (event, None), now))
    insert_ignoring(session, AlertOutbox, rows, ["channel_id", "event_id"])
