"""The worker: scheduled checks stored like manual ones, each (connection, product, slot) once
with any number of workers on one database (OS processes on SQLite and on PostgreSQL), a worker
killed mid-tick loses nothing and doubles nothing; `switchboard worker`; the server's own worker.
Real simulator, real databases, real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, update
from sqlmodel import col, select

from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.services import connections
from lib.services.checking import schedule
from lib.services.checking.worker import LEASE, Worker
from lib.services.connections import ConnectionInput, ConnectionView
from lib.services.guard import audit
from lib.services.runtime import Runtime
from lib.simulator import App, Scenario, SimulatorServer
from lib.store import db
from lib.store.db import read_session, write_session
from lib.store.models import Check, DueCheck, utcnow
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.server import start_server
from tests.fixtures.simulator import SimulatorFactory
from tests.fixtures.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "analytics_region": "us",
    "storage_region": "us-east",
    "qm_region": "us-east",
    "chat_region": "us",
    "tenant_id": "fleet-tenant",
    "pbx": "fleet-pbx",
}


def fleet(n: int, latency_ms: int = 0) -> Scenario:
    """``n`` apps with all five products, as the settings above describe them."""
    return Scenario(
        latency_ms=latency_ms,
        apps=[
            App(
                client_id=f"fleet-client-{i:03d}",
                client_secret=f"fleet-secret-{i:03d}",
                products=PRODUCT_KEYS,
                tenants=["fleet-tenant"],
                pbx_names=["fleet-pbx"],
                analytics_region="us",
                storage_regions=["us-east"],
                qm_region="us-east",
                chat_region="us",
            )
            for i in range(n)
        ],
    )


def add_fleet(rt: Runtime, sim: SimulatorServer) -> list[ConnectionView]:
    return [
        connections.create(
            rt.engine,
            rt.vault,
            ConnectionInput(
                name=f"Fleet {i:03d}", client_id=app.client_id, client_secret=SecretStr(app.client_secret), **SETTINGS
            ),
            actor=ADMIN,
        )
        for i, app in enumerate(sim.scenario.apps)
    ]


def make_due(engine: Engine) -> None:
    """Every slot's time has come (the clock moved on by an interval)."""
    with write_session(engine) as session:
        session.exec(update(DueCheck).values(due_at=utcnow() - timedelta(seconds=1)))  # type: ignore[call-overload]


def checks_per_slot(engine: Engine) -> Counter[tuple[object, str]]:
    with read_session(engine) as session:
        rows = session.exec(select(Check.connection_id, Check.product).where(Check.product != TOKEN)).all()
    return Counter((c, p) for c, p in rows)


def product_requests(sim: SimulatorServer) -> int:
    return sum(n for route, n in control(sim, "GET", "stats")["requests"].items() if route in PRODUCT_KEYS)


def due_rows(engine: Engine) -> list[DueCheck]:
    with read_session(engine) as session:
        return list(session.exec(select(DueCheck)).all())


def scheduled_audit(engine: Engine) -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.action, e.target, e.detail) for e in audit.events(engine, ADMIN) if e.actor == "schedule"]


# --- one worker, in this process --------------------------------------------------------------


def test_a_tick_runs_what_is_due_once_like_a_manual_run_and_moves_it_to_the_next_slot(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(fleet(2))
    one, two = add_fleet(runtime, sim)
    connections.update(
        runtime.engine,
        runtime.vault,
        two.id,
        connections.input_from_view(two, expected_products=("cloud_storage",)),
        actor=ADMIN,
        expected_version=two.version,
    )
    worker = Worker(runtime, prober_factory(sim.url))
    first = worker.tick()
    assert (first.checked, first.describe()) == (0, "Nothing was due.")  # first slots lie ahead: no burst
    assert len(due_rows(runtime.engine)) == 6 and scheduled_audit(runtime.engine) == []
    make_due(runtime.engine)
    report = worker.tick()
    assert (report.checked, report.failing, report.connections) == (6, 0, 2)  # only what was ticked
    with read_session(runtime.engine) as session:
        stored = session.exec(select(Check)).all()
    assert {(r.triggered_by, r.run_id) for r in stored} == {("schedule", report.run_id)}
    assert checks_per_slot(runtime.engine) == Counter(
        {**{(one.id, p): 1 for p in PRODUCT_KEYS}, (two.id, "cloud_storage"): 1}
    )
    assert scheduled_audit(runtime.engine) == [
        (
            "schedule",
            "check.run",
            f"2 connections (scheduled, worker {worker.id})",
            f"6 OK, 0 failing (run {report.run_id})",
        )
    ]
    now, every = datetime.now(UTC), schedule.DEFAULT_EVERY
    for row in due_rows(runtime.engine):
        assert row.last_run_id == report.run_id and row.last_checked_at is not None and row.claimed_by is None
        assert row.last_checked_at + every / 4 < row.due_at <= row.last_checked_at + every * 5 / 4  # its next slot
    assert worker.tick().checked == 0  # done slots do not run again
    beats = schedule.workers(runtime.engine, ADMIN)
    assert [w.worker_id for w in beats] == [worker.id] and beats[0].alive(now)
    plan = schedule.overview(runtime.engine, ADMIN, [one.id]).connections[0]
    assert plan.last_run is not None and plan.next_check is not None and plan.next_check > now


def test_paused_connections_and_a_paused_schedule_are_not_checked(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(fleet(2))
    one, two = add_fleet(runtime, sim)
    worker = Worker(runtime, prober_factory(sim.url))
    worker.tick()
    make_due(runtime.engine)
    schedule.set_paused(runtime.engine, True, actor=ADMIN)
    assert worker.tick().paused and checks_per_slot(runtime.engine) == Counter()
    schedule.set_paused(runtime.engine, False, actor=ADMIN)
    schedule.set_paused(runtime.engine, True, actor=ADMIN, connection=one)
    assert worker.tick().connections == 1 and {c for c, _ in checks_per_slot(runtime.engine)} == {two.id}
    schedule.set_paused(runtime.engine, False, actor=ADMIN, connection=one)
    assert worker.tick().connections == 1  # what fell due while paused runs once, at the next tick
    assert set(checks_per_slot(runtime.engine).values()) == {1}


def test_rate_limited_products_wait_past_retry_after_failing_ones_wait_for_the_next_slot(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(fleet(1))
    (view,) = add_fleet(runtime, sim)
    control(sim, "POST", "faults", {"route": "cc_chat", "status": 429, "retry_after": "7200"})
    control(sim, "POST", "faults", {"route": "quality_management", "status": 429})
    control(sim, "POST", "faults", {"route": "cloud_storage", "status": 503})
    worker = Worker(runtime, prober_factory(sim.url))
    worker.tick()
    make_due(runtime.engine)
    report = worker.tick()
    assert (report.checked, report.failing) == (5, 3)
    every, rows = schedule.DEFAULT_EVERY, {row.product: row for row in due_rows(runtime.engine)}
    due = {product: row.due_at for product, row in rows.items()}
    checked_at = rows["cc_realtime_analytics"].last_checked_at
    assert checked_at is not None
    assert due["cc_realtime_analytics"] == schedule.next_due(checked_at, every, schedule.offset(view.id, every), "ok")
    assert due["cloud_storage"] == due["cc_realtime_analytics"]  # failing: the normal interval
    assert due["quality_management"] == due["cc_realtime_analytics"] + every  # rate limited: one slot skipped
    assert due["cc_chat"] > checked_at + timedelta(hours=2)  # and Retry-After honoured
    assert worker.tick().checked == 0  # no tight loop on failures


def test_a_worker_that_lost_its_claim_meanwhile_stores_nothing_for_it(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(fleet(2, latency_ms=600))
    add_fleet(runtime, sim)
    worker = Worker(runtime, prober_factory(sim.url))
    worker.tick()
    make_due(runtime.engine)
    ticked: list[object] = []
    running = threading.Thread(target=lambda: ticked.append(worker.tick()))
    running.start()
    eventually(lambda: any(r.claimed_by == worker.id for r in due_rows(runtime.engine)), what="the tick to claim")
    with write_session(runtime.engine) as session:  # its lease ended and another worker retook the rows
        session.exec(
            update(DueCheck).values(
                claimed_by="another-worker",  # type: ignore[call-overload]
                claimed_until=utcnow() + timedelta(minutes=5),
            )
        )
    running.join(60)
    assert ticked and ticked[0].checked == 0  # type: ignore[attr-defined]
    assert checks_per_slot(runtime.engine) == Counter()  # the other worker stores them, once
    assert {r.claimed_by for r in due_rows(runtime.engine)} == {"another-worker"}


def test_a_tick_of_batches_smaller_than_the_fleet_checks_and_stores_each_due_slot_once(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    """Batches of 7 rows split connections and are claimed while the ones before still run
    (pipelined): every slot is still checked once, stored once and moved to its next slot."""
    sim = simulator_factory(fleet(9, latency_ms=50))
    views = add_fleet(runtime, sim)
    worker = Worker(runtime, prober_factory(sim.url), batch=7)
    worker.tick()
    make_due(runtime.engine)
    control(sim, "POST", "reset")
    report = worker.tick()
    assert (report.checked, report.failing, report.connections) == (45, 0, 9)
    assert checks_per_slot(runtime.engine) == Counter({(v.id, p): 1 for v in views for p in PRODUCT_KEYS})
    assert product_requests(sim) == 45  # not one request twice
    rows = due_rows(runtime.engine)
    assert {r.last_run_id for r in rows} == {report.run_id}
    assert not [r for r in rows if r.claimed_by is not None or r.due_at <= utcnow()]


def test_two_workers_claiming_at_once_take_each_due_row_once(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    """The claim is one UPDATE … IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING: what each
    worker got is what the rows say it holds, and no row went to both."""
    sim = simulator_factory(fleet(20))
    add_fleet(runtime, sim)
    workers = [Worker(runtime, prober_factory(sim.url), batch=3) for _ in range(2)]
    workers[0].tick()
    make_due(runtime.engine)
    got: dict[str, list[tuple[object, str]]] = {w.id: [] for w in workers}
    go = threading.Barrier(2)

    def claim_all(worker: Worker) -> None:
        go.wait()
        while claimed := worker._claim():
            got[worker.id].extend((c, p) for c, products in claimed.items() for p in products)

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    one, two = (Counter(got[w.id]) for w in workers)
    assert not one & two and set((one + two).values()) == {1}
    # PostgreSQL's workers claim side by side (SKIP LOCKED). SQLite's take turns at its one write
    # lock, and a worker claiming again at once may take every turn before the other's wait ends.
    assert (one and two) or runtime.engine.dialect.name == "sqlite"
    assert {(r.connection_id, r.product): r.claimed_by for r in due_rows(runtime.engine)} == {
        slot: worker_id for worker_id, slots in got.items() for slot in slots
    }
    assert len(one + two) == 20 * len(PRODUCT_KEYS)


# --- several worker processes on one database --------------------------------------------------


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lib", "worker", *args],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str], code: int = 0) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (out, err)
    return out


def run_ids_of_tick(engine: Engine, tick_started: datetime) -> set[str | None]:
    with read_session(engine) as session:
        return set(session.exec(select(Check.run_id).where(col(Check.started_at) >= tick_started)).all())


@pytest.mark.slow
def test_two_worker_processes_check_every_due_slot_exactly_once_over_three_ticks(
    runtime: Runtime,
    simulator_factory: SimulatorFactory,
    prober_factory: ProberFactory,
    worker_env: Callable[[SimulatorServer], dict[str, str]],
) -> None:
    # With --batch 10 a worker claims its next two connections only when fewer than two are
    # open (Worker._ahead), so with batches overlapping both workers still take part.
    sim = simulator_factory(fleet(50, latency_ms=60))
    views = add_fleet(runtime, sim)
    Worker(runtime, prober_factory(sim.url)).tick()  # the due rows, as a worker's first tick makes them
    slots = 50 * len(PRODUCT_KEYS)
    for tick in (1, 2, 3):
        make_due(runtime.engine)
        control(sim, "POST", "reset")
        started = utcnow()
        workers = [spawn(worker_env(sim), "--once", "--batch", "10") for _ in range(2)]
        outputs = [finish(w) for w in workers]
        assert checks_per_slot(runtime.engine) == Counter({(v.id, p): tick for v in views for p in PRODUCT_KEYS})
        assert product_requests(sim) == slots  # not one request twice
        assert len(run_ids_of_tick(runtime.engine, started)) == 2, outputs  # both workers took part
        assert sum(int(out.split()[1]) for out in outputs) == slots, outputs  # "Checked N products of …"
    assert not [r for r in due_rows(runtime.engine) if r.claimed_by is not None or r.due_at <= utcnow()]


@pytest.mark.slow
def test_a_worker_killed_mid_tick_has_its_claims_retaken_after_the_lease(
    runtime: Runtime,
    simulator_factory: SimulatorFactory,
    prober_factory: ProberFactory,
    worker_env: Callable[[SimulatorServer], dict[str, str]],
) -> None:
    sim = simulator_factory(fleet(50, latency_ms=400))
    views = add_fleet(runtime, sim)
    Worker(runtime, prober_factory(sim.url)).tick()
    make_due(runtime.engine)
    doomed, other = (spawn(worker_env(sim), "--once", "--batch", "10") for _ in range(2))  # the default lease

    def held_by_doomed() -> set[tuple[object, str]]:
        return {
            (r.connection_id, r.product)
            for r in due_rows(runtime.engine)
            if (r.claimed_by or "").split(":")[1:2] == [str(doomed.pid)]
        }

    def frozen_holding_claims() -> bool:
        """Freeze the worker; keep it frozen only while it holds claims (a batch in flight);
        between two tries it runs for eventually()'s back-off."""
        doomed.send_signal(signal.SIGSTOP)
        if held_by_doomed() and sum(checks_per_slot(runtime.engine).values()) > 0:
            return True
        doomed.send_signal(signal.SIGCONT)
        return False

    eventually(frozen_holding_claims, timeout_s=60, what="the worker to hold claims with a batch in flight")
    doomed.send_signal(signal.SIGKILL)  # mid-batch, its claims still held
    doomed.wait(10)
    orphaned = held_by_doomed()
    assert orphaned  # claimed, never completed
    finish(other)
    assert held_by_doomed() == orphaned  # nobody else takes them before the lease ends
    after_the_lease = utcnow() + LEASE + timedelta(seconds=1)
    Worker(runtime, prober_factory(sim.url), batch=10, now=lambda: after_the_lease).tick()
    assert checks_per_slot(runtime.engine) == Counter({(v.id, p): 1 for v in views for p in PRODUCT_KEYS})
    assert not [r for r in due_rows(runtime.engine) if r.claimed_by is not None or r.due_at <= utcnow()]


# --- switchboard worker -------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_once_exits_0_when_all_ok_1_when_any_failed_2_for_bad_settings(
    runtime: Runtime,
    simulator_factory: SimulatorFactory,
    prober_factory: ProberFactory,
    worker_env: Callable[[SimulatorServer], dict[str, str]],
) -> None:
    sim = simulator_factory(fleet(1))
    add_fleet(runtime, sim)
    Worker(runtime, prober_factory(sim.url)).tick()
    env = worker_env(sim)
    assert finish(spawn(env, "--once")).strip() == "Nothing was due."
    make_due(runtime.engine)
    assert finish(spawn(env, "--once")).startswith("Checked 5 products of 1 connection: 5 OK, 0 failing (run ")
    make_due(runtime.engine)
    control(sim, "POST", "faults", {"route": "cc_chat", "status": 404})
    assert "4 OK, 1 failing" in finish(spawn(env, "--once"), 1)
    for bad_env, args, message in [
        ({"SWITCHBOARD_WORKER": "maybe"}, (), "SWITCHBOARD_WORKER must be on or off"),
        ({}, ("--lease", "soon"), "Invalid value for --lease"),
    ]:
        proc = spawn({**env, **bad_env}, "--once", *args)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and message in err, (out, err)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_stops_the_worker_cleanly_after_its_tick(
    runtime: Runtime, simulator_factory: SimulatorFactory, worker_env: Callable[[SimulatorServer], dict[str, str]]
) -> None:
    sim = simulator_factory(fleet(1))
    add_fleet(runtime, sim)
    proc = spawn(worker_env(sim), "--tick", "1s")
    eventually(lambda: ticks_of(runtime.engine), what="the worker's first tick")
    proc.send_signal(signal.SIGTERM)
    out = finish(proc)
    assert out.splitlines()[-1] == "Worker stopped." and "ticks every 1s" in out
    assert not [r for r in due_rows(runtime.engine) if r.claimed_by is not None]


def ticks_of(engine: Engine) -> list[datetime]:
    return [w.last_tick_at for w in schedule.workers(engine, ADMIN)]


# --- the server's own worker ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_server_runs_the_worker_in_its_process_unless_switched_off(simulator: SimulatorServer) -> None:
    """Two servers on one database, the first with its worker switched off. Each would start
    its worker a moment after its data is open, the first one earlier: so once the second
    one's worker has ticked, the first one's would have too, and every tick is the second's."""
    off = start_server({"SWITCHBOARD_WORKER": "off"}, simulator.url)
    engine = db.make_engine(off.env["SWITCHBOARD_DATABASE_URL"])
    same_data = {name: off.env[name] for name in ("SWITCHBOARD_DATABASE_URL", "SWITCHBOARD_KEYRING_FILE")}
    servers = [off]
    try:
        on = start_server({"SWITCHBOARD_WORKER": "on", **same_data}, simulator.url)
        servers.append(on)
        eventually(lambda: schedule.workers(engine, ADMIN), timeout_s=30, what="the second server's worker to tick")
        assert [w.pid for w in schedule.workers(engine, ADMIN)] == [on.process.pid]
        assert "Traceback" not in off.log.read_text() + on.log.read_text()
    finally:
        for server in servers:
            server.stop()
        engine.dispose()
