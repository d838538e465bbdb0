"""Uptime where admins read it (issue 24, item 3): the Connections table's "Uptime 30 d" per
connection (its products that count together), a connection's uptime per product over 24 h,
7, 30 and 90 days, and uptime_24h/7d/30d in every export format, all from the rollups: one
indexed read for the whole table or export, never one per row, and kept up to date with the
overview's incremental updates. Checks are stored through the real storage code."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from datetime import UTC, datetime, timedelta

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from lib.catalogue.products import PRODUCTS
from lib.services import connections
from lib.services.history import rollups, status
from lib.services.reporting import connections_table, export
from lib.services.runtime import Runtime
from lib.store.db import read_session
from lib.store.models import utcnow
from lib.store.vault import Vault
from tests.fixtures.console import PageOpener
from tests.fixtures.people import ADMIN
from tests.test_metrics import add
from tests.test_read_paths import plan, queries
from tests.test_rollups import store_at

UPTIME = connections_table.UPTIME_COLUMN


def rollup_reads(seen: list[tuple[str, object]]) -> list[tuple[str, object]]:
    return [(s, p) for s, p in seen if "check_rollup" in s]


def assert_read_by_index(engine: Engine, reads: list[tuple[str, object]]) -> None:
    for statement, parameters in reads:
        steps = [s for s in plan(engine, statement, parameters).steps if "check_rollup" in s]
        assert steps and not [s for s in steps if s.startswith(("SCAN check_rollup", "Seq Scan"))], steps
        assert any("_check_rollup_" in s for s in steps), steps


def assert_once_per_table(reads: list[tuple[str, object]]) -> None:
    """The daily rollups read once, the hourly ones at most once (not at all when each window
    starts at a midnight: its days hold its hours)."""
    tables = [re.search(r"FROM (check_rollup_\w+)", s).group(1) for s, _ in reads]  # type: ignore[union-attr]
    assert sorted(tables) in (["check_rollup_day"], ["check_rollup_day", "check_rollup_hour"]), tables


def fleet(engine: Engine, vault: Vault) -> dict[str, str]:
    """Alpha ticks Cloud Storage: 3 of 4 ok today, its chat (not ticked) failing; Beta ticks
    none, so all five count: storage 2 ok, chat 1 timeout; Gamma never checked; Delta checked
    only 40 days ago. Their ids as the table has them."""
    now = utcnow()
    alpha = add(engine, vault, "Alpha", ("cloud_storage",))
    beta = add(engine, vault, "Beta", (), client_id="client-0002")
    add(engine, vault, "Gamma", ("cloud_storage",), client_id="client-0003")
    delta = add(engine, vault, "Delta", ("cloud_storage",), client_id="client-0004")
    store_at(engine, alpha, "cloud_storage", ("ok", "ok", "ok", "timeout"), now - timedelta(minutes=5))
    store_at(engine, alpha, "cc_chat", ("timeout",) * 4, now - timedelta(minutes=5))
    store_at(engine, beta, "cloud_storage", ("ok", "ok"), now - timedelta(days=3))
    store_at(engine, beta, "cc_chat", ("timeout",), now - timedelta(minutes=5))
    store_at(engine, delta, "cloud_storage", ("ok",), now - timedelta(days=40))
    table = status.table(engine, details=False)
    return dict(zip(table["connection"], table["connection_id"], strict=False))


def shown(overview: connections_table.Overview) -> dict[str, float | None]:
    return {
        name: None if math.isnan(value) else value
        for name, value in zip(overview.wide["Name"], overview.wide[UPTIME], strict=True)
    }


# --- the Connections table -------------------------------------------------------------------


def test_the_table_shows_each_connections_uptime_over_30_days_of_its_products_that_count(
    engine: Engine, vault: Vault
) -> None:
    fleet(engine, vault)
    overview = connections_table.Overview.build(engine, status.data_stamp(engine))
    assert UPTIME in overview.wide.columns and overview.wide[UPTIME].dtype == "float64"
    # Alpha: its failing chat is not ticked; Beta: 2 of 3, rounded down; Gamma and Delta: no check in 30 days.
    assert shown(overview) == {"Alpha": 75.0, "Beta": 66.6, "Gamma": None, "Delta": None}


def test_the_uptime_percentage_has_one_decimal_rounded_down_and_nothing_without_checks() -> None:
    found = rollups.percent([7, 2, 0, 999, 0, 5], [10, 3, 4, 1_000, 0, 5])
    assert [None if math.isnan(v) else v for v in found] == [70.0, 66.6, 0.0, 99.9, None, 100.0]


def test_the_table_reads_every_uptime_in_one_indexed_query(engine: Engine, vault: Vault) -> None:
    fleet(engine, vault)
    with queries(engine) as seen:
        connections_table.Overview.build(engine, status.data_stamp(engine))
    reads = rollup_reads(seen)
    assert len(reads) == 1 and "check_rollup_day" in reads[0][0]  # 30 days: the daily rollups only
    assert_read_by_index(engine, reads)


def test_new_checks_update_the_uptime_of_the_connections_they_touch_in_one_query(engine: Engine, vault: Vault) -> None:
    ids = fleet(engine, vault)
    overview = connections_table.Overview.build(engine, status.data_stamp(engine))
    gamma = connections.find_by_name(engine, "Gamma")
    assert str(gamma.id).replace("-", "") == ids["Gamma"].replace("-", "")
    store_at(engine, gamma, "cloud_storage", ("ok", "timeout"), utcnow())
    stamp = status.data_stamp(engine)
    with queries(engine) as seen:
        derived = overview.updated(engine, stamp)
    reads = rollup_reads(seen)
    assert len(reads) == 1
    assert_read_by_index(engine, reads)
    assert shown(derived) == {"Alpha": 75.0, "Beta": 66.6, "Gamma": 50.0, "Delta": None}
    pd.testing.assert_frame_equal(derived.wide, connections_table.Overview.build(engine, stamp).wide)


def test_a_new_day_reads_every_uptime_again(engine: Engine, vault: Vault) -> None:
    """The 30-day window moves at midnight (UTC) even when nothing is checked: an overview of
    yesterday reads the column again, the rest kept."""
    fleet(engine, vault)
    stamp = status.data_stamp(engine)
    today = connections_table.Overview.build(engine, stamp)
    wide = today.wide.copy()
    wide[UPTIME] = 12.5  # what yesterday's window said, say
    yesterday = dataclasses.replace(today, wide=wide, day=today.day - timedelta(days=1))
    moved = yesterday.updated(engine, stamp)
    assert moved.day == today.day and shown(moved) == shown(today)
    assert moved.table is yesterday.table
    assert moved.updated(engine, stamp) is moved


def test_the_connections_page_shows_the_uptime_column_with_a_dash_for_none(
    console_env: Runtime, open_page: PageOpener
) -> None:
    fleet(console_env.engine, console_env.vault)
    at = open_page("pages/connections.py")
    assert not at.exception
    [table] = [d for d in at.dataframe if UPTIME in d.value.columns]
    frame = table.value.set_index("Name")
    assert frame.loc["Alpha", UPTIME] == 75.0 and math.isnan(frame.loc["Gamma", UPTIME])
    assert table.proto.placeholder == "—"  # what the grid draws for a missing figure: never "None"


# --- a connection's detail ---------------------------------------------------------------------


def test_a_connections_uptime_per_product_and_window(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage", "cc_chat"))
    now = utcnow()
    store_at(engine, view, "cloud_storage", ("ok", "ok", "ok", "timeout"), now - timedelta(minutes=5))
    store_at(engine, view, "cloud_storage", ("timeout",) * 4, now - timedelta(days=3))
    store_at(engine, view, "cloud_storage", ("ok",) * 8, now - timedelta(days=20))
    store_at(engine, view, "cloud_storage", ("timeout",) * 4, now - timedelta(days=60))
    store_at(engine, view, "quality_management", ("ok",), now)  # not asked for: not shown
    with queries(engine) as seen:
        found = rollups.connection_uptime(engine, view.id, ["cloud_storage", "cc_chat"], actor=ADMIN, now=now)
    assert list(found.index) == ["cloud_storage", "cc_chat"] and list(found.columns) == list(rollups.WINDOWS)
    assert found.loc["cloud_storage"].to_dict() == {"24h": 75.0, "7d": 37.5, "30d": 68.7, "90d": 55.0}
    assert found.loc["cc_chat"].isna().all()
    assert_once_per_table(rollup_reads(seen))
    assert_read_by_index(engine, rollup_reads(seen))


# --- exports ---------------------------------------------------------------------------------


def parsed(fmt: str, data: bytes) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(data))
    if fmt == "json":
        return pd.DataFrame(json.loads(data))
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.values)
    return pd.DataFrame(rows[1:], columns=rows[0])


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_every_export_carries_the_uptime_of_each_product_that_counts(runtime: Runtime, fmt: str) -> None:
    fleet(runtime.engine, runtime.vault)
    frame = parsed(fmt, export.export(runtime.engine, fmt, actor=ADMIN).data)
    assert tuple(frame.columns[-3:]) == ("uptime_24h", "uptime_7d", "uptime_30d") == export.UPTIME_COLUMNS
    rows = frame.set_index(["connection", "product"])[list(export.UPTIME_COLUMNS)].astype("float64")

    def uptime(connection: str, product: str) -> list[float | None]:
        return [None if math.isnan(v) else v for v in rows.loc[(connection, PRODUCTS[product].name)]]

    assert uptime("Alpha", "cloud_storage") == [0.75, 0.75, 0.75]
    assert uptime("Alpha", "cc_chat") == [None, None, None]  # checked, but not ticked: it does not count
    assert uptime("Beta", "cloud_storage") == [None, 1.0, 1.0]  # 3 days ago: not in the last 24 hours
    assert uptime("Beta", "cc_chat") == [0.0, 0.0, 0.0]
    assert uptime("Gamma", "cloud_storage") == [None, None, None]
    assert uptime("Delta", "cloud_storage") == [None, None, None]  # 40 days ago
    assert rows.stack().dropna().between(0, 1).all()


def test_an_export_reads_the_uptime_of_all_its_rows_at_once_by_index(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By the ids of its connections, or, past export._BY_ID of them, the windows' ranges of
    every connection's rollups: the same figures either way."""
    fleet(runtime.engine, runtime.vault)
    table = status.table(runtime.engine)
    by_id = export.uptimes(runtime.engine, table)
    for few in (export._BY_ID, 1):
        monkeypatch.setattr(export, "_BY_ID", few)
        for selection in (None, connections_table.Selection(search="a")):
            with queries(runtime.engine) as seen:
                export.export(runtime.engine, "json", actor=ADMIN, selection=selection)
            reads = rollup_reads(seen)
            assert_once_per_table(reads)  # whatever the number of rows
            assert_read_by_index(runtime.engine, reads)
        pd.testing.assert_frame_equal(export.uptimes(runtime.engine, table), by_id)


# --- hours up to midnight, days from there ------------------------------------------------------


def test_an_hourly_window_read_as_hours_then_days_counts_what_its_hours_hold(engine: Engine, vault: Vault) -> None:
    """However the clock stands, a window counts the checks of every bucket from the one its
    start falls in: its hours before the first midnight are read from the hourly rollups, the
    rest from the daily ones, and together they count as the hours alone would."""
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    base = datetime(2026, 12, 7, tzinfo=UTC)
    stored = [(base - timedelta(minutes=(i * 337) % (12 * 24 * 60)), "ok" if i % 3 else "timeout") for i in range(160)]
    for at, outcome in stored:
        store_at(engine, view, "cloud_storage", (outcome,), at)

    @settings(max_examples=60, deadline=None)
    @given(minutes=st.integers(0, 3 * 24 * 60), windows=st.sets(st.sampled_from(list(rollups.WINDOWS)), min_size=1))
    def counted(minutes: int, windows: set[str]) -> None:
        now = base + timedelta(minutes=minutes)
        with read_session(engine) as session:
            found = rollups.counts(session.connection(), now, windows=windows)
        for name in windows:
            length, table = rollups.WINDOWS[name]
            since = rollups.floor(now - length, table)
            inside = [outcome for at, outcome in stored if rollups.floor(at, table) >= since]
            assert int(found[f"checks_{name}"].sum()) == len(inside), name
            assert int(found[f"ok_{name}"].sum()) == inside.count("ok"), name

    counted()
