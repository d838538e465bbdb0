"""A scheduled tick never says OK when it is not, and one bad value never stops it (issue 21):
a refusal of the token endpoint wins over an earlier success; a Retry-After no schedule can
hold, or a result the database refuses, fails that one result and not the batch; alerts go
out even when the check part of a tick failed; a failing tick shows as failing next to the
heartbeat (console, `schedule show`, /metrics). Real simulator, real SQLite file, real
webhook receiver; faults are injected where they happen (the simulator's answers, the
database's own triggers), never by replacing our code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlmodel import select

from lib.catalogue.products import PRODUCT_KEYS
from lib.services import alerts
from lib.services.checking import checks, schedule
from lib.services.checking.worker import Worker
from lib.services.reporting import metrics
from lib.services.runtime import Runtime
from lib.simulator import Scenario, SimulatorServer
from lib.store.db import read_session
from lib.store.models import AlertOutbox, Check, CurrentStatus, DueCheck
from tests.fixtures.alerts import Receiver, local_send
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.simulator import SimulatorFactory
from tests.test_alerts import app, channel, connect, heal
from tests.test_worker import ROOT, make_due

# Faults the database raises itself come from SQLite triggers.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def current(engine: Engine, connection_id: object) -> dict[str, str]:
    """The current status of each product of a connection (the token step left out)."""
    with read_session(engine) as session:
        rows = session.exec(
            select(CurrentStatus).where(CurrentStatus.connection_id == connection_id, CurrentStatus.product != "token")
        ).all()
    return {r.product: r.outcome for r in rows}


@contextmanager
def refusing(engine: Engine, table: str, when: str = "INSERT") -> Iterator[None]:
    """The database itself refuses writes to ``table`` (a trigger), as a full disk or a broken
    row would, while the block runs."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE {when} ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER refuse_{table}"))


def test_a_refused_token_wins_over_an_earlier_success_in_the_next_scheduled_check(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    """Item 1: success, then 8x8's token route refuses the app: the next scheduled check
    stores the refusal for every product (not OK from a token fetched earlier), the rules
    alert, and nothing ever says it works again."""
    sim = simulator_factory(Scenario(apps=[app()]))
    view = connect(runtime, sim.scenario.apps[0])
    channel(runtime, receiver)
    worker = Worker(runtime, prober_factory(sim.url), send=local_send)
    worker.tick()  # plans the first slots
    make_due(runtime.engine)
    assert worker.tick().failing == 0
    assert set(current(runtime.engine, view.id).values()) == {"ok"}
    control(sim, "POST", "faults", {"route": "token", "client_id": sim.scenario.apps[0].client_id, "status": 401})
    for _ in range(3):
        make_due(runtime.engine)
        report = worker.tick()
        assert (report.checked, report.failing) == (5, 5)
        assert set(current(runtime.engine, view.id).values()) == {"bad_credentials"}
    assert control(sim, "GET", "stats")["requests"]["token"] == 4  # one token request per connection per run
    assert set(receiver.kinds()) == {"check.failed"} and "check.recovered" not in receiver.kinds()
    assert {p for _, p in alerts.alerting(runtime.engine, actor=ADMIN)} == set(PRODUCT_KEYS)


def test_an_endless_retry_after_fails_that_result_alone_and_the_tick_goes_on(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    """Item 4: a Retry-After of 3e11 s (an epoch in milliseconds) for one product of one app:
    every other result of the batch is stored, the rate-limited product waits at most a day,
    and the alerts of the tick are delivered."""
    sim = simulator_factory(Scenario(apps=[app("one-client", "one-secret"), app("two-client", "two-secret")]))
    one = connect(runtime, sim.scenario.apps[0], name="One")
    two = connect(runtime, sim.scenario.apps[1], name="Two")
    channel(runtime, receiver)
    control(
        sim,
        "POST",
        "faults",
        {"route": "cloud_storage", "client_id": "one-client", "status": 429, "retry_after": "300000000000"},
    )
    control(sim, "POST", "faults", {"route": "cc_chat", "client_id": "two-client", "status": 404})
    worker = Worker(runtime, prober_factory(sim.url), send=local_send)
    worker.tick()
    for _ in range(2):  # the 404 fails twice in a row: an alert is due
        make_due(runtime.engine)
        report = worker.tick()
        assert report.failure is None and (report.checked, report.failing) == (10, 2)
    assert current(runtime.engine, one.id)["cloud_storage"] == "rate_limited"
    assert current(runtime.engine, two.id) == {**dict.fromkeys(PRODUCT_KEYS, "ok"), "cc_chat": "not_found"}
    with read_session(runtime.engine) as session:
        due = session.exec(
            select(DueCheck).where(DueCheck.connection_id == one.id, DueCheck.product == "cloud_storage")
        ).one()
    assert due.due_at <= datetime.now(UTC) + schedule.LONGEST_WAIT + schedule.DEFAULT_EVERY
    assert "check.failed" in receiver.kinds()


@sqlite_only
def test_a_result_the_database_refuses_is_stored_as_a_failure_of_its_own(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    """Item 4: the database refuses one row of a batch (a trigger on one product): that
    product is stored as a failed check saying so; the others of the batch are stored as
    8x8 answered."""
    sim = simulator_factory(Scenario(apps=[app()]))
    view = connect(runtime, sim.scenario.apps[0])
    worker = Worker(runtime, prober_factory(sim.url))
    worker.tick()
    make_due(runtime.engine)
    with runtime.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON check_result WHEN NEW.product = 'cc_chat' "
                "AND NEW.outcome = 'ok' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    report = worker.tick()
    assert report.failure is None and (report.checked, report.failing) == (5, 1)
    stored = current(runtime.engine, view.id)
    assert stored == {**dict.fromkeys(PRODUCT_KEYS, "ok"), "cc_chat": "unexpected_response"}
    with read_session(runtime.engine) as session:
        detail = session.exec(select(Check.detail).where(Check.product == "cc_chat")).one()
    assert detail.startswith("Switchboard could not store the result of this check (IntegrityError)")


@sqlite_only
def test_a_failing_tick_still_delivers_alerts_and_shows_as_failing_beside_the_heartbeat(
    runtime: Runtime,
    simulator_factory: SimulatorFactory,
    prober_factory: ProberFactory,
    receiver: Receiver,
    worker_env: Callable[[SimulatorServer], dict[str, str]],
) -> None:
    """Items 3 and 4: the database refuses the schedule's claims, so the check part of every
    tick fails. The alerts queued meanwhile are delivered all the same; the heartbeat goes on,
    but the last successful tick stays where it was, and the console, `schedule show` and
    /metrics say the ticks fail."""
    sim = simulator_factory(Scenario(apps=[app()]))
    rt = runtime
    view = connect(rt, sim.scenario.apps[0])
    channel(rt, receiver)
    prober = prober_factory(sim.url)
    worker = Worker(rt, prober, send=local_send)
    assert worker.tick().failure is None
    (good,) = schedule.workers(rt.engine, ADMIN)
    assert good.last_ok_tick_at is not None and not good.failing
    control(sim, "POST", "faults", {"route": "cc_chat", "status": 404})
    for _ in range(2):
        checks.run_checks(rt, prober, connection_ids=[view.id], product="cc_chat", triggered_by=ADMIN)
    make_due(rt.engine)
    with refusing(rt.engine, "due_check", "UPDATE"):
        report = worker.tick()
        assert report.failure is not None and report.failure.startswith("checks: IntegrityError")
        assert report.alerts == 1 and receiver.kinds() == ["check.failed"]
        (bad,) = schedule.workers(rt.engine, ADMIN)
        assert bad.failing and bad.last_ok_tick_at == good.last_ok_tick_at and bad.last_tick_at > good.last_tick_at
        assert "refused by the test" in (bad.last_failure or "")
        families = {
            f.name: f
            for f in text_string_to_metric_families(
                metrics.exposition(rt.engine, per_connection=False, actor=ADMIN)[0].decode()
            )
        }
        assert families["switchboard_workers_failing"].samples[0].value == 1
        assert (
            families["switchboard_worker_last_successful_tick_timestamp_seconds"].samples[0].value
            == good.last_ok_tick_at.timestamp()
        )  # type: ignore[union-attr]
        assert (
            families["switchboard_worker_heartbeat_timestamp_seconds"].samples[0].value == bad.last_tick_at.timestamp()
        )
        shown = subprocess.run(
            [sys.executable, "-m", "lib", "schedule", "show"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=worker_env(sim),
        )
        assert "FAILING: its latest tick failed" in shown.stdout, shown.stdout + shown.stderr
    heal(sim)
    assert worker.tick().failure is None
    (mended,) = schedule.workers(rt.engine, ADMIN)
    assert not mended.failing and mended.last_ok_tick_at > good.last_ok_tick_at  # type: ignore[operator]
    assert receiver.kinds() == ["check.failed", "check.recovered"]  # the due checks ran once the claims worked
    with read_session(rt.engine) as session:
        assert [r.status for r in session.exec(select(AlertOutbox)).all()] == ["delivered", "delivered"]
    assert set(current(rt.engine, view.id).values()) == {"ok"}
