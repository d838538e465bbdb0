"""The audit trail: one row per change, test run, export and key operation, never changed
once written and deleted only when older than the audit retention (lib.services.checking.retention).

Rows are written in the same transaction as the change they describe where there is one,
so a change without its audit row cannot happen. Details are masked and never hold a secret.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, func, select, tuple_
from sqlmodel import Session, col

from lib.kernel.redaction import registry
from lib.kernel.spreadsheet import csv_cell
from lib.kernel.words import count, iso
from lib.services.guard.access import Permission, Principal, require
from lib.store.db import read_session, write_session
from lib.store.models import AuditEvent, utcnow

OK, REFUSED, FAILED = "ok", "refused", "failed"


def record(session: Session, actor: Principal, action: str, target: str, result: str, detail: str = "") -> None:
    """Add an audit row to the caller's write transaction."""
    session.add(
        AuditEvent(
            at=utcnow(),
            actor=actor.name[:120],
            client_address=(actor.address or None),
            action=action,
            target=registry.mask(target)[:200],
            result=result,
            detail=registry.mask(detail),
        )
    )


def record_now(engine: Engine, actor: Principal, action: str, target: str, result: str, detail: str = "") -> None:
    """Write one audit row in a transaction of its own (actions that change no other row)."""
    with write_session(engine) as session:
        record(session, actor, action, target, result, detail)


COLUMNS = ("at", "actor", "client_address", "action", "target", "result", "detail")


PAGE_SIZE = 500  # rows the Audit page and `switchboard audit` show at once
EXPORT_LIMIT = 10_000  # rows a CSV download holds at most: the newest of its range


@dataclass(frozen=True)
class Filter:
    """Which audit rows: from ``since`` to before ``until`` (either open), by any of ``actors``,
    of any of ``actions``, with any of ``results`` (an empty set: any)."""

    since: datetime | None = None
    until: datetime | None = None
    actors: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    results: frozenset[str] = frozenset()

    def conditions(self) -> list[ColumnElement[bool]]:
        found = [] if self.since is None else [col(AuditEvent.at) >= self.since]
        found += [] if self.until is None else [col(AuditEvent.at) < self.until]
        for column, values in (
            (AuditEvent.actor, self.actors),
            (AuditEvent.action, self.actions),
            (AuditEvent.result, self.results),
        ):
            found += [col(column).in_(sorted(values))] if values else []
        return found


ALL = Filter()
_NEWEST_FIRST = (col(AuditEvent.at).desc(), col(AuditEvent.id).desc())  # by the index on (at, id)


def events(engine: Engine, actor: Principal, which: Filter = ALL, *, limit: int = EXPORT_LIMIT) -> list[AuditEvent]:
    """The newest ``limit`` rows ``which`` selects, in the order they happened (admins only):
    what a CSV download holds."""
    require(actor, Permission.READ_AUDIT)
    query = select(AuditEvent).where(*which.conditions()).order_by(*_NEWEST_FIRST).limit(limit)
    with read_session(engine) as session:
        return list(reversed(session.scalars(query).all()))


@dataclass(frozen=True)
class Page:
    """A page of the rows a filter selects, newest first: ``rows``, how many rows it selects
    in all (``total``), and how many of them are newer than this page's first (``start``)."""

    rows: list[AuditEvent]
    total: int
    start: int
    more: bool  # older rows follow

    @property
    def older(self) -> int | None:
        """The cursor of the next page (``before``): the id of this page's last row, when older
        rows follow."""
        return self.rows[-1].id if self.more else None

    def describe(self) -> str:
        """Where the page is, in words: "Showing 1–500 of 12,345 events"."""
        if not self.rows:
            return f"No events on this page (of {count(self.total, 'event')})." if self.total else "No audit events."
        return f"Showing {self.start + 1:,}–{self.start + len(self.rows):,} of {count(self.total, 'event')}"


def page(
    engine: Engine, actor: Principal, which: Filter = ALL, *, before: int | None = None, size: int = PAGE_SIZE
) -> Page:
    """The newest ``size`` rows ``which`` selects that are older than the row with id ``before``
    (ties of ``at`` broken by id; none: from the newest), with the counts that place them
    (admins only). Index range reads only: the cost follows the range and the page, not the
    length of the trail. A ``before`` row that no longer exists (pruned) has nothing older."""
    require(actor, Permission.READ_AUDIT)
    conditions = which.conditions()
    with read_session(engine) as session:
        conn = session.connection()
        total = conn.execute(select(func.count()).select_from(AuditEvent).where(*conditions)).scalar_one()
        start = 0
        if before is not None:
            at = conn.execute(select(col(AuditEvent.at)).where(col(AuditEvent.id) == before)).scalar_one_or_none()
            if at is None:
                return Page([], total, total, more=False)
            cursor = tuple_(col(AuditEvent.at), col(AuditEvent.id))
            start = conn.execute(
                select(func.count()).select_from(AuditEvent).where(*conditions, cursor >= (at, before))
            ).scalar_one()
            conditions.append(cursor < (at, before))
        rows = session.scalars(select(AuditEvent).where(*conditions).order_by(*_NEWEST_FIRST).limit(size + 1)).all()
    return Page(list(rows[:size]), total, start, more=len(rows) > size)


def choices(
    engine: Engine, actor: Principal, *, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[str], list[str]]:
    """The actors, actions and results the rows from ``since`` to before ``until`` hold, each
    sorted: what a filter of that range can choose from (one grouped read of the range)."""
    require(actor, Permission.READ_AUDIT)
    columns = (col(AuditEvent.actor), col(AuditEvent.action), col(AuditEvent.result))
    query = select(*columns).where(*Filter(since, until).conditions()).group_by(*columns)
    with read_session(engine) as session:
        found = session.connection().execute(query).all()
    return (
        sorted({who for who, _, _ in found}),
        sorted({action for _, action, _ in found}),
        sorted({result for _, _, result in found}),
    )


def export_csv(engine: Engine, actor: Principal, rows: list[AuditEvent], file_name: str) -> bytes:
    """The rows as CSV; the download itself is audited too."""
    require(actor, Permission.READ_AUDIT)
    record_now(engine, actor, "audit.export", file_name, OK, count(len(rows), "row"))
    return to_csv(rows)


def to_csv(rows: list[AuditEvent]) -> bytes:
    """The rows as CSV, each moment in the machine form (lib.kernel.words.iso)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        texts = ("" if value is None else str(value) for value in (getattr(row, name) for name in COLUMNS[1:]))
        writer.writerow([iso(row.at), *map(csv_cell, texts)])
    return out.getvalue().encode("utf-8")
