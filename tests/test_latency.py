"""Response times from the rollups (issue 24, item 3): p50/p95 estimated from each bucket's
duration histogram stay inside the bucket holding the rank, in order, never above the maximum,
and exact when every check took the same time; one connection's are read per product and hour
(up to 7 days) or day (beyond) by the key index, past the pruning of its raw checks; the
detail's chart draws them in UTC. Real SQLite files (and PostgreSQL where offered)."""

from __future__ import annotations

import math
from datetime import timedelta
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from lib.catalogue.products import PRODUCTS
from lib.kernel.words import SHOWN_FORMAT
from lib.services.history import latency
from lib.store.models import ROLLUP_BUCKETS, duration_bucket
from lib.store.vault import Vault
from lib.ui.history_chart import latency_chart, latency_frame
from tests.fixtures.people import ADMIN
from tests.test_metrics import add
from tests.test_read_paths import plan, queries
from tests.test_rollups import NOW, store_at

# --- the estimate ----------------------------------------------------------------------------

EDGES = sorted({0, *latency.LOWER[1:].astype(int), *(latency.LOWER[1:].astype(int) + 1)})
DURATIONS = st.lists(st.one_of(st.sampled_from(EDGES), st.integers(0, 120_000)), min_size=1, max_size=60)
SHARES = st.sampled_from((0.5, 0.95, 0.99, 1.0)) | st.floats(0.001, 1.0)


def rolled_up(durations: list[int]) -> tuple[np.ndarray, int, int]:
    """As a rollup row keeps them: the histogram, the maximum and the sum."""
    histogram = np.zeros(len(ROLLUP_BUCKETS), dtype="int64")
    for ms in durations:
        histogram[duration_bucket(ms)] += 1
    return histogram, max(durations), sum(durations)


def estimate(durations: list[int], share: float) -> float:
    histogram, top, total = rolled_up(durations)
    [found] = latency.percentiles(histogram[None, :], np.array([top]), np.array([total]), share)
    return float(found)


def nearest_rank(durations: list[int], share: float) -> int:
    """The true percentile: the smallest duration with at least ``share`` of the checks at or below it."""
    rank = max(1, math.ceil(Fraction(share) * len(durations)))
    return sorted(durations)[rank - 1]


@given(durations=DURATIONS, share=SHARES)
def test_an_estimate_stays_in_the_bucket_of_the_true_percentile(durations: list[int], share: float) -> None:
    """Never outside the bucket holding the rank (so off by at most its width), never above the
    maximum, never below 0."""
    found = estimate(durations, share)
    bucket = duration_bucket(nearest_rank(durations, share))
    lower = latency.LOWER[bucket]
    upper = min(latency.UPPER[bucket], max(durations))
    assert lower <= found <= upper, (found, bucket)
    assert 0 <= found <= max(durations)


@given(durations=DURATIONS)
def test_p50_p95_and_the_maximum_are_in_order(durations: list[int]) -> None:
    p50, p95, p100 = (estimate(durations, share) for share in (0.5, 0.95, 1.0))
    assert p50 <= p95 <= p100 == max(durations)


@given(ms=st.one_of(st.sampled_from(EDGES), st.integers(0, 120_000)), n=st.integers(1, 50), share=SHARES)
def test_checks_that_all_took_the_same_time_give_that_time_exactly(ms: int, n: int, share: float) -> None:
    """One check, or many alike: one bucket, and the sum says they all took the maximum."""
    assert estimate([ms] * n, share) == ms


@given(rows=st.lists(DURATIONS, min_size=1, max_size=8), share=SHARES)
def test_rows_are_estimated_each_on_its_own(rows: list[list[int]], share: float) -> None:
    parts = [rolled_up(durations) for durations in rows]
    together = latency.percentiles(
        np.stack([h for h, _, _ in parts]),
        np.array([m for _, m, _ in parts]),
        np.array([s for _, _, s in parts]),
        share,
    )
    assert list(together) == [estimate(durations, share) for durations in rows]


def test_a_known_histogram_interpolates_inside_the_bucket_holding_the_rank() -> None:
    durations = [100] * 9 + [3_000]  # nine in (50, 100], one in (2500, 5000] that ends at 3000
    assert estimate(durations, 0.5) == pytest.approx(50 + 5 / 9 * 50)
    assert estimate(durations, 0.95) == pytest.approx(2_500 + 0.5 * 500)
    with pytest.raises(ValueError, match="share"):
        estimate(durations, 0)


# --- one connection's response times ---------------------------------------------------------


def test_response_times_are_read_per_product_and_hour_or_day_over_the_window(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage", "cc_chat"))
    for ms in [100] * 9 + [3_000]:
        store_at(engine, view, "cloud_storage", ("ok",), NOW - timedelta(hours=2, minutes=10), ms=ms)
    store_at(engine, view, "cloud_storage", ("timeout",), NOW - timedelta(days=40), ms=30_000)  # past 30 days
    store_at(engine, view, "cc_chat", ("ok",), NOW - timedelta(hours=30), ms=420)
    store_at(engine, view, "quality_management", ("ok",), NOW - timedelta(hours=1), ms=10)  # not asked for

    day = latency.over(engine, view.id, ["cloud_storage", "cc_chat"], "24h", actor=ADMIN, now=NOW)
    assert list(day.columns) == list(latency.COLUMNS)
    [storage] = day.to_dict("records")  # the chat check is 30 hours old
    assert storage["product"] == "cloud_storage" and storage["checks"] == 10
    assert storage["start"] == pd.Timestamp(NOW - timedelta(hours=2, minutes=10)).floor("h")
    assert storage["p50_ms"] == pytest.approx(50 + 5 / 9 * 50) and storage["p95_ms"] == pytest.approx(2_750)
    assert storage["max_ms"] == 3_000

    week = latency.over(engine, view.id, ["cloud_storage", "cc_chat"], "7d", actor=ADMIN, now=NOW)
    assert list(week["product"]) == ["cc_chat", "cloud_storage"]  # by product, then time
    assert week.set_index("product").loc["cc_chat", "p95_ms"] == 420  # a single check: exact

    quarter = latency.over(engine, view.id, ["cloud_storage"], "90d", actor=ADMIN, now=NOW)
    assert list(quarter["start"]) == [
        pd.Timestamp(NOW - timedelta(days=40)).floor("D"),
        pd.Timestamp(NOW).floor("D"),
    ]  # days beyond 7 days: the old timeout is read from the daily rollups
    assert list(quarter["max_ms"]) == [30_000, 3_000] and list(quarter["checks"]) == [1, 10]

    assert latency.over(engine, view.id, ["cloud_storage"], "24h", actor=ADMIN, now=NOW + timedelta(days=3)).empty


def test_response_times_are_read_by_the_key_index(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    other = add(engine, vault, "Beta", ("cloud_storage",), client_id="client-0002")
    for who in (view, other):
        store_at(engine, who, "cloud_storage", ("ok", "timeout"), NOW - timedelta(hours=1))
    for window in ("24h", "90d"):
        with queries(engine) as seen:
            latency.over(engine, view.id, ["cloud_storage", "cc_chat"], window, actor=ADMIN, now=NOW)
        [(statement, parameters)] = [(s, p) for s, p in seen if "check_rollup" in s]
        steps = plan(engine, statement, parameters).steps
        rollup_steps = [s for s in steps if "check_rollup" in s]
        assert rollup_steps and not [s for s in rollup_steps if s.startswith(("SCAN check_rollup", "Seq Scan"))]
        assert any("ux_check_rollup_" in s for s in rollup_steps), steps
        assert not any("TEMP B-TREE" in s for s in steps), steps  # in the index's order: no sort


# --- the chart -------------------------------------------------------------------------------


def test_the_response_time_chart_draws_p50_and_p95_per_product_in_utc(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    store_at(engine, view, "cloud_storage", ("ok", "ok"), NOW - timedelta(hours=1), ms=120)
    frame = latency_frame(latency.over(engine, view.id, ["cloud_storage"], "24h", actor=ADMIN, now=NOW))
    assert len(frame) == 2 and set(frame["Measure"]) == {"p50", "p95"}
    assert set(frame["Product"]) == {PRODUCTS["cloud_storage"].name} and set(frame["Latency (ms)"]) == {120}
    assert frame["From"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").all()
    assert not frame.isna().any().any()
    spec = latency_chart(frame, "Response time per hour, last 24 h").to_dict()
    encoding = spec["encoding"]
    assert encoding["x"]["scale"]["type"] == "utc" and encoding["x"]["axis"]["format"] == SHOWN_FORMAT
    assert encoding["strokeDash"]["scale"]["domain"] == ["p50", "p95"]
    assert {t["field"] for t in encoding["tooltip"]} >= {"p50 (ms)", "p95 (ms)", "Max (ms)", "Tests", "From"}
    assert spec["mark"]["type"] == "line" and spec["mark"]["point"] is True
