"""The audit trail: one append-only row per change, test run, export and key operation.

Rows are written in the same transaction as the change they describe where there is one,
so a change without its audit row cannot happen. Details are masked and never hold a secret.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from lib.access import Permission, Principal, require
from lib.redaction import registry
from lib.spreadsheet import csv_cell
from lib.store.db import read_session, write_session
from lib.store.models import AuditEvent, utcnow
from lib.words import count, iso

OK, REFUSED, FAILED = "ok", "refused", "failed"


def record(session: Session, actor: Principal, action: str, target: str, result: str, detail: str = "") -> None:
    """Add an audit row to the caller's write transaction."""
    session.add(AuditEvent(at=utcnow(), actor=actor.name[:120], client_address=(actor.address or None),
                           action=action, target=registry.mask(target)[:200], result=result,
                           detail=registry.mask(detail)))


def record_now(engine: Engine, actor: Principal, action: str, target: str, result: str, detail: str = "") -> None:
    """Write one audit row in a transaction of its own (actions that change no other row)."""
    with write_session(engine) as session:
        record(session, actor, action, target, result, detail)


COLUMNS = ("at", "actor", "client_address", "action", "target", "result", "detail")


def events(engine: Engine, actor: Principal, *, since: datetime | None = None, until: datetime | None = None,
           limit: int = 10_000) -> list[AuditEvent]:
    """Audit rows, oldest first, from ``since`` to before ``until`` (admins only)."""
    require(actor, Permission.READ_AUDIT)
    query = sql_select(AuditEvent).order_by(col(AuditEvent.id))
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if until is not None:
        query = query.where(col(AuditEvent.at) < until)
    with read_session(engine) as session:
        return list(session.exec(query.limit(limit)).scalars().all())  # type: ignore[call-overload]


def export_csv(engine: Engine, actor: Principal, rows: list[AuditEvent], file_name: str) -> bytes:
    """The rows as CSV; the download itself is audited too."""
    require(actor, Permission.READ_AUDIT)
    record_now(engine, actor, "audit.export", file_name, OK, count(len(rows), "row"))
    return to_csv(rows)


def to_csv(rows: list[AuditEvent]) -> bytes:
    """The rows as CSV, each moment in the machine form (lib.words.iso)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        texts = ("" if value is None else str(value) for value in (getattr(row, name) for name in COLUMNS[1:]))
        writer.writerow([iso(row.at), *map(csv_cell, texts)])
    return out.getvalue().encode("utf-8")
