"""Retention (issue 24, item 1): check history and the audit trail are kept for the times stored
in the database (the audit trail never shorter), the other growing tables by fixed rules; the
worker prunes what expired in bounded batches, each its own transaction, on SQLite and on
PostgreSQL, as a part of the tick that fails alone; a SQLite file gives the space back.
Real databases, the real worker and simulator; the clock is injected, nothing sleeps."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, insert, inspect, text
from sqlalchemy import select as sql_select
from streamlit.testing.v1 import AppTest

from lib.kernel.config import Settings
from lib.kernel.errors import ValidationError
from lib.services import connections
from lib.services.checking import retention
from lib.services.checking.retention import Pruner
from lib.services.checking.worker import Worker
from lib.services.guard import audit
from lib.services.guard.access import NotAllowed, Role
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store import db
from lib.store.db import read_session
from lib.store.models import (
    AuditEvent,
    Check,
    CheckRollupDay,
    CheckRollupHour,
    FleetRollupDay,
    FleetRollupHour,
    SetupCode,
    SignInAttempt,
    WebSession,
)
from lib.store.vault import Vault
from tests.fixtures.console import PageOpener
from tests.fixtures.people import ADMIN, web
from tests.fixtures.prober import ProberFactory
from tests.test_channel_fields import CliEnv, cli_env  # noqa: F401  (the fixture)
from tests.test_checks import form_for
from tests.test_tick_truth import refusing, sqlite_only
from tests.test_worker import make_due

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
FOREVER = timedelta(days=1)  # a budget no test pass comes near


def at_now() -> datetime:
    return NOW


# --- rows of every pruned table, just inside and just outside their rules ---------------------------


def _connection(rt: Runtime, simulator: SimulatorServer, name: str = "Kept history") -> uuid.UUID:
    return connections.create(rt.engine, rt.vault, form_for(simulator.scenario.apps[0], name), actor=ADMIN).id


def _checks(engine: Engine, connection_id: uuid.UUID, when: datetime, marker: str, n: int = 1) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Check),
            [
                {
                    "connection_id": connection_id,
                    "product": "cc_chat",
                    "started_at": when,
                    "outcome": "ok",
                    "detail": marker,
                    "triggered_by": "test",
                }
            ]
            * n,
        )


def _seed(engine: Engine, connection_id: uuid.UUID, now: datetime, keep: retention.Retention) -> None:
    """For each pruned table, rows a minute inside its rule ("keep") and a minute past it ("expire")."""
    sessions_keep = retention.KEEP_SESSIONS
    for marker, shift in (("keep", MINUTE), ("expire", -MINUTE)):
        _checks(engine, connection_id, now - keep.checks + shift, marker, n=3)
        with engine.begin() as conn:
            conn.execute(
                insert(AuditEvent),
                [
                    {
                        "at": now - keep.audit + shift,
                        "actor": "test",
                        "action": "test.row",
                        "target": "",
                        "result": "ok",
                        "detail": marker,
                    }
                ]
                * 2,
            )
            conn.execute(
                insert(WebSession),
                [
                    {
                        "token_hash": uuid.uuid4().hex,
                        "subject": marker,
                        "via": "local",
                        "address": "",
                        "created_at": now - sessions_keep + shift,
                        "last_seen_at": now - sessions_keep + shift,
                    }
                ],
            )
            conn.execute(
                insert(SignInAttempt),
                [
                    {
                        "at": now - retention.KEEP_ATTEMPTS + shift,
                        "username_key": marker,
                        "address": "",
                        "success": False,
                    }
                ],
            )
            when = now - retention.KEEP_SETUP_CODES + shift
            conn.execute(
                insert(SetupCode), [{"code_hash": marker, "created_at": when - timedelta(hours=1), "expires_at": when}]
            )
            for table, kept in (
                (CheckRollupDay, retention.KEEP_DAILY_ROLLUPS),
                (CheckRollupHour, retention.KEEP_HOURLY_ROLLUPS),
                (FleetRollupDay, retention.KEEP_DAILY_ROLLUPS),
                (FleetRollupHour, retention.KEEP_HOURLY_ROLLUPS),
            ):  # the product: the marker
                conn.execute(
                    insert(table),
                    [
                        {
                            **({} if "fleet" in table.name else {"connection_id": connection_id}),
                            "product": marker,
                            "start": now - kept + shift,
                            "checks": 1,
                            "duration_sum_ms": 0,
                            "duration_max_ms": 0,
                        }
                    ],
                )


_MARKED = {
    "checks": Check.detail,
    "audit": AuditEvent.detail,
    "sessions": WebSession.subject,
    "attempts": SignInAttempt.username_key,
    "setup_codes": SetupCode.code_hash,
    "rollups_daily": CheckRollupDay.c.product,
    "rollups_hourly": CheckRollupHour.c.product,
    "fleet_rollups_daily": FleetRollupDay.c.product,
    "fleet_rollups_hourly": FleetRollupHour.c.product,
}


def _left(engine: Engine) -> dict[str, dict[str, int]]:
    """Rows left in each pruned table, by marker."""
    with read_session(engine) as session:
        conn = session.connection()
        return {
            name: dict(
                conn.execute(
                    sql_select(column, func.count()).where(column.in_(["keep", "expire"])).group_by(column)
                ).all()
            )  # type: ignore[arg-type]
            for name, column in _MARKED.items()
        }


def test_pruning_removes_exactly_the_expired_rows_of_each_table(runtime: Runtime, simulator: SimulatorServer) -> None:
    """On SQLite and PostgreSQL, with the defaults and with times an admin set; a second pass
    finds nothing (deleting is idempotent)."""
    cid = _connection(runtime, simulator)
    _seed(runtime.engine, cid, NOW, retention.Retention())
    pruned = Pruner(runtime, budget=FOREVER, now=at_now).run()
    assert pruned.rows == {
        "checks": 3,
        "audit": 2,
        "sessions": 1,
        "attempts": 1,
        "setup_codes": 1,
        "rollups_daily": 1,
        "rollups_hourly": 1,
        "fleet_rollups_daily": 1,
        "fleet_rollups_hourly": 1,
    }
    assert not pruned.more
    assert _left(runtime.engine) == {
        "checks": {"keep": 3},
        "audit": {"keep": 2},
        "sessions": {"keep": 1},
        "attempts": {"keep": 1},
        "setup_codes": {"keep": 1},
        "rollups_daily": {"keep": 1},
        "rollups_hourly": {"keep": 1},
        "fleet_rollups_daily": {"keep": 1},
        "fleet_rollups_hourly": {"keep": 1},
    }
    assert Pruner(runtime, budget=FOREVER, now=at_now).run().total == 0

    chosen = retention.set_keep(
        runtime.engine, actor=ADMIN, keep_checks=timedelta(days=7), keep_audit=timedelta(days=90)
    )
    later = NOW + timedelta(days=1)
    _seed(runtime.engine, cid, later, chosen)
    pruned = Pruner(runtime, budget=FOREVER, now=lambda: later).run()
    # What the first seeding kept is older than the new, shorter times: it goes as well.
    assert pruned.rows["checks"] == 3 + 3 and pruned.rows["audit"] == 2 + 2
    left = _left(runtime.engine)
    assert left["checks"] == {"keep": 3} and left["audit"] == {"keep": 2}


def test_a_check_that_is_a_current_status_goes_and_the_status_stays(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """Nothing points at a check row: the current status holds a copy of what it shows."""
    from lib.services.checking import checks
    from lib.services.history import status

    view = connections.create(
        runtime.engine, runtime.vault, form_for(simulator.scenario.apps[0], "Old news"), actor=ADMIN
    )
    checks.run_checks(runtime, prober_factory(simulator.url), connection_ids=[view.id], triggered_by=ADMIN)
    before = status.table(runtime.engine)
    assert "ok" in set(before["outcome"])
    gone = Pruner(runtime, budget=FOREVER, now=lambda: datetime.now(UTC) + timedelta(days=31)).run()
    assert gone.rows["checks"] > len(before)  # every product checked and the token step
    with read_session(runtime.engine) as session:
        assert session.connection().execute(sql_select(func.count()).select_from(Check)).scalar() == 0
    after = status.table(runtime.engine)
    assert list(after["outcome"]) == list(before["outcome"])
    assert list(after["checked_at"]) == list(before["checked_at"])


# --- batches: bounded, one transaction each, continued at the next tick ---------------------------------


class Statements:
    """Every DELETE the engine runs (with how many rows it removed) and every commit, in order."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[tuple[str, int]] = []
        event.listen(engine, "after_cursor_execute", self._executed)
        event.listen(engine, "commit", self._committed)

    def _executed(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            table = statement.split()[2].strip('"')
            self.seen.append((table, cursor.rowcount))

    def _committed(self, conn: Any) -> None:
        self.seen.append(("COMMIT", 0))

    def deletes(self, table: str | None = None) -> list[int]:
        return [n for t, n in self.seen if t != "COMMIT" and (table is None or t == table)]

    def each_its_own_transaction(self) -> bool:
        """Every DELETE is followed by a commit before the next one."""
        kinds = [t == "COMMIT" for t, _ in self.seen]
        return all(kinds[i + 1] for i, is_commit in enumerate(kinds) if not is_commit)


def ticking(step: float = 1.0) -> Callable[[], float]:
    """A monotonic clock that moves on ``step`` seconds each time it is read."""
    moments = iter(range(10**9))
    return lambda: next(moments) * step


def test_pruning_goes_in_small_transactions_within_a_budget_and_goes_on_next_time(
    runtime: Runtime, simulator: SimulatorServer
) -> None:
    cid = _connection(runtime, simulator)
    _checks(runtime.engine, cid, NOW - timedelta(days=40), "expire", n=35)
    _checks(runtime.engine, cid, NOW - timedelta(days=1), "keep", n=5)
    # A budget of two and a half clock steps: three batches a pass, whatever each deletes.
    pruner = Pruner(runtime, budget=timedelta(seconds=2.5), batch=10, now=at_now, timer=ticking())
    statements = Statements(runtime.engine)
    passes: list[retention.Pruned] = []
    while "expire" in _left(runtime.engine)["checks"]:  # a tick after another
        before = len(statements.deletes())
        passes.append(pruner.run())
        assert len(statements.deletes()) - before <= 3
        assert len(passes) < 20
    assert len(passes) > 1 and passes[0].more
    assert sum(p.rows["checks"] for p in passes) == 35
    removed = statements.deletes("check_result")
    assert max(removed) == 10 and sum(removed) == 35
    assert statements.each_its_own_transaction()
    assert _left(runtime.engine)["checks"] == {"keep": 5}


def test_every_table_gets_its_turn_while_one_has_a_backlog(runtime: Runtime, simulator: SimulatorServer) -> None:
    """A budget of one batch a pass still reaches the audit trail behind a long check backlog."""
    cid = _connection(runtime, simulator)
    _checks(runtime.engine, cid, NOW - timedelta(days=40), "expire", n=50)
    _seed(runtime.engine, cid, NOW, retention.Retention())
    pruner = Pruner(runtime, budget=timedelta(0), batch=10, now=at_now, timer=ticking())
    for _ in range(len(_MARKED)):
        pruner.run()
    left = _left(runtime.engine)
    assert all("expire" not in left[name] for name in _MARKED if name != "checks"), left


def test_pruners_of_several_workers_at_once_delete_each_row_once(runtime: Runtime, simulator: SimulatorServer) -> None:
    """No lock between instances is needed: concurrent passes split the rows or find them gone."""
    cid = _connection(runtime, simulator)
    _checks(runtime.engine, cid, NOW - timedelta(days=40), "expire", n=120)
    results: list[retention.Pruned] = []
    errors: list[BaseException] = []

    def prune() -> None:
        try:
            pruner = Pruner(runtime, budget=FOREVER, batch=10, now=at_now)
            results.extend(pruner.run() for _ in range(3))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=prune) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(r.rows["checks"] for r in results) == 120
    assert _left(runtime.engine)["checks"] == {}


# --- the tick: pruning is a part of its own ------------------------------------------------------------


@sqlite_only
def test_a_tick_prunes_while_its_checks_fail_and_checks_while_pruning_fails(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    rt = runtime
    cid = _connection(rt, simulator)
    worker = Worker(rt, prober_factory(simulator.url))
    assert worker.tick().failure is None
    long_ago = datetime.now(UTC) - timedelta(days=500)
    _checks(rt.engine, cid, long_ago, "expire", n=4)
    with rt.engine.begin() as conn:
        conn.execute(
            insert(AuditEvent),
            [{"at": long_ago, "actor": "test", "action": "test.row", "target": "", "result": "ok", "detail": "expire"}],
        )
    make_due(rt.engine)
    with refusing(rt.engine, "due_check", "UPDATE"):  # the check part fails
        report = worker.tick()
    assert report.failure is not None and report.failure.startswith("checks: ")
    assert report.pruned == 5 and "Pruned 5 expired rows." in report.describe()
    assert _left(rt.engine)["checks"] == {} and _left(rt.engine)["audit"] == {}

    _checks(rt.engine, cid, long_ago, "expire", n=2)
    with rt.engine.begin() as conn:
        conn.execute(
            insert(AuditEvent),
            [{"at": long_ago, "actor": "test", "action": "test.row", "target": "", "result": "ok", "detail": "expire"}],
        )
    make_due(rt.engine)
    with refusing(rt.engine, "check_result", "DELETE"):  # pruning the checks fails
        report = worker.tick()
    assert report.checked > 0 and report.failing == 0
    assert report.failure is not None and report.failure.startswith(
        "pruning: PruningFailed (Could not prune check history: IntegrityError"
    )
    assert "refused by the test" in report.failure
    left = _left(rt.engine)
    assert left["checks"] == {"expire": 2} and left["audit"] == {}  # the other tables were pruned
    assert worker.tick().failure is None and _left(rt.engine)["checks"] == {}  # and it goes on next time


# --- the settings ----------------------------------------------------------------------------------------


def _stored(engine: Engine) -> retention.Retention:
    return retention.current(engine, ADMIN)


def _refused(engine: Engine, **keep: timedelta) -> tuple[str, str]:
    with pytest.raises(ValidationError) as refused:
        retention.set_keep(engine, actor=ADMIN, **keep)
    (error,) = refused.value.errors
    return error.field, error.message


def test_bad_settings_are_refused_with_the_setting_and_the_fix_and_nothing_saved(engine: Engine) -> None:
    assert _stored(engine) == retention.Retention()
    field, message = _refused(engine, keep_audit=timedelta(days=7))
    assert field == "keep_audit"
    assert "at least as long as check history (30 d), so not 7 d: give 30 d or more" in message
    field, message = _refused(engine, keep_checks=timedelta(days=500))
    assert field == "keep_checks"
    assert "no longer than the audit trail (400 d)" in message and "--keep-audit" in message and "500 d" in message
    field, message = _refused(engine, keep_checks=timedelta(days=60), keep_audit=timedelta(days=45))
    assert field == "keep_audit"
    field, message = _refused(engine, keep_checks=timedelta(hours=12))
    assert field == "keep_checks" and "at least 1 d and at most 3650 d, not 12 h" in message
    field, _ = _refused(engine, keep_audit=timedelta(days=4000))
    assert field == "keep_audit"
    field, _ = _refused(engine)
    assert field == "keep_checks"
    with pytest.raises(ValidationError) as unreadable:
        retention.parse_keep("a month", "keep_checks")
    assert "'a month' is not a length of time" in str(unreadable.value) and "30d" in str(unreadable.value)
    assert _stored(engine) == retention.Retention()
    assert not [e for e in audit.events(engine, ADMIN) if e.action == "retention.set"]


def test_only_admins_change_what_is_kept(engine: Engine) -> None:
    operator = web(engine, "olga", Role.OPERATOR)
    assert retention.current(engine, operator) == retention.Retention()  # every role reads it
    with pytest.raises(NotAllowed):
        retention.set_keep(engine, actor=operator, keep_checks=timedelta(days=5))
    assert _stored(engine) == retention.Retention()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(1, 3650)), st.one_of(st.none(), st.integers(1, 3650))),
        min_size=1,
        max_size=4,
    )
)
def test_the_audit_trail_is_never_kept_shorter_than_check_history(
    sqlite_engine: Engine, changes: list[tuple[int | None, int | None]]
) -> None:
    """The class: whatever admins ask, in any order, a change is saved exactly when the result
    keeps the audit trail at least as long as check history, and the stored times always do."""
    for checks_days, audit_days in changes:
        before = _stored(sqlite_engine)
        checks = timedelta(days=checks_days) if checks_days else None
        audit_trail = timedelta(days=audit_days) if audit_days else None
        wanted = (checks or before.checks, audit_trail or before.audit)
        try:
            retention.set_keep(sqlite_engine, actor=ADMIN, keep_checks=checks, keep_audit=audit_trail)
        except ValidationError:
            assert (checks is None and audit_trail is None) or wanted[1] < wanted[0]
            assert _stored(sqlite_engine) == before
        else:
            assert wanted[1] >= wanted[0]
            assert (_stored(sqlite_engine).checks, _stored(sqlite_engine).audit) == wanted
        now = _stored(sqlite_engine)
        assert now.audit >= now.checks


def test_settings_set_and_show_round_trip_through_the_cli_with_audit_rows(
    cli_env: CliEnv, sqlite_engine: Engine
) -> None:
    from click.testing import CliRunner

    from lib.cli import cli as root_command
    from lib.kernel.config import get_settings

    def run(*args: str) -> tuple[int, str, str]:
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(root_command, list(args), env=cli_env.env)
        finally:
            get_settings.cache_clear()
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run("settings", "show")
    assert code == 0
    assert (
        "Check history: 30 d (change with --keep-checks)" in out
        and "Audit trail: 400 d (change with --keep-audit)" in out
    )
    assert "Sign-in attempts: 1 d (fixed)" in out and "kept for the default times" in out
    code, out, _ = run("settings", "set", "--keep-checks", "45d", "--keep-audit", "500d")
    assert code == 0 and "Check history is kept 45 d, the audit trail 500 d" in out
    code, out, _ = run("settings", "show")
    assert "Check history: 45 d" in out and "Audit trail: 500 d" in out and "Last changed 20" in out
    code, out, _ = run("settings", "show", "--json")
    shown = __import__("json").loads(out)
    assert [(r["name"], r["keep_s"]) for r in shown["rules"][:2]] == [("checks", 45 * 86400), ("audit", 500 * 86400)]
    assert shown["sqlite_auto_vacuum"] == "incremental" and shown["updated_by"].startswith("cli:")
    code, _, err = run("settings", "set", "--keep-audit", "7d")
    assert (
        code == 1
        and "error: Keep audit (--keep-audit): The audit trail is kept at least as long as check "
        "history (45 d), so not 7 d"
        in err
    )
    code, _, err = run("settings", "set", "--keep-checks", "a month")
    assert code == 2 and "'a month' is not a length of time" in err
    code, _, err = run("settings", "set")
    assert code == 2 and "Give --keep-checks, --keep-audit or both" in err
    (row,) = [e for e in audit.events(sqlite_engine, ADMIN) if e.action == "retention.set"]
    assert row.actor.startswith("cli:") and row.result == "ok"
    assert row.detail == "checks kept 45 d (was 30 d); audit trail kept 500 d (was 400 d)"
    assert _stored(sqlite_engine).checks == timedelta(days=45)


def test_the_console_says_how_long_history_is_kept(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer
) -> None:
    def kept(at: AppTest) -> Any:
        return next(c for c in at.caption if "Check history is kept" in str(c.value))

    _connection(console_env, simulator)
    at = open_page("pages/connections.py", "viewer@example.com")
    line = kept(at)
    assert "Check history is kept 30 d, the audit trail 400 d" in str(line.value)
    assert "switchboard settings set --keep-checks" in line.proto.help and "Sign-in attempts: 1 d" in line.proto.help
    retention.set_keep(console_env.engine, actor=ADMIN, keep_checks=timedelta(days=14))
    assert "Check history is kept 14 d, the audit trail 400 d" in str(kept(at.run()).value)


# --- SQLite gives the space back; PostgreSQL's autovacuum is tuned -------------------------------------


def _size(path: Path) -> int:
    return path.stat().st_size


def _fill(rt: Runtime, simulator: SimulatorServer, n: int) -> None:
    cid = _connection(rt, simulator)
    with rt.engine.begin() as conn:
        conn.execute(
            insert(Check),
            [
                {
                    "connection_id": cid,
                    "product": "cc_chat",
                    "started_at": NOW - timedelta(days=60),
                    "outcome": "vendor_error",
                    "detail": f"{i:06d} " + "x" * 600,
                    "triggered_by": "test",
                }
                for i in range(n)
            ],
        )


@pytest.fixture
def file_runtime(tmp_path: Path, vault: Vault) -> Iterator[tuple[Runtime, Path]]:
    """A Runtime on a SQLite file of its own, closed (and its WAL folded in) by the test."""
    path = tmp_path / "sb.db"
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    yield (
        Runtime(
            Settings(database_url=url, keyring_file=None, base_url="https://api.8x8.com"),  # type: ignore[arg-type]
            engine,
            vault,
        ),
        path,
    )
    engine.dispose()


def test_a_sqlite_file_shrinks_after_pruning(file_runtime: tuple[Runtime, Path], simulator: SimulatorServer) -> None:
    rt, path = file_runtime
    assert db.auto_vacuum(rt.engine) == "incremental"
    with rt.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == db.WAL_SIZE_LIMIT
    _fill(rt, simulator, 15_000)
    rt.engine.dispose()  # the WAL folded into the file
    full = _size(path)
    assert full > 8 * 2**20
    pruned = Pruner(rt, budget=FOREVER, batch=2_000, now=at_now).run()
    assert pruned.rows["checks"] == 15_000 and not pruned.more
    rt.engine.dispose()
    assert _size(path) < full / 4, (full, _size(path))


def test_sqlite_statistics_are_refreshed_now_and_then(
    file_runtime: tuple[Runtime, Path], simulator: SimulatorServer
) -> None:
    rt, _ = file_runtime
    _fill(rt, simulator, 50)

    def analyzed() -> bool:
        """Whether the planner has statistics of check_result (ANALYZE keeps them in sqlite_stat1)."""
        with rt.engine.connect() as conn:
            if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first():
                return False
            return bool(conn.exec_driver_sql("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'check_result'").scalar())

    clock = [0.0]
    pruner = Pruner(rt, budget=FOREVER, now=lambda: NOW - timedelta(days=365), timer=lambda: clock[0])
    pruner.run()
    assert not analyzed()
    clock[0] += retention.OPTIMIZE_EVERY.total_seconds()
    pruner.run()
    assert analyzed()


def test_an_older_file_is_compacted_once_then_gives_space_back(
    tmp_path: Path, vault: Vault, simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file made before incremental auto-vacuum reuses its free pages but keeps its size;
    `db upgrade` says so, and `db compact` changes it."""
    from click.testing import CliRunner

    from lib.cli import cli as root_command
    from lib.kernel.config import get_settings

    path = tmp_path / "old.db"
    legacy = sqlite3.connect(path)
    legacy.executescript("PRAGMA auto_vacuum=NONE; CREATE TABLE made_long_ago (x INTEGER);")
    legacy.close()
    url = f"sqlite:///{path}"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", url)

    def run(*args: str) -> tuple[int, str]:
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(root_command, list(args))
        finally:
            get_settings.cache_clear()
        return result.exit_code, result.output

    code, out = run("db", "upgrade")
    assert code == 0 and "run `switchboard db compact` once" in out
    engine = db.make_engine(url)
    rt = Runtime(
        Settings(database_url=url, keyring_file=None, base_url="https://api.8x8.com"),  # type: ignore[arg-type]
        engine,
        vault,
    )
    assert db.auto_vacuum(engine) == "none"
    _fill(rt, simulator, 6_000)
    Pruner(rt, budget=FOREVER, now=at_now).run()
    engine.dispose()
    kept_size = _size(path)
    assert kept_size > 4 * 2**20  # the pages are free, the file as big as ever
    code, out = run("db", "compact")
    assert code == 0 and "Compacted:" in out
    assert db.auto_vacuum(engine) == "incremental" and _size(path) < kept_size / 4
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_vacuums_check_history_sooner_and_the_migration_goes_both_ways(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'check_result'")).scalar()
        assert "autovacuum_vacuum_scale_factor=0.02" in options
        _the_migration_goes_both_ways(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'check_result'")).scalar()
    finally:
        engine.dispose()


def _the_migration_goes_both_ways(engine: Engine) -> None:
    from alembic import command

    def indexes() -> set[str]:
        found = inspect(engine)
        return {i["name"] for t in ("check_result", "sign_in_attempt", "web_session") for i in found.get_indexes(t)}

    pruning = {"ix_check_result_started", "ix_sign_in_attempt_at", "ix_web_session_created"}
    assert pruning <= indexes()
    command.downgrade(db._alembic_config(engine), "0013")
    assert not pruning & indexes() and not inspect(engine).has_table("retention_setting")
    db.upgrade(engine)
    assert pruning <= indexes() and inspect(engine).has_table("retention_setting")


def test_the_sqlite_migration_goes_both_ways_and_pruning_reads_an_index(sqlite_engine: Engine) -> None:
    _the_migration_goes_both_ways(sqlite_engine)
    for name in ("checks", "audit", "sessions", "attempts"):
        target = retention._TARGETS[name]
        table, column = target.table.__tablename__, target.moment.key
        with sqlite_engine.connect() as conn:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN SELECT id FROM {table} WHERE {column} < '2026-12-08' LIMIT 10"
                )
            )
        assert "USING COVERING INDEX" in plan and f"({column}<?)" in plan, (name, plan)
