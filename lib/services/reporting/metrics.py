"""``/metrics`` for Prometheus (prometheus_client's text format), read from the database at
each scrape, so every instance of a fleet reports the same numbers and a restart resets
nothing. No process-local counters: a custom collector turns a few grouped queries into
metric families.

Labels are bounded: product keys, outcome keys, status words, uptime windows and connection
names (as many as the fleet has; ``SWITCHBOARD_METRICS_CONNECTION_LABEL=off`` folds them per
product). Uptime is per product over the fleet (lib.services.history.fleet: a few hundred rollup
rows at any size); a connection's own is in the API. Never a Client ID, an error text or a URL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection as SqlConnection
from sqlmodel import Session, col

from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.services.checking import schedule
from lib.services.guard.access import Permission, Principal, Role, Standing, require
from lib.services.history import fleet, status
from lib.services.history.rollups import WINDOWS
from lib.store.db import read_session
from lib.store.models import (
    DURATION_BUCKETS_MS,
    AlertOutbox,
    CheckTally,
    Connection,
    CurrentStatus,
    utcnow,
)

# Upper bounds of the check-duration histogram, in seconds: those CheckTally counts by.
BUCKETS_S = tuple(bound / 1000 for bound in DURATION_BUCKETS_MS)
OUTCOME_KEYS = tuple(OutcomeKey)
OUTBOX_STATUSES = (
    "pending",
    "held",
    "delivered",
    "summarised",
    "failed",
)  # lib.services.alerts.outbox's, pending first


def _label(verdict: str) -> str:
    return verdict.replace(" ", "_")  # "never tested" -> never_tested


def _checks(conn: SqlConnection) -> Iterator[Metric]:
    """Every check ever stored, by product, outcome and duration bucket, token steps included:
    read from their tally (a few dozen rows at any age of the history, and still counting what
    has been pruned since)."""
    rows = conn.execute(
        select(
            col(CheckTally.product),
            col(CheckTally.outcome),
            col(CheckTally.bucket),
            col(CheckTally.checks),
            col(CheckTally.duration_ms),
        )
    ).all()
    counts: dict[tuple[str, str], int] = {
        (product, outcome): 0 for product in (*PRODUCT_KEYS, TOKEN) for outcome in OUTCOME_KEYS
    }
    spread = {product: np.zeros(len(BUCKETS_S) + 1, dtype=np.int64) for product in PRODUCT_KEYS}
    total_ms = dict.fromkeys(PRODUCT_KEYS, 0)
    for product, outcome, within, n, ms in rows:
        if (product, outcome) not in counts or not 0 <= within <= len(BUCKETS_S):
            continue  # never a label from outside the catalogue
        counts[product, outcome] += n
        if product in spread:
            spread[product][within] += n
            total_ms[product] += ms
    checks = CounterMetricFamily(
        "switchboard_check",
        "Checks of a product stored, by outcome (every instance "
        "and run since the database began, pruned ones included).",
        labels=["product", "outcome"],
    )
    tokens = CounterMetricFamily(
        "switchboard_token_steps",
        "Token steps of stored checks, by outcome: one per "
        "connection and run, each a request to 8x8 for a token (its retries included). "
        "Tokens asked for to verify a form before saving are not stored, so not counted.",
        labels=["outcome"],
    )
    for (product, outcome), n in counts.items():
        if product == TOKEN:
            tokens.add_metric([outcome], n)
        else:
            checks.add_metric([product, outcome], n)
    durations = HistogramMetricFamily(
        "switchboard_check_duration_seconds",
        "How long checks of a product took (retries included).",
        labels=["product"],
    )
    bounds = [*map(floatToGoString, BUCKETS_S), "+Inf"]
    for product, per_bucket in spread.items():
        durations.add_metric(
            [product], list(zip(bounds, per_bucket.cumsum().tolist(), strict=True)), total_ms[product] / 1000
        )
    yield from (checks, durations, tokens)


def _last_successes(conn: SqlConnection) -> dict[tuple[str, str], float]:
    """(connection name, product) -> when the product last answered ok (Unix time), as its
    current status keeps it: one row per (connection, product), whatever has been pruned."""
    rows = conn.execute(
        select(col(Connection.name), col(CurrentStatus.product), col(CurrentStatus.last_ok_at))
        .join(Connection, col(Connection.id) == col(CurrentStatus.connection_id))
        .where(col(CurrentStatus.product) != TOKEN, col(CurrentStatus.last_ok_at).is_not(None))
    ).all()
    return {(name, product): at.timestamp() for name, product, at in rows if at is not None}


def _fleet(engine: Engine, conn: SqlConnection, per_connection: bool) -> Iterator[Metric]:
    """Whether each product that counts works now, and when it last did."""
    frame = status.table(engine, details=False)
    verdict = status.verdicts(frame)
    labels = ["connection", "product"] if per_connection else ["product"]
    up = GaugeMetricFamily(
        "switchboard_product_up",
        "1 when the product's latest check was ok, 0 when it "
        "fails; products that do not count (not ticked) or were never tested are left out."
        + ("" if per_connection else " Per product: 1 only when ok on every connection."),
        labels=labels,
    )
    success = GaugeMetricFamily(
        "switchboard_last_success_timestamp_seconds",
        "When the product last answered "
        "ok (Unix time)." + ("" if per_connection else " Per product: the oldest of the connections' last successes."),
        labels=labels,
    )
    tally = GaugeMetricFamily(
        "switchboard_products",
        "Connections whose product is ok, failing or never tested (products that count only).",
        labels=["product", "status"],
    )
    counted = frame.assign(verdict=verdict)[(verdict != status.Verdict.NOT_TICKED).to_numpy()]
    ok = (counted["verdict"] == status.Verdict.OK).to_numpy()
    tested = ok | (counted["verdict"] == status.Verdict.FAILING).to_numpy()
    earlier = _last_successes(conn)
    last = np.where(
        ok,
        counted["checked_at"].map(lambda at: at.timestamp() if pd.notna(at) else np.nan),
        [earlier.get(pair, np.nan) for pair in zip(counted["connection"], counted["product"], strict=True)],
    )
    named = pd.DataFrame(
        {
            "connection": counted["connection"].to_numpy(),
            "product": counted["product"].to_numpy(),
            "up": np.where(tested, ok.astype(float), np.nan),
            "last": last,
        }
    )
    if not per_connection:
        named = named.groupby("product", sort=False, as_index=False)[["up", "last"]].min()
    keys = named[["connection", "product"]] if per_connection else named[["product"]]
    for key, value, when in zip(keys.itertuples(index=False, name=None), named["up"], named["last"], strict=True):
        if not np.isnan(value):
            up.add_metric(list(key), value)
        if not np.isnan(when):
            success.add_metric(list(key), when)
    sizes = counted.groupby(["product", "verdict"]).size()
    for product in PRODUCT_KEYS:
        for word in (status.Verdict.OK, status.Verdict.FAILING, status.Verdict.NEVER_TESTED):
            tally.add_metric([product, _label(word)], int(sizes.get((product, word.value), 0)))
    yield from (up, success, tally)


def _uptime(conn: SqlConnection) -> Iterator[Metric]:
    ratio = GaugeMetricFamily(
        "switchboard_uptime_ratio",
        "Share of the product's checks on every connection that were ok over the window (0 to 1); "
        "left out where the window holds no check.",
        labels=["product", "window"],
    )
    found = fleet.uptimes(conn, utcnow())
    for product in PRODUCT_KEYS:  # the catalogue's: a label set that cannot grow
        for window in WINDOWS:
            value = found.get(product, {}).get(window)
            if value is not None:
                ratio.add_metric([product, window], value)
    yield ratio


def _heartbeat(session: Session) -> Iterator[Metric]:
    """The newest tick of any scheduled-check worker, the newest successful one, and the live
    workers whose latest tick failed (each left out until a worker has ticked)."""
    seen = schedule.workers_in(session)
    if not seen:
        return
    yield GaugeMetricFamily(
        "switchboard_worker_heartbeat_timestamp_seconds",
        "When a worker last began a "
        "tick of the schedule (Unix time), the newest of all workers. It says the process "
        "lives, not that the tick worked: see the successful-tick gauge.",
        value=max(w.last_tick_at for w in seen).timestamp(),
    )
    succeeded = [w.last_ok_tick_at for w in seen if w.last_ok_tick_at is not None]
    if succeeded:
        yield GaugeMetricFamily(
            "switchboard_worker_last_successful_tick_timestamp_seconds",
            "When a worker "
            "last completed a tick (its checks and its alerts) without an error (Unix time), "
            "the newest of all workers.",
            value=max(succeeded).timestamp(),
        )
    now = utcnow()
    yield GaugeMetricFamily(
        "switchboard_workers_failing",
        "Live workers (seen within three of their ticks) whose latest tick failed.",
        value=sum(1 for w in seen if w.alive(now) and w.failing),
    )


def _secrets(conn: SqlConnection, per_connection: bool) -> Iterator[Metric]:
    """When the oldest Client Secret was set (and each one, per connection): what an "ageing
    secrets" alert is built on. Left out while there are no connections."""
    if per_connection:
        each = GaugeMetricFamily(
            "switchboard_secret_set_timestamp_seconds",
            "When the connection's Client Secret was last set (Unix time).",
            labels=["connection"],
        )
        for name, at in conn.execute(select(col(Connection.name), col(Connection.secret_set_at))):
            each.add_metric([name], at.timestamp())
        yield each
    oldest = conn.execute(select(func.min(col(Connection.secret_set_at)))).scalar()
    if oldest is not None:
        yield GaugeMetricFamily(
            "switchboard_secret_oldest_set_timestamp_seconds",
            "When the oldest Client Secret of all connections was set (Unix time).",
            value=oldest.timestamp(),
        )


def _outbox(conn: SqlConnection) -> Iterator[Metric]:
    """Alert events by delivery status (finished ones are kept a while, then pruned), and when
    the oldest one still waiting to go out was queued."""
    status_column = col(AlertOutbox.status)
    found: dict[str, int] = dict(conn.execute(select(status_column, func.count()).group_by(status_column)).all())
    rows = GaugeMetricFamily(
        "switchboard_alert_events",
        "Alert events in the outbox by status: pending (to be "
        "sent or retried), held (a quiet window), delivered, summarised, failed (given up).",
        labels=["status"],
    )
    for status_name in OUTBOX_STATUSES:
        rows.add_metric([status_name], found.get(status_name, 0))
    yield rows
    oldest = conn.execute(
        select(func.min(col(AlertOutbox.created_at))).where(status_column == OUTBOX_STATUSES[0])
    ).scalar()
    if oldest is not None:
        yield GaugeMetricFamily(
            "switchboard_alert_oldest_pending_timestamp_seconds",
            "When the oldest alert event still waiting to be delivered was queued (Unix time).",
            value=oldest.timestamp(),
        )


@dataclass(frozen=True)
class StatusCollector:
    """prometheus_client's custom-collector interface: ``collect`` runs at every scrape."""

    engine: Engine
    per_connection: bool

    def collect(self) -> Iterator[Metric]:
        with read_session(self.engine) as session:
            conn = session.connection()
            yield from _checks(conn)
            yield from _fleet(self.engine, conn, self.per_connection)
            yield from _uptime(conn)
            yield from _heartbeat(session)
            yield from _secrets(conn, self.per_connection)
            yield from _outbox(conn)


def exposition(engine: Engine, *, per_connection: bool, actor: Principal, accept: str = "") -> tuple[bytes, str]:
    """The metrics in the format the scraper asked for (``Accept``), and its content type."""
    require(actor, Permission.READ_STATUS)
    registry = CollectorRegistry()
    registry.register(StatusCollector(engine, per_connection))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


@dataclass(frozen=True)
class AllowedAddress:
    """A scrape from an address on SWITCHBOARD_METRICS_ALLOW (``access.LiveSession``): it may
    read status, as a viewer, for as long as the setting lists it (read once per process)."""

    def standing(self) -> Standing:
        return Standing(Role.VIEWER, None)


def scraper(address: str | None, allowed: tuple[str, ...]) -> Principal | None:
    """The principal of a scrape without a token from ``address``, or None when the address
    is not on the list."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not any(ip in ipaddress.ip_network(network, strict=False) for network in allowed):
        return None
    return Principal(f"scraper:{ip}", Role.VIEWER, str(ip), via="allowed address", session=AllowedAddress())
