"""The status API's answers: per connection, each product that counts (the ones the admin
ticked, or all five when none are), with its outcome, cause, who must act, the fix, when it
was checked, the latency and 8x8's HTTP status.

Built from lib.status, as the console and the exports are, so the three agree. Allow-listed
fields only: never a secret, a Client ID (not even its masked hint) or 8x8's own words.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine

from lib import status
from lib.access import Permission, Principal, require
from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCTS
from lib.errors import NotFoundError
from lib.store.models import utcnow
from lib.words import iso


def _number(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]


def _product(row: Any) -> dict[str, Any]:
    outcome = OUTCOMES.get(row.explained)
    failing = row.verdict == status.Verdict.FAILING
    return {
        "product": row.product,
        "product_name": PRODUCTS[row.product].name,
        "status": row.verdict,  # ok, failing or never tested: what the console counts
        "outcome": row.explained,
        "label": status.NAMES[row.explained],
        "cause": outcome.cause if outcome else status.UNTESTED_CAUSES[row.explained],
        "who_must_act": outcome.actor.value if outcome and failing else None,
        "fix": outcome.fix if outcome and failing else None,
        "checked_at": iso(None if pd.isna(row.checked_at) else row.checked_at),
        "latency_ms": _number(row.duration_ms),
        "http_status": _number(row.http_status),
    }


def _connections(table: pd.DataFrame) -> list[dict[str, Any]]:
    verdict = status.verdicts(table)
    counted = table.assign(verdict=verdict, explained=status.explained(table, verdict))[
        (verdict != status.Verdict.NOT_TICKED).to_numpy()]
    found: dict[str, dict[str, Any]] = {}
    for row in counted.itertuples(index=False):
        entry = found.setdefault(row.connection_id, {"name": row.connection, "environment": row.environment,
                                                     "products": []})
        entry["products"].append(_product(row))
    return list(found.values())


def everything(engine: Engine, *, actor: Principal) -> dict[str, Any]:
    """``GET /api/v1/status``: every connection, by name."""
    require(actor, Permission.READ_STATUS)
    return {"generated_at": iso(utcnow()), "connections": _connections(status.table(engine))}


def one(engine: Engine, name: str, *, actor: Principal) -> dict[str, Any]:
    """``GET /api/v1/connections/{name}``: one connection (names ignore case)."""
    require(actor, Permission.READ_STATUS)
    table = status.table(engine)
    chosen = table[(table["connection"].str.casefold() == name.strip().casefold()).to_numpy()]
    if chosen.empty:
        raise NotFoundError(f"No connection is named '{name}'.")
    return {"generated_at": iso(utcnow()), **_connections(chosen.reset_index(drop=True))[0]}
