"""The status API's answers: per connection, each product that counts (the ones the admin
ticked, or all five when none are), with its outcome, cause, who must act, the fix, when it
was checked, the latency and 8x8's HTTP status; for one connection also its uptime
(lib.services.history.rollups: one connection's rows are a few hundred, the whole fleet's a scan of millions,
too slow for an answer monitors poll).

Built from lib.services.history.status and said in the words of
lib.services.reporting.connections_table, as the console and the exports are, so the three
agree. Allow-listed fields only: never a secret, a Client ID (not even its masked hint) or
8x8's own words.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.kernel.errors import NotFoundError
from lib.kernel.words import iso
from lib.services.guard.access import Permission, Principal, require
from lib.services.history import rollups, status
from lib.services.reporting.connections_table import NAMES, UNTESTED_CAUSES
from lib.store.db import read_session
from lib.store.models import utcnow


def _number(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]


Uptime = dict[str, float | None]
NO_CHECKS: Uptime = dict.fromkeys(rollups.WINDOWS)


def _uptimes(engine: Engine, table: pd.DataFrame) -> dict[tuple[str, str], Uptime]:
    """(connection_id, product) -> its uptime per window (lib.services.history.rollups), None where the window
    holds no check, of the connections of ``table`` only."""
    with read_session(engine) as session:
        ids = [uuid.UUID(key) for key in table["connection_id"].unique()]
        found = rollups.counts(session.connection(), utcnow(), connection_ids=ids)
    shares = rollups.ratios(found).round(6).astype(object).where(lambda frame: frame.notna(), None)
    return {
        key: dict(zip(rollups.WINDOWS, values, strict=True))
        for key, values in zip(
            zip(found["connection_id"], found["product"], strict=True),
            shares.itertuples(index=False, name=None),
            strict=True,
        )
    }


def _product(row: Any, uptime: Uptime | None) -> dict[str, Any]:
    outcome = OUTCOMES.get(row.explained)
    failing = row.verdict == status.Verdict.FAILING
    return {
        "product": row.product,
        "product_name": PRODUCTS[row.product].name,
        "status": row.verdict,  # ok, failing or never tested: what the console counts
        "outcome": row.explained,
        "label": NAMES[row.explained],
        "cause": outcome.cause if outcome else UNTESTED_CAUSES[row.explained],
        "who_must_act": outcome.actor.value if outcome and failing else None,
        "fix": outcome.fix if outcome and failing else None,
        "checked_at": iso(None if pd.isna(row.checked_at) else row.checked_at),
        "latency_ms": _number(row.duration_ms),
        "http_status": _number(row.http_status),
    } | ({} if uptime is None else {"uptime": uptime})  # share of checks ok per window; None: no checks


# What each Verdict is counted as in an answer's ``counts``: the console's own four. A result
# made before the settings changed (status.SETTINGS_CHANGED) says nothing of now, so like the
# console's metrics it counts as never tested; its product's ``outcome`` still says why.
COUNT_KEYS = {
    status.Verdict.OK: "ok",
    status.Verdict.FAILING: "failing",
    status.Verdict.NEVER_TESTED: "never_tested",
    status.Verdict.NOT_TICKED: "not_ticked",
}


def _verdict(tally: np.ndarray) -> dict[str, Any]:
    """``ok`` (no product that counts is failing; never tested ones do not make it false) and
    ``counts``, from one row of per-verdict numbers in COUNT_KEYS order."""
    counts = {key: int(n) for key, n in zip(COUNT_KEYS.values(), tally, strict=True)}
    return {"ok": counts["failing"] == 0, "counts": counts}


def _connections(
    table: pd.DataFrame, uptimes: dict[tuple[str, str], Uptime] | None = None
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Each connection of ``table`` (whole connections, in order) with its verdict and the
    products that count (each with its uptime when ``uptimes`` are given); and the per-verdict
    numbers of all of them together."""
    per = len(PRODUCT_KEYS)
    verdict = status.verdicts(table)
    grid = verdict.to_numpy().reshape(-1, per)
    tallies = np.stack([(grid == v).sum(axis=1) for v in COUNT_KEYS], axis=1).reshape(-1, len(COUNT_KEYS))
    first = table.iloc[::per]
    found = {
        row.connection_id: {"name": row.connection, "environment": row.environment, **_verdict(tally), "products": []}
        for row, tally in zip(first.itertuples(index=False), tallies, strict=True)
    }
    counted = table.assign(verdict=verdict, explained=status.explained(table, verdict))[
        (verdict != status.Verdict.NOT_TICKED).to_numpy()
    ]
    for row in counted.itertuples(index=False):
        uptime = None if uptimes is None else uptimes.get((str(row.connection_id), str(row.product))) or dict(NO_CHECKS)
        found[row.connection_id]["products"].append(_product(row, uptime))
    return list(found.values()), tallies.sum(axis=0)


def not_found(name: str) -> NotFoundError:
    """What the API says of a connection name it does not know (the status API and its test)."""
    return NotFoundError(f"No connection is named '{name}'.")


def _named(table: pd.DataFrame, names: Collection[str]) -> np.ndarray:
    """A boolean per row of ``table``: the rows of connections with these names (names ignore
    case and surrounding blanks, as everywhere); NotFoundError names the first unknown one, so a
    monitor asking about a misspelt connection is told, never answered "ok" about nothing."""
    keys = table["connection"].str.casefold()
    wanted = {name.strip().casefold(): name for name in names}
    missing = [name for key, name in wanted.items() if not (keys == key).any()]
    if missing:
        raise not_found(missing[0])
    return keys.isin(wanted).to_numpy()


def everything(
    engine: Engine, *, actor: Principal, environments: Collection[str] = (), names: Collection[str] = ()
) -> dict[str, Any]:
    """``GET /api/v1/status``: every connection, by name, or those in any of ``environments``
    (labels compare as one whatever their case: status.environment_key; "" is "none given")
    and named in ``names``. ``ok`` and ``counts`` cover the connections answered."""
    require(actor, Permission.READ_STATUS)
    table = status.table(engine)
    keep = np.ones(len(table), dtype=bool)
    if environments:
        wanted = {status.environment_key(e) for e in environments}
        keep &= table["environment"].map(status.environment_key).isin(wanted).to_numpy(dtype=bool)
    if names:
        keep &= _named(table, names)
    found, tally = _connections(table[keep].reset_index(drop=True))
    return {"generated_at": iso(utcnow()), **_verdict(tally), "connections": found}


def one(engine: Engine, name: str, *, actor: Principal) -> dict[str, Any]:
    """``GET /api/v1/connections/{name}``: one connection (names ignore case), its ``ok`` and
    ``counts`` at the top."""
    require(actor, Permission.READ_STATUS)
    table = status.table(engine)
    chosen = table[_named(table, [name])].reset_index(drop=True)
    [found], _ = _connections(chosen, _uptimes(engine, chosen))
    return {"generated_at": iso(utcnow()), **found}
