"""Rollups and uptime (issue 24, items 2 and 3): hourly and daily rollups kept in the
transaction that stores the checks equal an aggregate of the history they count, outlive its
pruning, are filled by migration 0015 from an older history in resumable batches, and give
the uptime the status API and /metrics report, read by index. SQLite file and PostgreSQL."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, func, select, text

from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.eightbyeight.models import ProbeResult
from lib.services.checking import checks
from lib.services.checking.retention import Pruner
from lib.services.history import rollups
from lib.services.history.status import CheckRecord
from lib.services.reporting import machine_status
from lib.services.runtime import Runtime
from lib.store import db
from lib.store.db import read_session, write_session
from lib.store.keyring import check_keyring
from lib.store.models import (
    DURATION_BUCKETS_MS,
    ROLLUP_BUCKETS,
    ROLLUP_OUTCOMES,
    Check,
    CheckRollupDay,
    CheckRollupHour,
    Connection,
    FleetRollupDay,
    FleetRollupHour,
    UTCDateTime,
    duration_bucket,
)
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN
from tests.fixtures.storage import Sentinels
from tests.test_metrics import add
from tests.test_read_paths import (
    LOST,
    OUTCOMES,
    REFUSED,
    Planned,
    plan,
    queries,
    two_connections_and_a_deleted_one,
)
from tests.test_storage import connections_before_audit

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
SUMMED = ("checks", *(f"n_{o}" for o in ROLLUP_OUTCOMES), *ROLLUP_BUCKETS, "duration_sum_ms", "duration_max_ms")


def start_of(moment: datetime, table: Any) -> datetime:
    hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if table is CheckRollupDay else hour


def aggregate(rows: Iterable[tuple[Any, str, str, int, datetime]], table: Any) -> dict[tuple[Any, ...], dict[str, int]]:
    """A direct aggregate of (connection, product, outcome, ms, started_at) rows per bucket."""
    found: dict[tuple[Any, ...], dict[str, int]] = {}
    for connection_id, product, outcome, ms, at in rows:
        sums = found.setdefault((connection_id, product, start_of(at, table)), dict.fromkeys(SUMMED, 0))
        sums["checks"] += 1
        sums[f"n_{outcome}"] += 1
        sums[ROLLUP_BUCKETS[duration_bucket(ms)]] += 1
        sums["duration_sum_ms"] += ms
        sums["duration_max_ms"] = max(sums["duration_max_ms"], ms)
    return found


def counted_history(engine: Engine) -> list[tuple[Any, str, str, int, datetime]]:
    """The product checks stored with their connection's settings of now (the tests edit none)."""
    with read_session(engine) as session:
        return list(
            session.execute(
                select(Check.connection_id, Check.product, Check.outcome, Check.duration_ms, Check.started_at)
                .join(Connection, Connection.id == Check.connection_id)  # type: ignore[arg-type]
                .where(Check.product != TOKEN, Check.settings_version >= Connection.settings_version)
            ).all()
        )


def rolled(engine: Engine, table: Any) -> dict[tuple[Any, ...], dict[str, int]]:
    with read_session(engine) as session:
        return {
            (r.connection_id, r.product, r.start): {c: getattr(r, c) for c in SUMMED}
            for r in session.execute(select(table)).all()
        }


def fleet_aggregate(
    history: Iterable[tuple[Any, str, str, int, datetime]], table: Any
) -> dict[tuple[Any, ...], dict[str, int]]:
    """``aggregate`` summed over the connections: per (product, start)."""
    found: dict[tuple[Any, ...], dict[str, int]] = {}
    for (_, product, start), sums in aggregate(history, table).items():
        into = found.setdefault((product, start), dict.fromkeys(SUMMED, 0))
        for column, value in sums.items():
            into[column] = max(into[column], value) if column == "duration_max_ms" else into[column] + value
    return found


def fleet_rolled(engine: Engine, table: Any) -> dict[tuple[Any, ...], dict[str, int]]:
    with read_session(engine) as session:
        return {(r.product, r.start): {c: getattr(r, c) for c in SUMMED} for r in session.execute(select(table)).all()}


def assert_rollups_aggregate(
    engine: Engine, history: list[tuple[Any, str, str, int, datetime]], *, fleet: bool = True
) -> None:
    """Each rollup row equals an aggregate of the checks it counts; and the fleet's (from
    migration 0017 on: ``fleet``) the same summed over the connections."""
    for table in (CheckRollupHour, CheckRollupDay):
        assert rolled(engine, table) == aggregate(history, table), table.name
    for table, per_connection in ((FleetRollupHour, CheckRollupHour), (FleetRollupDay, CheckRollupDay)):
        if fleet:
            assert fleet_rolled(engine, table) == fleet_aggregate(history, per_connection), table.name


EDGES = sorted({0, *DURATION_BUCKETS_MS, *(b + 1 for b in DURATION_BUCKETS_MS)})
results = st.builds(
    Planned,
    who=st.sampled_from((0, 0, 1, 1, 2)),
    product=st.sampled_from((TOKEN, *PRODUCT_KEYS)),
    outcome=st.sampled_from(OUTCOMES),
    ms=st.one_of(st.sampled_from(EDGES), st.integers(0, 60_000)),
    minutes_ago=st.integers(0, 3 * 24 * 60),
    earlier_settings=st.booleans(),
    fault=st.sampled_from((None, None, None, None, None, "refused", "lost")),
)


def test_rollups_equal_an_aggregate_of_the_checks_they_count_after_any_batches(runtime: Runtime, vault: Vault) -> None:
    """Batches of any results over three days, token steps and results made with earlier
    settings among them, for connections that exist or were deleted meanwhile, some refused by
    the database (the batch falls back to one by one, a refused result stored as a failure):
    each hourly and daily rollup row equals an aggregate of the product checks of the current
    settings in its hour or day."""
    engine = runtime.engine
    views, gone = two_connections_and_a_deleted_one(engine, vault)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batches=st.lists(st.lists(results, min_size=1, max_size=8), min_size=1, max_size=4))
    def stored(batches: list[list[Planned]]) -> None:
        writer = checks._Writer(runtime, checks.RunReport(run_id="r"), "test", None)
        for batch in batches:
            for r in batch:
                connection_id, name = (views[r.who].id, views[r.who].name) if r.who < 2 else (gone, "Gone")
                at, detail = NOW - timedelta(minutes=r.minutes_ago), REFUSED if r.fault == "refused" else ""
                record = CheckRecord(
                    connection_id,
                    name,
                    r.product,
                    r.outcome,
                    200,
                    r.ms,
                    detail,
                    at,
                    LOST if r.fault == "lost" else "r",
                    0 if r.earlier_settings else None,
                )
                writer.add(record, ProbeResult(r.product, r.outcome, detail, at, 200, r.ms))
            writer.flush()
        assert_rollups_aggregate(engine, counted_history(engine))

    stored()


def store_at(engine: Engine, view: Any, product: str, outcomes: Iterable[str], at: datetime, ms: int = 100) -> None:
    with write_session(engine) as session:
        checks.store(
            session,
            [CheckRecord(view.id, view.name, product, outcome, 200, ms, "", at, "r") for outcome in outcomes],
            {},
            "test",
        )


def uptime_at(engine: Engine, now: datetime) -> dict[tuple[str, str], dict[str, float]]:
    with read_session(engine) as session:
        found = rollups.counts(session.connection(), now)
    shares = rollups.ratios(found)
    return {
        (c, p): {w: round(v, 4) for w, v in row.items() if not math.isnan(v)}
        for c, p, row in zip(found["connection_id"], found["product"], shares.to_dict("records"), strict=True)
    }


def scripted(engine: Engine, vault: Vault) -> Any:
    """Alpha's Cloud Storage: 3 ok and 1 timeout 10 hours before NOW, 4 timeouts 3 days before,
    8 ok 20 days before, 4 timeouts 60 days before; and at the 24-hour edge an ok in the hour
    that holds NOW - 24 h (read whole) and a timeout in the hour before it (left out)."""
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    store_at(engine, view, "cloud_storage", ("ok", "ok", "ok", "timeout"), NOW - timedelta(hours=10))
    store_at(engine, view, "cloud_storage", ("timeout",) * 4, NOW - timedelta(days=3))
    store_at(engine, view, "cloud_storage", ("ok",) * 8, NOW - timedelta(days=20))
    store_at(engine, view, "cloud_storage", ("timeout",) * 4, NOW - timedelta(days=60))
    store_at(engine, view, "cloud_storage", ("ok",), NOW - timedelta(hours=24, minutes=20))  # hour of 12:00
    store_at(engine, view, "cloud_storage", ("timeout",), NOW - timedelta(hours=24, minutes=40))  # hour of 11:00
    return view


def test_uptime_over_each_window_of_a_scripted_history(engine: Engine, vault: Vault) -> None:
    view = scripted(engine, vault)
    key = view.id.hex if db.is_sqlite(engine) else str(view.id)
    assert uptime_at(engine, NOW) == {
        (key, "cloud_storage"): {
            "24h": round(4 / 5, 4),
            "7d": round(4 / 10, 4),
            "30d": round(12 / 18, 4),
            "90d": round(12 / 22, 4),
        }
    }
    assert uptime_at(engine, NOW + timedelta(days=200)) == {}  # no check in any window: nothing


def test_rollups_outlive_the_pruning_of_the_checks_they_count(runtime: Runtime, vault: Vault) -> None:
    """Raw checks past their 30 days go; the rollups keep counting them until their own time
    (hours 35 days, days two years)."""
    engine = runtime.engine
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    now = datetime.now(UTC)
    store_at(engine, view, "cloud_storage", ("ok", "timeout"), now - timedelta(days=40))
    store_at(engine, view, "cloud_storage", ("ok",), now - timedelta(days=1000))
    store_at(engine, view, "cloud_storage", ("ok",), now - timedelta(hours=1))
    before_day = rolled(engine, CheckRollupDay)
    pruned = Pruner(runtime, budget=timedelta(minutes=5)).run()
    assert pruned.rows["checks"] == 3 and pruned.rows["rollups_daily"] == 1 and pruned.rows["rollups_hourly"] == 2
    with read_session(engine) as session:
        assert len(session.execute(select(Check.id)).all()) == 1
    assert rolled(engine, CheckRollupDay) == {k: v for k, v in before_day.items() if k[2] > now - timedelta(days=800)}
    [shares] = uptime_at(engine, now).values()
    assert shares == {"24h": 1.0, "7d": 1.0, "90d": round(2 / 3, 4), "30d": 1.0}


def test_uptime_is_read_by_index_for_a_window_only(engine: Engine, vault: Vault) -> None:
    scripted(engine, vault)
    with queries(engine) as seen, read_session(engine) as session:
        rollups.counts(session.connection(), NOW)
    assert len(seen) == 2
    for statement, parameters in seen:
        steps = plan(engine, statement, parameters).steps
        rollup_steps = [s for s in steps if "check_rollup" in s]
        assert rollup_steps, steps
        assert not [s for s in rollup_steps if s.startswith(("SCAN check_rollup", "Seq Scan"))], steps
        assert any("ix_check_rollup_" in s for s in rollup_steps), steps


def test_the_api_reports_the_uptime_of_one_connections_products_that_count(engine: Engine, vault: Vault) -> None:
    """Alpha ticks Cloud Storage only: its Contact Center chat checks count in no uptime. The
    fleet-wide answer of the API carries none (over a fleet it is a scan of millions of rollup
    rows); /metrics has the fleet's per product (tests/test_fleet_uptime.py)."""
    alpha = add(engine, vault, "Alpha", ("cloud_storage",))
    beta = add(engine, vault, "Beta", (), client_id="client-0002")  # none ticked: all five count
    now = datetime.now(UTC)
    store_at(engine, alpha, "cloud_storage", ("ok", "ok", "ok", "timeout"), now - timedelta(minutes=5))
    store_at(engine, alpha, "cc_chat", ("timeout",) * 4, now - timedelta(minutes=5))
    store_at(engine, beta, "cloud_storage", ("ok",) * 4, now - timedelta(days=3))
    [storage] = machine_status.one(engine, "alpha", actor=ADMIN)["products"]
    assert storage["uptime"] == {"24h": 0.75, "7d": 0.75, "30d": 0.75, "90d": 0.75}
    beta_products = {p["product"]: p["uptime"] for p in machine_status.one(engine, "Beta", actor=ADMIN)["products"]}
    assert beta_products["cloud_storage"] == {"24h": None, "7d": 1.0, "30d": 1.0, "90d": 1.0}
    assert beta_products["cc_chat"] == dict.fromkeys(rollups.WINDOWS)
    answer = machine_status.everything(engine, actor=ADMIN)
    assert not [p for c in answer["connections"] for p in c["products"] if "uptime" in p]


# --- the migration ---------------------------------------------------------------------------


def _migration(file: str = "0015_rollups.py") -> Any:
    path = db.MIGRATIONS_DIR / "versions" / file
    spec = importlib.util.spec_from_file_location("rollups_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _insert_history(engine: Engine, key: Any, rows: list[tuple[str, str, int, datetime]]) -> None:
    """Check rows as the code before 0015 wrote them (no rollups)."""
    at = bindparam("at", type_=UTCDateTime())
    with engine.begin() as conn:
        for product, outcome, ms, moment in rows:
            conn.execute(
                text(
                    "INSERT INTO check_result (connection_id, product, started_at, duration_ms, outcome, "
                    "detail, triggered_by) VALUES (:c, :p, :at, :ms, :o, '', 'x')"
                ).bindparams(at),
                {"c": key, "p": product, "o": outcome, "ms": ms, "at": moment},
            )


def _history(part: int) -> list[tuple[str, str, int, datetime]]:
    products = (*PRODUCT_KEYS, TOKEN)
    return [
        (
            products[i % len(products)],
            OUTCOMES[(i * 7 + part) % len(OUTCOMES)],
            EDGES[i % len(EDGES)] + part,
            NOW - timedelta(minutes=97 * i + part),
        )
        for i in range(60)
    ]


MARKED_MS = 77_777  # no other history row took this long


def _refuse_rollups_of(engine: Engine) -> None:
    """The database refuses a daily rollup holding the check that took MARKED_MS."""
    with engine.begin() as conn:
        if db.is_sqlite(engine):
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_rollup BEFORE INSERT ON check_rollup_day WHEN "
                    f"NEW.duration_max_ms = {MARKED_MS} BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_rollup() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.duration_max_ms = {MARKED_MS} THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_rollup BEFORE INSERT ON check_rollup_day FOR EACH ROW "
                    "EXECUTE FUNCTION refuse_rollup()"
                )
            )


def test_upgrading_fills_the_rollups_from_the_history_in_resumable_batches(
    database_url: str, vault: Vault, sentinels: Sentinels
) -> None:
    """0015 rolls up the history as the code would have; a backfill stopped half way (a batch
    refused) keeps the batches before it and goes on from its mark, counting nothing twice."""
    engine = db.make_engine(database_url)
    command.upgrade(db._alembic_config(engine), "0014")
    check_keyring(engine, vault)
    row_id = connections_before_audit(engine, vault, sentinels)
    key = row_id.hex if db.is_sqlite(engine) else row_id
    _insert_history(engine, key, _history(0))
    command.upgrade(db._alembic_config(engine), "0015")  # revisions after it are not this test's
    assert_rollups_aggregate(engine, counted_history(engine), fleet=False)

    migration = _migration()
    _insert_history(engine, key, _history(1)[:30])  # stored by a server still running the release before
    _insert_history(engine, key, [("cc_chat", "ok", MARKED_MS, NOW)])  # its rollup is refused: the backfill stops
    _insert_history(engine, key, _history(1)[30:])
    with read_session(engine) as session:
        mark = session.execute(text("SELECT done_to FROM rollup_backfill")).scalar_one()
        top = session.execute(text("SELECT max(id) FROM check_result")).scalar_one()
    _refuse_rollups_of(engine)
    with pytest.raises(Exception, match="refused"):
        migration.backfill(engine, batch=7)
    with read_session(engine) as session:
        stopped_at = session.execute(text("SELECT done_to FROM rollup_backfill")).scalar_one()
    assert mark < stopped_at < top
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_rollup" + ("" if db.is_sqlite(engine) else " ON check_rollup_day")))
    command.stamp(db._alembic_config(engine), "0014")  # as an upgrade stopped in its backfill left it
    command.upgrade(db._alembic_config(engine), "0015")  # finds the tables: goes on from the mark
    migration.backfill(engine, batch=7)  # nothing left: nothing added
    assert_rollups_aggregate(engine, counted_history(engine), fleet=False)
    db.upgrade(engine)  # 0017 sums the rollups into the fleet's
    assert_rollups_aggregate(engine, counted_history(engine))
    with write_session(engine) as session:  # stored after the upgrade: added to the rows it made
        checks.store(session, [CheckRecord(row_id, "Old", "cloud_storage", "ok", 200, 45, "", NOW, "r")], {}, "t")
    assert_rollups_aggregate(engine, counted_history(engine))
    with read_session(engine) as session:  # in the row the backfill made for that hour, not a second one
        assert (
            session.execute(
                select(func.count())
                .select_from(CheckRollupHour)
                .where(
                    CheckRollupHour.c.product == "cloud_storage",
                    CheckRollupHour.c.start == start_of(NOW, CheckRollupHour),
                )
            ).scalar_one()
            == 1
        )
    engine.dispose()
