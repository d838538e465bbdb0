"""Connection status: one row per (connection, product), from two queries whatever the size.

The console's table, its metrics and every export are built from these rows, so they agree.
Nothing here decrypts anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from lib import checks, connections
from lib.products import OUTCOMES, PRODUCT_KEYS

NEVER_TESTED = "never_tested"


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
    """For every connection, the five products with expectation, grant and latest outcome."""
    latest = {(r.connection_id, r.product): r for r in checks.latest_status(engine)}
    rows: list[StatusRow] = []
    for view in connections.list_connections(engine):
        granted = None if view.granted_products is None else set(view.granted_products)
        scope = checks.products_to_check(view)
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
