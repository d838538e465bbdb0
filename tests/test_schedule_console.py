"""AppTest: the Connections page says whether scheduled checks run (interval, pause, a live
worker) and, per connection, its next and last scheduled check."""

from __future__ import annotations

from datetime import timedelta

from streamlit.testing.v1 import AppTest

from lib.services import connections
from lib.services.checking import schedule
from lib.services.checking.worker import Worker
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from tests.fixtures.console import PageOpener
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory
from tests.test_checks import form_for
from tests.test_tick_truth import refusing
from tests.test_worker import make_due

CONNECTIONS = "pages/connections.py"


def captions(at: AppTest) -> list[str]:
    return [str(c.value) for c in at.caption]


def test_no_worker_paused_and_a_live_worker_are_said_above_the_table(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    connections.create(
        console_env.engine, console_env.vault, form_for(simulator.scenario.apps[0], "Everything"), actor=ADMIN
    )
    at = open_page(CONNECTIONS)
    assert not at.exception
    assert any("Scheduled checks every 15 min, but no worker has run: they wait for" in c for c in captions(at))
    Worker(console_env, prober_factory(simulator.url)).tick()
    assert any("Scheduled checks every 15 min · worker alive, last successful tick" in c for c in captions(at.run()))
    schedule.set_paused(console_env.engine, True, actor=ADMIN)
    assert any("Scheduled checks are paused for all connections" in c for c in captions(at.run()))


def test_the_open_connection_shows_its_next_and_last_scheduled_check(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    view = connections.create(
        console_env.engine, console_env.vault, form_for(simulator.scenario.apps[0], "Everything"), actor=ADMIN
    )
    at = open_page(CONNECTIONS)
    at.selectbox(key="conn_detail").set_value("Everything").run()
    assert any("the worker plans its first check at its next tick · no scheduled check yet" in c for c in captions(at))
    Worker(console_env, prober_factory(simulator.url)).tick()
    schedule.set_every(console_env.engine, timedelta(hours=1), actor=ADMIN, connection=view)
    line = next(c for c in captions(at.run()) if "Next scheduled check" in c)
    assert "UTC (in " in line and "every 1 h ·" in line and "no scheduled check yet" in line
    schedule.set_paused(console_env.engine, True, actor=ADMIN, connection=view)
    assert any("Scheduled checks paused (every 1 h)" in c for c in captions(at.run()))


def test_failing_ticks_are_a_warning_with_the_last_successful_tick(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """Issue 21, item 3: the heartbeat alone is not "alive and well"."""

    connections.create(
        console_env.engine, console_env.vault, form_for(simulator.scenario.apps[0], "Everything"), actor=ADMIN
    )
    worker = Worker(console_env, prober_factory(simulator.url))
    worker.tick()
    make_due(console_env.engine)
    with refusing(console_env.engine, "due_check", "UPDATE"):  # the database refuses the claims
        assert worker.tick().failure is not None
    at = open_page(CONNECTIONS)
    (warning,) = [str(w.value) for w in at.warning if "Scheduled ticks are failing" in str(w.value)]
    assert "IntegrityError" in warning and "last successful tick" in warning and "Switchboard operator" in warning
    assert worker.tick().failure is None
    assert not [w for w in at.run().warning if "Scheduled ticks are failing" in str(w.value)]
    assert any("worker alive, last successful tick" in c for c in captions(at))


def test_the_caption_says_when_connections_have_intervals_of_their_own(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer
) -> None:
    """Issue 22: one interval in the caption was wrong as soon as a connection had its own."""
    app = simulator.scenario.apps[0]
    views = [
        connections.create(console_env.engine, console_env.vault, form_for(app, name), actor=ADMIN)
        for name in ("Alpha", "Beta", "Gamma")
    ]
    at = open_page(CONNECTIONS)
    assert any("Scheduled checks every 15 min, but" in c for c in captions(at))
    schedule.set_every(console_env.engine, timedelta(hours=1), actor=ADMIN, connection=views[0])
    assert any(
        "Scheduled checks every 15 min (1 connection: its own interval, 1 h), but" in c for c in captions(at.run())
    )
    schedule.set_every(console_env.engine, timedelta(minutes=5), actor=ADMIN, connection=views[1])
    schedule.set_every(console_env.engine, timedelta(minutes=15), actor=ADMIN, connection=views[2])  # the default
    assert any(
        "Scheduled checks every 15 min (2 connections: their own interval, 5 min–1 h), but" in c
        for c in captions(at.run())
    )
