"""The audit trail: one append-only row per change, test run, export and key operation.

Rows are written in the same transaction as the change they describe where there is one,
so a change without its audit row cannot happen. Details are masked and never hold a secret.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from lib.db import read_session, write_session
from lib.models import AuditEvent, utcnow
from lib.redaction import registry

OK, REFUSED, FAILED = "ok", "refused", "failed"


def record(session: Session, actor: str, action: str, target: str, result: str, detail: str = "") -> None:
    """Add an audit row to the caller's write transaction."""
    session.add(AuditEvent(at=utcnow(), actor=actor, action=action, target=registry.mask(target)[:200],
                           result=result, detail=registry.mask(detail)))


def record_now(engine: Engine, actor: str, action: str, target: str, result: str, detail: str = "") -> None:
    """Write one audit row in a transaction of its own (actions that change no other row)."""
    with write_session(engine) as session:
        record(session, actor, action, target, result, detail)


def events(engine: Engine, *, since: datetime | None = None, limit: int = 10_000) -> list[AuditEvent]:
    """Audit rows, oldest first, from ``since`` on."""
    query = sql_select(AuditEvent).order_by(col(AuditEvent.id))
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    with read_session(engine) as session:
        return list(session.exec(query.limit(limit)).scalars().all())  # type: ignore[call-overload]
