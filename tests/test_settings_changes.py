"""Results made with earlier settings never count as the current status (issue 21, item 2): an
edit that changes what is tested (credentials, a region, the tenant, the PBX, the ticked
products) makes earlier results "not tested since the settings changed" everywhere the status
is read, makes the connection due at once, and a check that was running during the edit is
kept in the history but changes nothing. Real simulator, real SQLite file (and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlmodel import select

from lib.catalogue.products import PRODUCT_KEYS
from lib.services import alerts, connections
from lib.services.checking import checks
from lib.services.checking.worker import Worker
from lib.services.history import status
from lib.services.reporting import connections_table, machine_status
from lib.services.runtime import Runtime
from lib.simulator import App, Scenario, SimulatorServer
from lib.store.db import read_session
from lib.store.models import Check, DueCheck
from tests.fixtures.alerts import Receiver, local_send
from tests.fixtures.console import PageOpener
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.simulator import SimulatorFactory
from tests.fixtures.waiting import eventually
from tests.test_alerts import SETTINGS, app, channel
from tests.test_checks import form_for
from tests.test_worker import make_due

ANALYTICS = ("cc_realtime_analytics", "cc_historical_analytics")


def connect(rt: Runtime, sim_app: App, **settings: object) -> connections.ConnectionView:
    """The app as connection "Acme prod" (environment prod), with ``settings`` over the right ones."""
    return connections.create(
        rt.engine,
        rt.vault,
        connections.ConnectionInput(
            name="Acme prod",
            client_id=sim_app.client_id,
            client_secret=SecretStr(sim_app.client_secret),
            environment="prod",
            **{**SETTINGS, **settings},
        ),
        actor=ADMIN,
    )  # type: ignore[arg-type]


def due_at(rt: Runtime, connection_id: object) -> dict[str, datetime]:
    with read_session(rt.engine) as session:
        return {
            r.product: r.due_at for r in session.exec(select(DueCheck).where(DueCheck.connection_id == connection_id))
        }


def shown(rt: Runtime, name: str) -> dict[str, tuple[str, str]]:
    """What the status API says of each product: (status, outcome)."""
    answer = machine_status.one(rt.engine, name, actor=ADMIN)
    return {p["product"]: (p["status"], p["outcome"]) for p in answer["products"]}


def test_an_edit_of_the_region_retires_the_old_failure_everywhere_and_is_checked_at_once(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, receiver: Receiver
) -> None:
    sim = simulator_factory(Scenario(apps=[app()]))
    view = connect(runtime, sim.scenario.apps[0], analytics_region="eu")  # the app lives in the US
    channel(runtime, receiver)
    worker = Worker(runtime, prober_factory(sim.url), send=local_send)
    worker.tick()
    for _ in range(2):
        make_due(runtime.engine)
        worker.tick()
    assert {p: shown(runtime, "Acme prod")[p] for p in ANALYTICS} == dict.fromkeys(ANALYTICS, ("failing", "not_found"))
    assert {p for _, p in alerts.alerting(runtime.engine, actor=ADMIN)} == set(ANALYTICS)
    assert receiver.kinds() == ["check.failed", "check.failed"]

    edited = connections.update(
        runtime.engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, analytics_region="us"),
        actor=ADMIN,
        expected_version=view.version,
    )
    assert edited.settings_version == view.settings_version + 1
    now = datetime.now(UTC)
    assert all(at <= now for at in due_at(runtime, view.id).values())  # due at once
    after = shown(runtime, "Acme prod")
    assert after == dict.fromkeys(PRODUCT_KEYS, ("never tested", "settings_changed"))  # no old OK, no old failure
    overview = connections_table.Overview.build(runtime.engine, status.data_stamp(runtime.engine))
    assert list(overview.wide["Status"]) == ["🔄 Not tested since the edit"]
    frame = status.table(runtime.engine)
    assert set(status.verdicts(frame)) == {status.Verdict.NEVER_TESTED}
    # Nothing of the old result stays: not its words ("check the Analytics region 'eu'"), status or time.
    assert set(frame["detail"]) == {""} and frame["http_status"].isna().all() and frame["checked_at"].isna().all()

    report = worker.tick()  # the very next tick checks it with the new settings
    assert (report.checked, report.failing) == (5, 0)
    assert shown(runtime, "Acme prod") == dict.fromkeys(PRODUCT_KEYS, ("ok", "ok"))
    assert receiver.kinds() == ["check.failed", "check.failed", "check.recovered", "check.recovered"]
    with read_session(runtime.engine) as session:
        versions = {(r.product, r.settings_version) for r in session.exec(select(Check)).all()}
    assert ("cc_chat", view.settings_version) in versions and ("cc_chat", edited.settings_version) in versions


def test_an_edit_that_changes_nothing_tested_keeps_the_results(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(Scenario(apps=[app()]))
    view = connect(runtime, sim.scenario.apps[0])
    checks.run_checks(runtime, prober_factory(sim.url), connection_ids=[view.id], triggered_by=ADMIN)
    due_before = due_at(runtime, view.id)
    renamed = connections.update(
        runtime.engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, name="Acme production", environment="production"),
        actor=ADMIN,
        expected_version=view.version,
    )
    assert renamed.settings_version == view.settings_version
    assert shown(runtime, "Acme production") == dict.fromkeys(PRODUCT_KEYS, ("ok", "ok"))
    assert due_at(runtime, view.id) == due_before


@pytest.mark.parametrize(
    "change",
    [
        {"analytics_region": "eu"},
        {"storage_region": "uk"},
        {"qm_region": "uk"},
        {"chat_region": "eu"},
        {"tenant_id": "t2"},
        {"pbx": "p2"},
        {"expected_products": ("cc_chat",)},
        {"client_secret": "a-new-secret"},
        {"client_id": "another-client"},
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_setting_a_check_uses_retires_earlier_results(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory, change: dict[str, object]
) -> None:
    sim = simulator_factory(Scenario(apps=[app()]))
    view = connect(runtime, sim.scenario.apps[0])
    checks.run_checks(runtime, prober_factory(sim.url), connection_ids=[view.id], triggered_by=ADMIN)
    values = {k: SecretStr(v) if k == "client_secret" else v for k, v in change.items()}  # type: ignore[arg-type]
    connections.update(
        runtime.engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, **values),
        actor=ADMIN,
        expected_version=view.version,
    )
    assert {outcome for _, outcome in shown(runtime, "Acme prod").values()} == {"settings_changed"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_check_running_during_the_edit_is_history_only_and_its_slot_runs_again_with_the_new_settings(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    sim = simulator_factory(Scenario(apps=[app()], latency_ms=800))
    view = connect(runtime, sim.scenario.apps[0], analytics_region="eu")
    worker = Worker(runtime, prober_factory(sim.url))
    worker.tick()
    make_due(runtime.engine)
    ticking = threading.Thread(target=worker.tick)
    ticking.start()
    eventually(
        lambda: control(sim, "GET", "stats")["requests"].get("token", 0) >= 1, what="the old settings' token request"
    )  # the old settings are out
    connections.update(
        runtime.engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, analytics_region="us"),
        actor=ADMIN,
        expected_version=view.version,
    )
    ticking.join(60)
    assert not ticking.is_alive()
    with read_session(runtime.engine) as session:
        rows = session.exec(select(Check).where(Check.product.in_(ANALYTICS))).all()  # type: ignore[attr-defined]
    earlier = {(r.product, r.outcome) for r in rows if r.settings_version == view.settings_version}
    assert earlier == {(p, "not_found") for p in ANALYTICS}  # kept, marked, not current
    assert {verdict for verdict, _ in shown(runtime, "Acme prod").values()} == {"never tested"}  # nothing current
    now = datetime.now(UTC)
    assert all(at <= now for at in due_at(runtime, view.id).values())  # let go still due
    report = worker.tick()  # the next tick checks the settings as edited
    assert (report.checked, report.failing) == (5, 0)
    assert shown(runtime, "Acme prod") == dict.fromkeys(PRODUCT_KEYS, ("ok", "ok"))
    assert alerts.alerting(runtime.engine, actor=ADMIN) == set()


def test_the_open_connection_says_its_last_result_was_made_with_earlier_settings(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    view = connections.create(
        console_env.engine,
        console_env.vault,
        form_for(simulator.scenario.apps[0], "Everything", analytics_region="eu"),
        actor=ADMIN,
    )
    checks.run_checks(console_env, prober_factory(simulator.url), connection_ids=[view.id], triggered_by=ADMIN)
    connections.update(
        console_env.engine,
        console_env.vault,
        view.id,
        connections.input_from_view(view, analytics_region="us"),
        actor=ADMIN,
        expected_version=view.version,
    )
    at = open_page("pages/connections.py")
    at.selectbox(key="conn_detail").set_value("Everything").run()
    assert not at.exception
    said = " ".join(str(c.value) for c in at.caption)
    assert "The settings changed after the last test" in said and "Not found" in said
    assert "Not tested since the settings changed" in " ".join(str(m.value) for m in at.markdown)
