"""Bulk checks with results in the database, and verify-before-save (real simulator, real DB)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlalchemy import event
from sqlmodel import select

from lib.catalogue.products import PRODUCT_KEYS
from lib.eightbyeight.prober import Prober
from lib.kernel.errors import ValidationError
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionInput, linking
from lib.services.history import status
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.simulator import App, Scenario, SimulatorServer
from lib.store.db import read_session, write_session
from lib.store.models import Check
from lib.store.vault import Keyring, Vault, new_key
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.fixtures.simulator import SimulatorFactory


def form_for(app: App, name: str, **overrides: object) -> ConnectionInput:
    values: dict[str, object] = {
        "name": name,
        "client_id": app.client_id,
        "client_secret": SecretStr(app.client_secret),
        "analytics_region": app.analytics_region,
        "storage_region": (app.storage_regions or ["us-west"])[0],
        "qm_region": app.qm_region,
        "chat_region": app.chat_region,
        "tenant_id": app.tenants[0] if app.tenants else None,
        "pbx": app.pbx_names[0] if app.pbx_names else None,
    }
    values.update(overrides)
    return ConnectionInput(**values)  # type: ignore[arg-type]


def add(runtime: Runtime, app: App, name: str, **overrides: object) -> connections.ConnectionView:
    return connections.create(runtime.engine, runtime.vault, form_for(app, name, **overrides), actor=ADMIN)


def test_run_stores_every_result_under_one_run_id(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    everything, _, storage_only = simulator.scenario.apps
    one = add(runtime, everything, "Everything")
    two = add(runtime, storage_only, "Storage", expected_products=("cloud_storage",))
    progress: list[checks.Progress] = []
    report = checks.run_checks(runtime, prober_factory(simulator.url), triggered_by=ADMIN, on_progress=progress.append)
    assert len(report.products) == 6 and report.ok
    # listed as the connections are, each in catalogue order, whatever order the answers came in
    assert [(r.connection, r.product) for r in report.results] == [
        ("Everything", "token"),
        *(("Everything", key) for key in PRODUCT_KEYS),
        ("Storage", "token"),
        ("Storage", "cloud_storage"),
    ]
    assert [p.done for p in progress] == [1, 2, 3, 4, 5, 6] and progress[-1].total == 6
    with read_session(runtime.engine) as session:
        rows = session.exec(select(Check)).all()
    assert len(rows) == 8  # two token steps + six products
    assert {r.run_id for r in rows} == {report.run_id} and {r.triggered_by for r in rows} == {ADMIN.name}
    assert connections.get(runtime.engine, one.id).granted_products == tuple(sorted(PRODUCT_KEYS))
    assert connections.get(runtime.engine, two.id).granted_products == ("cloud_storage",)
    assert connections.get(runtime.engine, two.id).granted_at is not None


def test_latest_status_is_one_query_at_any_size(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    everything = simulator.scenario.apps[0]
    for n in range(12):
        add(runtime, everything, f"Conn {n:02d}")
    prober = prober_factory(simulator.url)
    checks.run_checks(runtime, prober, triggered_by=ADMIN)
    control(simulator, "POST", "faults", {"route": "cc_chat", "status": 403})
    second = checks.run_checks(runtime, prober, triggered_by=ADMIN, product="cc_chat")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", count)
    latest = status.latest_status(runtime.engine)
    event.remove(runtime.engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert len(latest) == 12 * 5
    chat = [r for r in latest if r.product == "cc_chat"]
    assert {r.outcome for r in chat} == {"forbidden"} and {r.run_id for r in chat} == {second.run_id}
    assert {r.outcome for r in latest if r.product != "cc_chat"} == {"ok"}


def test_unreadable_credentials_are_reported_without_a_call(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    add(runtime, simulator.scenario.apps[0], "Everything", expected_products=("cloud_storage", "cc_chat"))
    wrong = Runtime(runtime.settings, runtime.engine, Vault(Keyring("k1", {"k1": new_key()})))
    report = checks.run_checks(wrong, prober_factory(simulator.url), triggered_by=ADMIN)
    assert [r.outcome for r in report.products] == ["credential_unreadable"] * 2
    assert "Not tested" in report.products[0].detail
    assert control(simulator, "GET", "stats")["requests"]["token"] == 0


def test_per_connection_and_global_limits_hold(
    runtime: Runtime, simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    apps = [
        App(
            client_id=f"limit-app-{n}",
            client_secret=f"limit-secret-{n}",
            products=PRODUCT_KEYS,
            tenants=["t1"],
            pbx_names=["p1"],
        )
        for n in range(6)
    ]
    server = simulator_factory(Scenario(apps=apps, latency_ms=80))
    for n, app in enumerate(apps):
        add(runtime, app, f"Limits {n}")
    prober = prober_factory(server.url, per_connection=2, max_connections=7)
    report = checks.run_checks(runtime, prober, triggered_by=ADMIN)
    assert report.ok
    stats = control(server, "GET", "stats")
    assert max(stats["max_in_flight_by_client"].values()) == 2
    assert stats["max_in_flight"] == 7


def test_only_one_product_and_unknown_product(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    add(runtime, simulator.scenario.apps[0], "Everything")
    report = checks.run_checks(runtime, prober_factory(simulator.url), triggered_by=ADMIN, product="cloud_storage")
    assert [r.product for r in report.products] == ["cloud_storage"]
    with pytest.raises(ValidationError, match="Unknown product 'voice'"):
        checks.run_checks(runtime, prober_factory(simulator.url), triggered_by=ADMIN, product="voice")


def test_history_is_newest_first(runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory) -> None:
    view = add(runtime, simulator.scenario.apps[0], "Everything", expected_products=("cloud_storage",))
    prober = prober_factory(simulator.url)
    first = checks.run_checks(runtime, prober, triggered_by=ADMIN)
    second = checks.run_checks(runtime, prober, triggered_by=ADMIN)
    rows = status.history(runtime.engine, view.id)
    assert [r.run_id for r in rows][:1] == [second.run_id] and rows[-1].run_id == first.run_id


# --- verify before save -------------------------------------------------------------------


def test_verified_save_stores_granted_and_warns_on_gaps(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    storage_only = simulator.scenario.apps[2]
    view, verification = linking.save(
        runtime,
        prober_factory(simulator.url),
        form_for(storage_only, "Storage", expected_products=("cloud_storage", "cc_chat"), tenant_id="archive01"),
        actor=ADMIN,
    )
    assert verification is not None and verification.granted == frozenset({"cloud_storage"})
    assert verification.expected_not_granted == ("cc_chat",)
    assert "Contact Center Chat is expected but 8x8 did not grant it" in verification.warnings()[0]
    assert view.granted_products == ("cloud_storage",)


def test_refused_credentials_save_nothing(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    app = simulator.scenario.apps[0]
    with pytest.raises(linking.TokenRefused) as info:
        linking.save(
            runtime, prober_factory(simulator.url), form_for(app, "Bad", client_secret=SecretStr("wrong")), actor=ADMIN
        )
    assert not info.value.unreachable and "8x8 refused these credentials" in str(info.value)
    assert "8x8 admin (Admin Console)" in str(info.value)
    assert connections.count(runtime.engine) == 0


def test_unreachable_8x8_saves_nothing_unless_skipped(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    app = simulator.scenario.apps[0]
    control(simulator, "POST", "faults", {"route": "token", "status": 503})
    with pytest.raises(linking.TokenRefused) as info:
        linking.save(runtime, prober_factory(simulator.url), form_for(app, "Later"), actor=ADMIN)
    assert info.value.unreachable and "Could not ask 8x8" in str(info.value)
    assert connections.count(runtime.engine) == 0
    view, verification = linking.save(runtime, None, form_for(app, "Later"), actor=ADMIN)
    assert verification is None and view.granted_products is None  # saved untested


def test_edit_verifies_new_secret_with_stored_client_id(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    app = simulator.scenario.apps[0]
    prober: Prober = prober_factory(simulator.url)
    view, _ = linking.save(runtime, prober, form_for(app, "Edit me"), actor=ADMIN)
    blank_id = connections.input_from_view(view, client_secret=SecretStr("a-wrong-new-secret"))
    with pytest.raises(linking.TokenRefused):
        linking.save(runtime, prober, blank_id, actor=ADMIN, connection_id=view.id, expected_version=view.version)
    assert (
        connections.load_credentials(runtime.engine, runtime.vault, view.id).client_secret.get_secret_value()
        == app.client_secret
    )


def test_edit_with_blank_credentials_verifies_the_stored_ones(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """Verify & save on an edit that keeps the stored secret asks 8x8 with that secret (a new
    token request), then saves; refused, it saves nothing."""
    app = simulator.scenario.apps[0]
    prober: Prober = prober_factory(simulator.url)
    view, _ = linking.save(runtime, prober, form_for(app, "Edit me"), actor=ADMIN)
    before = control(simulator, "GET", "stats")["requests"]["token"]
    saved, verification = linking.save(
        runtime,
        prober,
        connections.input_from_view(view, environment="prod"),
        actor=ADMIN,
        connection_id=view.id,
        expected_version=view.version,
    )
    assert verification is not None and verification.result.ok and saved.environment == "prod"
    assert control(simulator, "GET", "stats")["requests"]["token"] == before + 1
    control(simulator, "POST", "faults", {"route": "token", "client_id": app.client_id, "status": 401})  # revoked
    with pytest.raises(linking.TokenRefused) as info:
        linking.save(
            runtime,
            prober,
            connections.input_from_view(saved, environment="staging"),
            actor=ADMIN,
            connection_id=view.id,
            expected_version=saved.version,
        )
    assert "8x8 refused the stored credentials, so nothing was saved" in str(info.value)
    assert "Who must act: 8x8 admin (Admin Console)" in str(info.value)
    again = connections.get(runtime.engine, view.id)
    assert (again.environment, again.version) == ("prod", saved.version)


def test_invalid_input_is_refused_before_any_call(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    app = simulator.scenario.apps[0]
    with pytest.raises(ValidationError):
        linking.save(runtime, prober_factory(simulator.url), form_for(app, "x", client_id="bad:id"), actor=ADMIN)
    assert control(simulator, "GET", "stats")["requests"]["token"] == 0


def test_unknown_connection_ids_are_ignored(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    report = checks.run_checks(
        runtime, prober_factory(simulator.url), connection_ids=[uuid.uuid4()], triggered_by=ADMIN
    )
    assert report.results == [] and report.ok


def test_results_of_a_connection_deleted_mid_run_are_dropped_and_the_others_kept(
    runtime: Runtime, simulator: SimulatorServer
) -> None:
    """A connection deleted while a bulk run checks it must not cost the rest of the batch."""
    everything, _, storage_only = simulator.scenario.apps
    kept = add(runtime, everything, "Kept")
    gone = add(runtime, storage_only, "Gone", expected_products=("cloud_storage",))
    connections.delete(runtime.engine, gone.id, actor=ADMIN)
    now = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        checks.store(
            session,
            [
                CheckRecord(kept.id, "Kept", "cc_chat", "ok", 200, 5, "", now, "r"),
                CheckRecord(gone.id, "Gone", "cloud_storage", "ok", 200, 5, "", now, "r"),
            ],
            {kept.id: frozenset({"cc_chat"}), gone.id: frozenset({"cloud_storage"})},
            "test",
        )
    with read_session(runtime.engine) as session:
        stored = session.exec(select(Check)).all()
    assert [(r.connection_id, r.product) for r in stored] == [(kept.id, "cc_chat")]
    assert connections.get(runtime.engine, kept.id).granted_products == ("cc_chat",)


def test_a_run_cut_off_before_its_end_is_known_as_unfinished_with_what_it_stored(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """A server killed mid-run writes no audit row for it: what it stored so far is kept, and
    the run reads as unfinished (the console says so to a page that lost it)."""
    everything, _, storage_only = simulator.scenario.apps
    one = add(runtime, everything, "Everything")
    add(runtime, storage_only, "Storage", expected_products=("cloud_storage",))
    cut = checks.RunReport(run_id=str(uuid.uuid4()))
    checks.execute(runtime, prober_factory(simulator.url), [[(one, one.tested_products)]], cut, triggered_by=ADMIN)
    assert checks.stored_run(runtime.engine, cut.run_id, actor=ADMIN) == checks.StoredRun(
        5, 0, min(r.checked_at for r in cut.products), finished=False
    )
    checks.record_run(
        runtime.engine, ADMIN, "Everything", cut, planned=6
    )  # as run_checks says it when the Prober closed
    assert not checks.stored_run(runtime.engine, cut.run_id, actor=ADMIN).finished
    done = checks.run_checks(runtime, prober_factory(simulator.url), triggered_by=ADMIN, run_id=str(uuid.uuid4()))
    run = checks.stored_run(runtime.engine, done.run_id, actor=ADMIN)
    assert (run.products, run.failing, run.finished) == (6, 0, True)
    assert checks.stored_run(runtime.engine, str(uuid.uuid4()), actor=ADMIN) == checks.StoredRun(0, 0, None, False)
