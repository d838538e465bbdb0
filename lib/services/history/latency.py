"""One connection's response times over a window, from the rollups (lib.store.models
CheckRollupHour/Day) rather than its raw checks: so a connection's page shows 90 days of them
whatever was pruned, at the cost of a few hundred rows.

Each rollup row keeps how many of its checks fell in each duration bucket (DURATION_BUCKETS_MS,
and one past the last), their sum and their maximum. p50 and p95 are estimated from it: find the
bucket holding the rank (share x checks, counted from the fastest) and interpolate linearly
across that bucket's range, as if its checks were spread evenly over it. The first bucket starts
at 0 ms; the last bucket that holds a check ends at the maximum, which is known exactly. When
every check took the same time (the sum is the checks times the maximum: a single check, say)
that time is every percentile. The estimate never leaves the bucket holding the rank, so its
error is at most that bucket's width.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from lib.services.guard.access import Permission, Principal, require
from lib.services.history import rollups
from lib.store.db import read_session
from lib.store.models import DURATION_BUCKETS_MS, ROLLUP_BUCKETS, utcnow

# Each bucket's range in ms: (lower, upper]; the last one's upper end is the maximum, per row.
LOWER = np.array((0, *DURATION_BUCKETS_MS), dtype="float64")
UPPER = np.array((*DURATION_BUCKETS_MS, np.inf), dtype="float64")
COLUMNS = ("product", "start", "checks", "p50_ms", "p95_ms", "max_ms")


def percentiles(histograms: np.ndarray, maxima: np.ndarray, sums: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` percentile (0 < share <= 1) of each row of ``histograms`` (rows x
    len(ROLLUP_BUCKETS) counts, each row with at least one check), in ms, estimated as the
    module says from the row's counts, its maximum (``maxima``) and its summed milliseconds
    (``sums``)."""
    if not 0 < share <= 1:
        raise ValueError(f"A percentile's share is above 0 and at most 1, not {share}.")
    counts = np.asarray(histograms, dtype="int64").reshape(-1, len(ROLLUP_BUCKETS))
    top = np.asarray(maxima, dtype="float64")
    totals = counts.sum(axis=1)
    cumulative = counts.cumsum(axis=1)
    rank = np.round(share * totals, 9)  # 0.95 x 20 is 19, not 19.000000000000004: the rank's own bucket
    at = (cumulative >= rank[:, None]).argmax(axis=1)  # the first bucket reaching the rank: never empty
    rows = np.arange(len(counts))
    last = len(ROLLUP_BUCKETS) - 1 - (counts[:, ::-1] > 0).argmax(axis=1)  # the last bucket holding a check
    lower = LOWER[at]
    upper = np.where(at == last, np.minimum(UPPER[at], top), UPPER[at])
    upper = np.maximum(upper, lower)  # a maximum below its bucket's floor cannot be: never cross it
    before = cumulative[rows, at] - counts[rows, at]
    estimate = lower + (rank - before) / counts[rows, at] * (upper - lower)
    alike = np.asarray(sums, dtype="float64") == totals * top  # every check took the maximum
    return np.where(alike, top, estimate)


def over(
    engine: Engine,
    connection_id: uuid.UUID,
    products: Sequence[str],
    window: str,
    *,
    actor: Principal,
    now: datetime | None = None,
) -> pd.DataFrame:
    """``connection_id``'s response times per product of ``products`` over ``window`` (a name
    of rollups.WINDOWS): a row per product and bucket (hours up to 7 days, days beyond) with its
    checks, p50, p95 and maximum in ms, by product then time. Read by the key index: the
    connection, each product, the window's range of buckets."""
    require(actor, Permission.READ_STATUS)
    length, table = rollups.WINDOWS[window]
    since = rollups.floor((now or utcnow()) - length, table)
    query = (
        select(
            table.c.product,
            table.c.start,
            table.c.checks,
            table.c.duration_sum_ms,
            table.c.duration_max_ms,
            *(table.c[bucket] for bucket in ROLLUP_BUCKETS),
        )
        .where(table.c.connection_id == connection_id, table.c.product.in_(list(products)), table.c.start >= since)
        .order_by(table.c.product, table.c.start)
    )
    with read_session(engine) as session:
        rows = session.connection().execute(query).all()
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    found = pd.DataFrame(rows, columns=["product", "start", "checks", "sum", "max", *ROLLUP_BUCKETS])
    histograms, maxima, sums = found[list(ROLLUP_BUCKETS)].to_numpy(), found["max"].to_numpy(), found["sum"].to_numpy()
    return pd.DataFrame(
        {
            "product": found["product"],
            "start": pd.to_datetime(found["start"], utc=True),
            "checks": found["checks"],
            "p50_ms": percentiles(histograms, maxima, sums, 0.5),
            "p95_ms": percentiles(histograms, maxima, sums, 0.95),
            "max_ms": maxima.astype("float64"),
        }
    )
