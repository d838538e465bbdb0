"""Uptime read from the rollups (lib.store.models.CheckRollupHour/Day), which lib.services.checking.checks adds
to in the transaction that stores the checks: the share of a product's checks that were ok over
24 hours, 7, 30 and 90 days, whatever the age of the history and whatever was pruned of it.

Uptime is checks that were ok over checks (each check weighs the same; time between checks is
not measured). The 24-hour and 7-day windows start at an hour, the 30- and 90-day ones at a
midnight (UTC). A window covers the bucket its start falls in, whole, up to now: so 24 hours
covers 25 hourly buckets when the clock is past the hour (the oldest in full, the newest partly
elapsed), and 30 days covers 31 daily ones. An hourly window is read as its hours up to the
first midnight and the daily rows from there on (a day's row holds the checks of its hours), so
no read takes more than a day's hours per product, whatever the window. Each read is indexed
ranges of the windows' buckets (``ix_…_start``), never the history.

Which products count is decided when reading, not when writing: the rollups hold every product
checked, and the callers keep the products ticked now (all five when none are: lib.services.history.status), so
ticking or unticking a product changes what counts without rewriting the past.

Latency percentiles are read by lib.services.history.latency, from the duration histogram each
bucket row keeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, case, func, or_, select, true
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Connection as SqlConnection

from lib.services.guard.access import Permission, Principal, require
from lib.store.db import read_session
from lib.store.models import CheckRollupDay, CheckRollupHour, utcnow

_KEY = ["connection_id", "product"]  # a list: pandas reads a tuple as one key
# Window name -> its length and the table it is read from, shortest first.
WINDOWS: dict[str, tuple[timedelta, Any]] = {
    "24h": (timedelta(hours=24), CheckRollupHour),
    "7d": (timedelta(days=7), CheckRollupHour),
    "30d": (timedelta(days=30), CheckRollupDay),
    "90d": (timedelta(days=90), CheckRollupDay),
}


def floor(moment: datetime, table: Any) -> datetime:
    """The start of the bucket of ``table`` (hourly or daily) that holds ``moment``."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if table is CheckRollupDay else hour


def _ranges(now: datetime, windows: Collection[str]) -> dict[Any, dict[str, tuple[datetime, datetime | None]]]:
    """Per table, the range of bucket starts each window reads from it: a window of hours reads
    its hours up to the next midnight and the days from there, whose daily rows hold the same
    checks; so no window reads more than a day's hours."""
    found: dict[Any, dict[str, tuple[datetime, datetime | None]]] = {CheckRollupHour: {}, CheckRollupDay: {}}
    for name in windows:
        length, table = WINDOWS[name]
        since = floor(now - length, table)
        midnight = floor(since, CheckRollupDay)
        if midnight < since:
            midnight += timedelta(days=1)
            found[CheckRollupHour][name] = (since, midnight)
        found[CheckRollupDay][name] = (midnight, None)
    return found


def counts(
    conn: SqlConnection,
    now: datetime,
    *,
    connection_ids: Collection[Any] | None = None,
    windows: Collection[str] = tuple(WINDOWS),
) -> pd.DataFrame:
    """Per (connection_id, product) with any check in the longest of ``windows`` (names of
    WINDOWS; all of them unless given): ``checks_<window>`` and ``ok_<window>`` for each.
    ``connection_id`` is text as lib.services.history.status.table has it; ``connection_ids``
    (UUIDs) narrows the read to those connections. At most one query per table."""
    if not windows or set(windows) - set(WINDOWS):
        raise ValueError(f"Windows are among {', '.join(WINDOWS)}, not {sorted(windows)}.")
    parts = []
    for table, ranges in _ranges(now, windows).items():
        if not ranges:
            continue
        inside = {
            name: and_(table.c.start >= since, true() if until is None else table.c.start < until)
            for name, (since, until) in ranges.items()
        }
        sums = [
            func.sum(case((where, table.c[column]), else_=0)).label(f"{label}_{name}")
            for name, where in inside.items()
            for column, label in (("checks", "checks"), ("n_ok", "ok"))
        ]
        # Grouped by the text of the id, which no index orders: so the planner reads the windows'
        # ranges of the start index rather than the whole key index in its order.
        connection_id = sql_cast(table.c.connection_id, String)
        query = select(connection_id.label("connection_id"), table.c.product, *sums).group_by(
            connection_id, table.c.product
        )
        if table is CheckRollupDay:  # the ranges all run to now: the widest holds the others
            query = query.where(table.c.start >= min(since for since, _ in ranges.values()))
        else:  # a day's hours each, days apart
            query = query.where(or_(*inside.values()))
        if connection_ids is not None:
            query = query.where(table.c.connection_id.in_(list(connection_ids)))
        parts.append(pd.DataFrame(conn.execute(query).all(), columns=[*_KEY, *(s.name for s in sums)]))
    summed = [f"{label}_{name}" for name in WINDOWS if name in windows for label in ("checks", "ok")]
    together = pd.concat([part.astype(dict.fromkeys(part.columns[2:], "int64")) for part in parts], ignore_index=True)
    # A window's hours and days, added up; a window with no row in one table counts 0 there.
    added = together.reindex(columns=[*_KEY, *summed]).fillna(dict.fromkeys(summed, 0))
    return added.groupby(_KEY, as_index=False, sort=False).sum().astype(dict.fromkeys(summed, "int64"))


def ratios(found: pd.DataFrame) -> pd.DataFrame:
    """``counts`` (summed as the caller grouped them) as one ratio column per window it holds:
    ok over checks, NaN where the window holds no check."""
    return pd.DataFrame(
        {
            name: (found[f"ok_{name}"] / found[f"checks_{name}"].where(found[f"checks_{name}"] > 0))
            for name in WINDOWS
            if f"checks_{name}" in found
        },
        index=found.index,
    )


def percent(ok: Any, checks: Any) -> Any:
    """Uptime as people read it: a percentage with one decimal, rounded down (so 100.0 only when
    every check was ok), NaN where there was no check. Integer arithmetic: 7 of 10 is 70.0, not
    69.9. Takes numbers or arrays of them."""
    ok, checks = np.asarray(ok, dtype="int64"), np.asarray(checks, dtype="int64")
    return np.where(checks > 0, (ok * 1000) // np.maximum(checks, 1) / 10, np.nan)


def connection_uptime(
    engine: Engine, connection_id: uuid.UUID, products: Sequence[str], *, actor: Principal, now: datetime | None = None
) -> pd.DataFrame:
    """One connection's uptime per product of ``products`` (the ones that count, in that order)
    and window, as :func:`percent` (NaN: no check in the window), indexed by product key. One
    connection's rows only: read through the key index."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        found = counts(session.connection(), now or utcnow(), connection_ids=[connection_id])
    found = found.drop(columns="connection_id").set_index("product").reindex(list(products), fill_value=0)
    return pd.DataFrame(
        {name: percent(found[f"ok_{name}"], found[f"checks_{name}"]) for name in WINDOWS}, index=found.index
    )
