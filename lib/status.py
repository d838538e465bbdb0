"""Connection status, read only: the current status of every (connection, product), one
connection's history, and a stamp that changes whenever either does.

The console's table, its metrics, every export and ``check --json`` read the same rows, so
they agree. The current status is a table of its own (kept by lib.checks in the transaction
that stores each check), so reading it costs N x 5 rows at any size of history. Nothing here
decrypts anything or talks to 8x8.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select
from sqlmodel import col

from lib import connections
from lib.db import read_session
from lib.models import Check, Connection, CurrentStatus
from lib.products import OUTCOMES, PRODUCT_KEYS, TOKEN

NEVER_TESTED = "never_tested"


@dataclass(slots=True)
class CheckRecord:
    """One stored check, as the console, the CLI and exports read it."""

    connection_id: uuid.UUID
    connection: str
    product: str
    outcome: str
    http_status: int | None
    duration_ms: int
    detail: str
    checked_at: datetime
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _records(engine: Engine, query: Any) -> list[CheckRecord]:
    # Plain column tuples: loading ORM objects made this 10x slower at 50,000 rows.
    with read_session(engine) as session:
        return [CheckRecord(*row) for row in session.connection().execute(query).all()]


def latest_status(engine: Engine, *, include_token: bool = False) -> list[CheckRecord]:
    """The newest check of each (connection, product), by connection name."""
    query = (
        sql_select(CurrentStatus.connection_id, Connection.name, CurrentStatus.product, CurrentStatus.outcome,
                   CurrentStatus.http_status, CurrentStatus.duration_ms, CurrentStatus.detail,
                   CurrentStatus.checked_at, CurrentStatus.run_id)
        .join(Connection, col(Connection.id) == col(CurrentStatus.connection_id))
        .order_by(Connection.name_key, CurrentStatus.product)
    )
    if not include_token:
        query = query.where(CurrentStatus.product != TOKEN)
    return _records(engine, query)


def history(engine: Engine, connection_id: uuid.UUID, *, limit: int = 500) -> list[CheckRecord]:
    """A connection's checks, newest first."""
    return _records(engine, sql_select(Check.connection_id, Connection.name, Check.product, Check.outcome,
                                       Check.http_status, Check.duration_ms, Check.detail, Check.started_at,
                                       Check.run_id)
                    .join(Connection, col(Connection.id) == col(Check.connection_id))
                    .where(Check.connection_id == connection_id)
                    .order_by(col(Check.id).desc())
                    .limit(limit))


def data_stamp(engine: Engine) -> tuple[object, ...]:
    """Changes whenever a check is stored or a connection is added, edited or removed: a cheap
    key for caching views of the status."""
    with read_session(engine) as session:
        conn = session.connection()
        checks_part = conn.execute(sql_select(func.max(Check.id))).one()
        connections_part = conn.execute(sql_select(func.count(), func.max(Connection.updated_at),
                                                   func.max(Connection.granted_at))).one()
    return (*checks_part, *connections_part)


@dataclass(slots=True)
class StatusRow:
    connection_id: uuid.UUID
    connection: str
    environment: str
    client_id_hint: str
    secret_set_at: datetime
    product: str
    expected: bool
    in_scope: bool  # tested by "test all": expected, or every product when none is expected
    granted: bool | None  # None: 8x8 has not been asked yet
    outcome: str  # an OUTCOMES key, or NEVER_TESTED
    detail: str
    http_status: int | None
    duration_ms: int | None
    checked_at: datetime | None

    @property
    def checked(self) -> bool:
        return self.outcome != NEVER_TESTED

    @property
    def label(self) -> str:
        if not self.checked:
            return "Never tested"
        outcome = OUTCOMES[self.outcome]
        return f"{outcome.icon} {outcome.label}"


def status_rows(engine: Engine) -> list[StatusRow]:
    """For every connection, the five products with expectation, grant and latest outcome
    (two queries whatever the size)."""
    latest = {(r.connection_id, r.product): r for r in latest_status(engine)}
    rows: list[StatusRow] = []
    for view in connections.list_connections(engine):
        granted = None if view.granted_products is None else set(view.granted_products)
        scope = view.tested_products
        for product in PRODUCT_KEYS:
            record = latest.get((view.id, product))
            rows.append(StatusRow(
                connection_id=view.id, connection=view.name, environment=view.environment,
                client_id_hint=view.client_id_hint, secret_set_at=view.secret_set_at, product=product,
                expected=product in view.expected_products,
                in_scope=product in scope,
                granted=None if granted is None else product in granted,
                outcome=record.outcome if record else NEVER_TESTED,
                detail=record.detail if record else "",
                http_status=record.http_status if record else None,
                duration_ms=record.duration_ms if record else None,
                checked_at=record.checked_at if record else None,
            ))
    return rows


def is_relevant(row: StatusRow) -> bool:
    """A product a test of the connection covers, or one that was tested anyway."""
    return row.in_scope or row.checked
