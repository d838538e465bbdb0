"""Fleet uptime (issue 24, items 2 and 3): per product and hour or day, the rollups of every
connection summed (lib.store.models.FleetRollupHour/Day), kept in the transaction that stores
the checks, filled by migration 0017 from the per-connection rollups in ranges a stopped
upgrade runs again, pruned by the rollups' rules, and read by index for /metrics'
``switchboard_uptime_ratio{product, window}``. SQLite file and PostgreSQL.

Whether the fleet rows equal the checks they count after any batches is proven with the
per-connection rollups (tests/test_rollups.py ``assert_rollups_aggregate``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from lib.catalogue.products import PRODUCT_KEYS
from lib.services import connections
from lib.services.checking.retention import Pruner
from lib.services.history import fleet
from lib.services.history.rollups import WINDOWS
from lib.services.runtime import Runtime
from lib.store.db import read_session, write_session
from lib.store.models import CheckRollupDay, CheckRollupHour, FleetRollupDay, FleetRollupHour
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN
from tests.test_metrics import add, scrape, values
from tests.test_read_paths import plan, queries
from tests.test_rollups import NOW, _migration, fleet_rolled, scripted, store_at


def uptimes_at(engine: Engine, now: datetime) -> fleet.Uptimes:
    with read_session(engine) as session:
        return fleet.uptimes(session.connection(), now)


def rounded(found: fleet.Uptimes) -> dict[str, dict[str, float | None]]:
    return {p: {w: None if v is None else round(v, 4) for w, v in windows.items()} for p, windows in found.items()}


def test_fleet_uptime_sums_every_connection_over_each_window(engine: Engine, vault: Vault) -> None:
    """Alpha's scripted Cloud Storage history (tests/test_rollups.py ``scripted``) and Beta's
    two failures and two successes 2 hours ago: each window counts both connections' checks."""
    scripted(engine, vault)
    beta = add(engine, vault, "Beta", ("cloud_storage",), client_id="client-0002")
    store_at(engine, beta, "cloud_storage", ("ok", "ok", "timeout", "timeout"), NOW - timedelta(hours=2))
    assert rounded(uptimes_at(engine, NOW)) == {
        "cloud_storage": {
            "24h": round(6 / 9, 4),
            "7d": round(6 / 14, 4),
            "30d": round(14 / 22, 4),
            "90d": round(14 / 26, 4),
        }
    }
    assert uptimes_at(engine, NOW + timedelta(days=200)) == {}  # no check in any window


def test_metrics_carry_the_fleet_uptime_per_product_and_window_only(engine: Engine, vault: Vault) -> None:
    """Labels are the product and the window, nothing else: 5 products x 4 windows at most,
    whatever the size of the fleet; a window without checks is left out."""
    alpha = add(engine, vault, "Alpha", ())
    now = datetime.now(UTC)
    store_at(engine, alpha, "cloud_storage", ("ok", "ok", "ok", "timeout"), now - timedelta(minutes=5))
    store_at(engine, alpha, "cc_chat", ("ok",), now - timedelta(days=3))
    found = values(scrape(engine)["switchboard_uptime_ratio"])
    assert found == {
        **{(("product", "cloud_storage"), ("window", w)): 0.75 for w in WINDOWS},
        **{(("product", "cc_chat"), ("window", w)): 1.0 for w in ("7d", "30d", "90d")},
    }
    assert {dict(labels)["product"] for labels in found} <= set(PRODUCT_KEYS)


def test_the_fleet_keeps_the_checks_of_a_deleted_connection(runtime: Runtime, vault: Vault) -> None:
    """Deleting a connection takes its own rollups with it; the fleet's record keeps its checks,
    and pruning removes fleet rows by the rollups' own times (hours 35 days, days two years)."""
    engine = runtime.engine
    alpha = add(engine, vault, "Alpha", ("cloud_storage",))
    now = datetime.now(UTC)
    store_at(engine, alpha, "cloud_storage", ("ok", "timeout"), now - timedelta(hours=1))
    store_at(engine, alpha, "cloud_storage", ("ok",), now - timedelta(days=40))
    store_at(engine, alpha, "cloud_storage", ("ok",), now - timedelta(days=1000))
    before = fleet_rolled(engine, FleetRollupDay)
    connections.delete(engine, alpha.id, actor=ADMIN)
    with read_session(engine) as session:
        assert session.execute(select(func.count()).select_from(CheckRollupHour)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(CheckRollupDay)).scalar_one() == 0
    assert fleet_rolled(engine, FleetRollupDay) == before
    assert rounded(uptimes_at(engine, now))["cloud_storage"]["24h"] == 0.5

    pruned = Pruner(runtime, budget=timedelta(minutes=5)).run()
    assert pruned.rows["fleet_rollups_daily"] == 1 and pruned.rows["fleet_rollups_hourly"] == 2
    assert sorted(start for _, start in fleet_rolled(engine, FleetRollupDay)) == sorted(
        start for _, start in before if start > now - timedelta(days=800)
    )


def test_fleet_uptime_is_read_by_index_for_its_windows_only(engine: Engine, vault: Vault) -> None:
    scripted(engine, vault)
    with queries(engine) as seen, read_session(engine) as session:
        fleet.uptimes(session.connection(), NOW)
    assert len(seen) == 2
    for statement, parameters in seen:
        steps = [s for s in plan(engine, statement, parameters).steps if "fleet_rollup" in s]
        assert steps and not [s for s in steps if s.startswith(("SCAN fleet_rollup", "Seq Scan"))], steps
        assert any("ux_fleet_rollup_" in s for s in steps), steps


def test_migration_0017_fills_the_fleet_from_the_rollups_and_can_run_again(engine: Engine, vault: Vault) -> None:
    """The fill sums the per-connection rollups in ranges of a few hours or days, each range
    deleted and summed again in one transaction: run again from scratch, from the middle (a
    stopped upgrade) or in ranges of one, it gives the same rows."""
    scripted(engine, vault)
    beta = add(engine, vault, "Beta", ("cloud_storage", "cc_chat"), client_id="client-0002")
    store_at(engine, beta, "cc_chat", ("ok", "timeout"), NOW - timedelta(days=2), ms=4_000)
    expected = {table.name: fleet_rolled(engine, table) for table in (FleetRollupHour, FleetRollupDay)}
    assert all(expected.values())
    migration = _migration("0017_fleet_rollups.py")
    for emptied, starts in ((True, migration.STARTS), (True, 1), (False, 2)):
        if emptied:
            with write_session(engine) as session:
                for table in (FleetRollupHour, FleetRollupDay):
                    session.execute(delete(table))
        else:  # a range of it stopped half way: some rows missing, one counted twice
            with write_session(engine) as session:
                session.execute(delete(FleetRollupHour).where(FleetRollupHour.c.start < NOW - timedelta(days=1)))
                session.execute(FleetRollupDay.update().values(checks=FleetRollupDay.c.checks * 2))
        migration.fill(engine, starts=starts)
        assert {table.name: fleet_rolled(engine, table) for table in (FleetRollupHour, FleetRollupDay)} == expected
