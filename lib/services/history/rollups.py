"""Uptime read from the rollups (lib.store.models.CheckRollupHour/Day), which lib.services.checking.checks adds
to in the transaction that stores the checks: the share of a product's checks that were ok over
24 hours, 7, 30 and 90 days, whatever the age of the history and whatever was pruned of it.

Uptime is checks that were ok over checks (each check weighs the same; time between checks is
not measured). Hours serve the 24-hour and 7-day windows, days the 30- and 90-day ones. A window
covers the bucket its start falls in, whole, up to now: so 24 hours reads 25 hourly buckets when
the clock is past the hour (the oldest in full, the newest partly elapsed), and 30 days reads 31
daily ones. Each read is one indexed range of the window's buckets (``ix_…_start``), never the
history.

Which products count is decided when reading, not when writing: the rollups hold every product
checked, and the callers keep the products ticked now (all five when none are: lib.services.history.status), so
ticking or unticking a product changes what counts without rewriting the past.

Latency percentiles are not read here yet: each bucket row keeps a duration histogram over
DURATION_BUCKETS_MS with the sum and maximum, from which p50/p95 are estimated by linear
interpolation inside the bucket that holds the rank (the last bucket ending at the maximum).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import String, case, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Connection as SqlConnection

from lib.store.models import CheckRollupDay, CheckRollupHour

# Window name -> its length and the table it is read from, shortest first.
WINDOWS: dict[str, tuple[timedelta, Any]] = {
    "24h": (timedelta(hours=24), CheckRollupHour),
    "7d": (timedelta(days=7), CheckRollupHour),
    "30d": (timedelta(days=30), CheckRollupDay),
    "90d": (timedelta(days=90), CheckRollupDay),
}


def _floor(moment: datetime, table: Any) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if table is CheckRollupDay else hour


def counts(conn: SqlConnection, now: datetime, *, connection_ids: Collection[Any] | None = None) -> pd.DataFrame:
    """Per (connection_id, product) with any check in the longest window: ``checks_<window>``
    and ``ok_<window>`` for each window. ``connection_id`` is text as lib.services.history.status.table has it;
    ``connection_ids`` (UUIDs) narrows the read to those connections."""
    found: pd.DataFrame | None = None
    for table in (CheckRollupHour, CheckRollupDay):
        windows = {name: _floor(now - length, table) for name, (length, source) in WINDOWS.items() if source is table}
        sums = [
            func.sum(case((table.c.start >= since, table.c[column]), else_=0)).label(f"{label}_{name}")
            for name, since in windows.items()
            for column, label in (("checks", "checks"), ("n_ok", "ok"))
        ]
        # Grouped by the text of the id, which no index orders: so the planner reads the window's
        # range of the start index rather than the whole key index in its order.
        connection_id = sql_cast(table.c.connection_id, String)
        query = (
            select(connection_id.label("connection_id"), table.c.product, *sums)
            .where(table.c.start >= min(windows.values()))
            .group_by(connection_id, table.c.product)
        )
        if connection_ids is not None:
            query = query.where(table.c.connection_id.in_(list(connection_ids)))
        part = pd.DataFrame(conn.execute(query).all(), columns=["connection_id", "product", *(s.name for s in sums)])
        found = part if found is None else found.merge(part, on=["connection_id", "product"], how="outer")
    assert found is not None
    summed = [column for column in found.columns if column not in ("connection_id", "product")]
    return found.astype(dict.fromkeys(summed, "float64")).fillna(0).astype(dict.fromkeys(summed, "int64"))


def ratios(found: pd.DataFrame) -> pd.DataFrame:
    """``counts`` (summed as the caller grouped them) as one ratio column per window: ok over
    checks, NaN where the window holds no check."""
    return pd.DataFrame(
        {name: (found[f"ok_{name}"] / found[f"checks_{name}"].where(found[f"checks_{name}"] > 0)) for name in WINDOWS},
        index=found.index,
    )
