"""Fleet uptime per product, read from the fleet rollups (lib.store.models.FleetRollupHour/Day):
the share of every connection's checks of a product that were ok over the windows of
lib.services.history.rollups. One row per product and hour or day, so a read is a few hundred
rows whatever the size of the fleet and the age of its history.

Unlike a connection's uptime, which products count was decided when the checks were stored (a
fleet row has no connection to ask), and the checks of connections deleted since still count:
it is the fleet's record, as /metrics wants it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection as SqlConnection

from lib.services.history.rollups import WINDOWS
from lib.store.models import CheckRollupDay, FleetRollupDay, FleetRollupHour

Uptimes = dict[str, dict[str, float | None]]  # product -> window -> ok over checks (None: no checks)


def _start(moment: datetime, daily: bool) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if daily else hour


def uptimes(conn: SqlConnection, now: datetime) -> Uptimes:
    """Per product with any check in the longest window: its fleet uptime in each window, as
    the windows are counted for one connection (a window covers its first bucket whole)."""
    found: Uptimes = {}
    for table, daily in ((FleetRollupHour, False), (FleetRollupDay, True)):
        since = {
            name: _start(now - length, daily)
            for name, (length, source) in WINDOWS.items()
            if (source is CheckRollupDay) == daily
        }
        sums: list[Any] = [
            func.sum(case((table.c.start >= start, table.c[column]), else_=0))
            for start in since.values()
            for column in ("checks", "n_ok")
        ]
        query = select(table.c.product, *sums).where(table.c.start >= min(since.values())).group_by(table.c.product)
        for product, *counts in conn.execute(query).all():
            for at, name in enumerate(since):
                checks, ok = counts[2 * at], counts[2 * at + 1]
                found.setdefault(product, {})[name] = ok / checks if checks else None
    return found
