"""AppTest: the connect and connections pages against a real database and the simulator."""

from __future__ import annotations

import logging
import re
import uuid

import pytest
from sqlalchemy import update as sql_update
from sqlmodel import select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from lib.catalogue.products import PRODUCT_KEYS
from lib.kernel.redaction import install, registry
from lib.services import connections
from lib.services.checking import checks
from lib.services.guard import audit
from lib.services.history import status
from lib.services.runtime import Runtime
from lib.simulator import App, SimulatorServer
from lib.store.db import read_session, write_session
from lib.store.models import Check, Connection
from tests.fixtures.console import PageOpener, identity, oidc_app, plain
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.test_checks import form_for

CONNECT, CONNECTIONS = "pages/connect.py", "pages/connections.py"


def everything(simulator: SimulatorServer) -> App:
    return simulator.scenario.apps[0]


def fill(
    at: AppTest,
    app: App,
    *,
    name: str = "Reporting",
    secret: str | None = None,
    products: tuple[str, ...] = ("cloud_storage", "cc_chat"),
) -> AppTest:
    at.multiselect(key="connect_products").set_value(list(products)).run()
    at.text_input(key="connect_name").input(name)
    at.text_input(key="connect_client_id").input(app.client_id)
    at.text_input(key="connect_client_secret").input(app.client_secret if secret is None else secret)
    if "cloud_storage" in products:
        at.selectbox(key="connect_storage_region").set_value("uk")
    if "cc_chat" in products:
        at.selectbox(key="connect_chat_region").set_value(app.chat_region)
        at.text_input(key="connect_tenant_id").input(app.tenants[0] if app.tenants else "tenant-x")
    return at


def submit(at: AppTest) -> AppTest:
    return at.button(key="connect_submit").click().run()


def texts(at: AppTest) -> str:
    """Everything the page rendered, as text (values, labels, markdown, tables)."""
    parts: list[str] = []
    for node in (*at.main, *at.sidebar):
        parts.append(repr(node))
    return "\n".join(parts)


def stored(rt: Runtime) -> list[Connection]:
    with read_session(rt.engine) as session:
        return list(session.exec(select(Connection)).all())


# --- connect ------------------------------------------------------------------------------


def test_connect_asks_only_for_settings_the_products_need(open_page: PageOpener) -> None:
    at = open_page(CONNECT)
    assert not at.exception
    labels = lambda: {w.label for w in (*at.text_input, *at.selectbox)}
    assert "Chat region" not in labels() and "PBX name" not in labels()
    at.multiselect(key="connect_products").set_value(["quality_management"]).run()
    assert {"Quality Management region", "PBX name"} <= labels() and "Chat region" not in labels()
    at.multiselect(key="connect_products").set_value(["cc_chat"]).run()
    assert {"Chat region", "Contact Center tenant ID"} <= labels() and "PBX name" not in labels()
    secret = at.text_input(key="connect_client_secret")
    assert secret.proto.type == secret.proto.PASSWORD and secret.value == ""
    assert secret.autocomplete == "new-password"


@pytest.mark.parametrize(
    ("change", "label", "message"),
    [
        ({"connect_name": ""}, "Connection name", "Enter a name"),
        ({"connect_client_id": "abc:def"}, "Client ID", "cannot contain ':'"),
        ({"connect_client_id": "abc def"}, "Client ID", "Remove spaces"),
        ({"connect_client_secret": "**********"}, "Client Secret", "masked value"),
        ({"connect_client_secret": ""}, "Client Secret", "Paste the Client Secret"),
        ({"connect_tenant_id": "tenant/1"}, "Contact Center tenant ID", "letters, digits"),
    ],
)
def test_connect_rejects_each_bad_field_with_its_message(
    open_page: PageOpener,
    simulator: SimulatorServer,
    console_env: Runtime,
    change: dict[str, str],
    label: str,
    message: str,
) -> None:
    at = fill(open_page(CONNECT), everything(simulator))
    for key, value in change.items():
        at.text_input(key=key).input(value)
    submit(at)
    errors = " ".join(plain(e.value) for e in at.error)
    assert "Nothing was saved" in errors and f"**{label}**" in errors and message in errors
    assert stored(console_env) == []
    assert control(simulator, "GET", "stats")["requests"]["token"] == 0  # refused before any call


def test_verify_and_save_good_credentials(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    app = simulator.scenario.apps[2]  # storage only: chat is expected but not granted
    at = submit(fill(open_page(CONNECT), app, name="Archive"))
    assert not at.exception
    assert "8x8 issued a token" in at.success[0].value
    table = " ".join(m.value for m in at.markdown)
    assert "| Cloud Storage Service | yes | yes | ✅ matches |" in table
    assert "| Contact Center Chat | yes | no | ⚠️ **differs** |" in table
    assert "Contact Center Chat is expected but 8x8 did not grant it" in at.warning[0].value
    [row] = stored(console_env)
    assert row.name == "Archive" and row.granted_products == ["cloud_storage"]
    # The secret is gone from the form and from session state.
    assert at.text_input(key="connect_client_secret").value == ""
    assert app.client_secret not in repr(at.session_state.to_dict())
    assert app.client_secret not in texts(at) and app.client_id not in texts(at)


def test_refused_credentials_show_an_error_and_save_nothing(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    at = submit(fill(open_page(CONNECT), everything(simulator), secret="a-wrong-secret-value"))
    assert "8x8 refused these credentials, so nothing was saved" in plain(at.error[0].value)
    assert "/guide#outcome-bad-credentials" in at.error[0].value
    assert stored(console_env) == []
    assert "a-wrong-secret-value" not in repr(at.session_state.to_dict())


def test_unreachable_8x8_offers_to_save_untested(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    control(simulator, "POST", "faults", {"route": "token", "status": 503})
    at = submit(fill(open_page(CONNECT), everything(simulator)))
    assert "Could not ask 8x8" in at.error[0].value and stored(console_env) == []
    fill(at, everything(simulator))  # the secret is never kept: type it again
    at.checkbox(key="connect_skip_verify").check()
    submit(at)
    assert "without verifying" in at.warning[0].value and len(stored(console_env)) == 1


def open_edit(at: AppTest, name: str) -> AppTest:
    """Edit ``name`` from the connections page; later runs stay on the connect page (AppTest
    reruns the page it was switched to, not the one the app switched to)."""
    at.selectbox(key="conn_detail").set_value(name).run()
    return at.button(key="detail_edit").click().run().switch_page(CONNECT).run()


def test_edit_with_blank_secret_verifies_the_stored_one_then_saves(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    app = everything(simulator)
    view = connections.create(
        console_env.engine, console_env.vault, form_for(app, "Prod", expected_products=("cloud_storage",)), actor=ADMIN
    )
    before = stored(console_env)[0].client_secret_enc
    at = open_edit(open_page(CONNECTIONS), "Prod")
    assert at.title[0].value == "Edit Prod"
    assert at.text_input(key="connect_client_secret").value == ""
    assert at.text_input(key="connect_client_id").value == ""  # never pre-filled either
    assert at.text_input(key="connect_name").value == "Prod"
    at.text_input(key="connect_environment").input("production")
    submit(at)
    assert not at.error, [e.value for e in at.error]
    assert "8x8 issued a token" in at.success[0].value  # Verify & save verified: with the stored secret
    assert not any("without verifying" in w.value for w in at.warning)
    assert control(simulator, "GET", "stats")["requests"]["token"] == 1
    row = stored(console_env)[0]
    assert row.client_secret_enc == before and row.environment == "production" and row.version == 2
    assert row.granted_products == sorted(PRODUCT_KEYS)
    assert app.client_secret not in repr(at.session_state.to_dict()) and app.client_secret not in texts(at)
    assert connections.get(console_env.engine, view.id).name == "Prod"


def test_the_connection_being_edited_is_in_the_address_and_survives_a_reload(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    """Edit puts the connection's name in the address (only that: no Client ID, no secret); a
    reload, a new session on that address, edits the same connection; a save that renames it
    moves the address along; a name no longer there leaves the address and adds a new one."""
    app = everything(simulator)
    connections.create(
        console_env.engine, console_env.vault, form_for(app, "Prod", expected_products=("cloud_storage",)), actor=ADMIN
    )
    at = open_edit(open_page(CONNECTIONS), "Prod")
    assert at.query_params == {"edit": "Prod"}

    def reload(name: str) -> AppTest:
        at = oidc_app(identity("admin@example.com")).run()
        at.query_params["edit"] = name
        return at.switch_page(CONNECT).run()

    reloaded = reload("Prod")
    assert reloaded.title[0].value == "Edit Prod" and reloaded.text_input(key="connect_name").value == "Prod"
    reloaded.text_input(key="connect_name").input("Prod EU")
    reloaded.text_input(key="connect_client_secret").input(app.client_secret)
    submit(reloaded)
    assert "8x8 issued a token" in reloaded.success[0].value
    assert reloaded.query_params == {"edit": "Prod EU"} and reloaded.title[0].value == "Edit Prod EU"
    assert app.client_secret not in repr(reloaded.query_params) and app.client_id not in repr(reloaded.query_params)
    gone = reload("Prod")
    assert gone.title[0].value == "Add a connection" and "edit" not in gone.query_params
    assert "no longer exists" in gone.warning[0].value and "Prod" not in gone.warning[0].value
    assert reload("x" * 5000).title[0].value == "Add a connection"


def test_edit_whose_stored_secret_8x8_refuses_saves_nothing_and_says_who_acts(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    app = everything(simulator)
    connections.create(
        console_env.engine, console_env.vault, form_for(app, "Prod", expected_products=("cloud_storage",)), actor=ADMIN
    )
    control(simulator, "POST", "faults", {"route": "token", "client_id": app.client_id, "status": 401})
    at = open_edit(open_page(CONNECTIONS), "Prod")
    at.text_input(key="connect_environment").input("production")
    submit(at)
    [error] = at.error
    assert "8x8 refused the stored credentials, so nothing was saved" in plain(error.value)
    assert "Who must act: 8x8 admin (Admin Console)." in plain(error.value)
    assert "/guide#outcome-bad-credentials" in error.value
    assert not at.success and not at.warning
    row = stored(console_env)[0]
    assert (row.environment, row.version) == ("", 1)


def drawn_after(at: AppTest, key: str) -> list[str]:
    """The messages drawn right after the widget ``key`` (before the next widget)."""
    nodes = [node for node in at.main if not isinstance(node, Block)]
    start = next(i for i, node in enumerate(nodes) if getattr(node, "key", None) == key)
    after = []
    for node in nodes[start + 1 :]:
        if getattr(node, "key", None):
            break
        after.append(plain(str(getattr(node, "value", ""))))
    return after


def test_connect_refuses_a_ticked_product_without_its_setting_next_to_the_field(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    at = fill(open_page(CONNECT), everything(simulator), products=("cloud_storage",))
    at.selectbox(key="connect_storage_region").set_value(None)
    submit(at)
    message = "Cloud Storage Service needs it to be tested. Choose one of: us-west, us-east, uk, ap, ca."
    assert drawn_after(at, "connect_storage_region") == [message]
    summary = plain(at.error[-1].value)
    assert "Nothing was saved" in summary and f"**Cloud Storage region**: {message}" in summary
    assert not any("storage_region" in e.value for e in at.error)
    assert stored(console_env) == [] and control(simulator, "GET", "stats")["requests"]["token"] == 0
    at.selectbox(key="connect_storage_region").set_value("uk")
    at.text_input(key="connect_client_secret").input(everything(simulator).client_secret)  # never kept
    submit(at)
    assert "8x8 issued a token" in at.success[0].value and not at.error
    assert stored(console_env)[0].storage_region == "uk"


def test_an_old_connection_without_a_needed_setting_shows_and_its_edit_asks_for_it(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    view = connections.create(
        console_env.engine, console_env.vault, form_for(everything(simulator), "Old", storage_region=None), actor=ADMIN
    )
    with write_session(console_env.engine) as session:  # as saved before settings were required
        session.exec(
            sql_update(Connection)
            .where(Connection.id == view.id)  # type: ignore[call-overload]
            .values(expected_products=["cloud_storage"])
        )
    at = open_page(CONNECTIONS)
    assert not at.exception and "Old" in texts(at)
    at = open_edit(at, "Old")
    assert at.selectbox(key="connect_storage_region").value is None
    at.text_input(key="connect_environment").input("production")
    submit(at)
    assert drawn_after(at, "connect_storage_region")[0].startswith("Cloud Storage Service needs it to be tested.")
    assert (stored(console_env)[0].environment, stored(console_env)[0].version) == ("", 1)
    at.selectbox(key="connect_storage_region").set_value("us-east")
    submit(at)
    assert "8x8 issued a token" in at.success[0].value and not at.error
    row = stored(console_env)[0]
    assert (row.storage_region, row.environment, row.version) == ("us-east", "production", 2)


def test_test_all_products_now_after_saving(open_page: PageOpener, simulator: SimulatorServer) -> None:
    at = submit(fill(open_page(CONNECT), everything(simulator)))
    at.button(key="connect_test_now").click().run()
    shown = " ".join(m.value for m in at.markdown)
    assert "**Cloud Storage Service** — ✅ OK" in shown and "**Contact Center Chat** — ✅ OK" in shown


# --- connections --------------------------------------------------------------------------


def seed(rt: Runtime, simulator: SimulatorServer) -> None:
    everything_app, _, storage_only = simulator.scenario.apps
    connections.create(
        rt.engine,
        rt.vault,
        form_for(
            everything_app, "Everything", environment="production", expected_products=("cloud_storage", "cc_chat")
        ),
        actor=ADMIN,
    )
    connections.create(
        rt.engine,
        rt.vault,
        form_for(
            storage_only,
            "Archive",
            environment="staging",
            expected_products=("cloud_storage", "cc_chat"),
            tenant_id="t-1",
        ),
        actor=ADMIN,
    )


def test_empty_connections_page_points_to_connect(open_page: PageOpener) -> None:
    at = open_page(CONNECTIONS)
    assert not at.exception and "No connections yet" in at.info[0].value


def test_table_shows_the_outcome_per_product_after_tests(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    assert [m.value for m in at.metric] == ["2", "0", "0", "4"]
    at.button(key="conn_test_all").click().run()
    assert not at.exception
    assert "Tested 4 products of all connections: 3 OK, 1 failing." in at.warning[0].value
    table = at.dataframe[0].value.set_index("Name")
    assert table.loc["Everything", "Cloud Storage Service"] == "✅ OK"
    assert table.loc["Archive", "Contact Center Chat"] == "🚫 Product not enabled"
    assert table.loc["Archive", "Quality Management"] == "— not ticked"
    assert "Client Secret" not in table.columns and table.loc["Archive", "Client ID"].startswith("SENT")
    assert [m.value for m in at.metric] == ["2", "3", "1", "0"]


def test_filters_narrow_the_table_and_the_metrics(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    table = at.dataframe[0].value.set_index("Name")
    assert set(table["Last checked"]) == {"Never"}  # never "None", never blank
    at.text_input(key="conn_search").input("arch").run()
    assert list(at.dataframe[0].value["Name"]) == ["Archive"]
    assert [m.value for m in at.metric] == ["1", "0", "0", "2"]
    at.text_input(key="conn_search").input("").run()
    at.multiselect(key="conn_env_filter").set_value(["production"]).run()
    assert list(at.dataframe[0].value["Name"]) == ["Everything"]
    at.multiselect(key="conn_env_filter").set_value([]).run()
    at.button(key="conn_test_all").click().run()
    at.multiselect(key="conn_outcome_filter").set_value(["Any problem"]).run()
    assert list(at.dataframe[0].value["Name"]) == ["Archive"]
    assert [m.value for m in at.metric] == ["1", "1", "1", "0"]
    assert at.dataframe[0].value["Last checked"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").all()


def test_a_product_nobody_ticked_is_never_counted_as_failing(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime, prober_factory: ProberFactory
) -> None:
    """Archive ticks storage and chat; a test of a third product that 8x8 does not grant is
    information. Its token showed that 8x8 does not grant chat either: that one fails."""
    seed(console_env, simulator)
    archive = connections.find_by_name(console_env.engine, "Archive")
    checks.run_checks(
        console_env,
        prober_factory(simulator.url),
        connection_ids=[archive.id],
        product="quality_management",
        triggered_by=ADMIN,
    )
    at = open_page(CONNECTIONS)
    assert [m.value for m in at.metric] == ["2", "0", "1", "3"]  # chat failing; quality management not counted
    assert at.dataframe[0].value.set_index("Name").loc["Archive", "Quality Management"] == "— not ticked"
    at.multiselect(key="conn_outcome_filter").set_value(["🚫 Product not enabled"]).run()
    assert at.dataframe[0].value.empty  # only quality management was tested, and it is not ticked
    assert "None" not in " ".join(str(v) for v in at.dataframe[0].value.to_numpy().ravel())


def test_test_button_changes_only_its_product(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.selectbox(key="conn_detail").set_value("Archive").run()
    at.button(key="test_cc_chat").click().run()
    assert not at.exception
    with read_session(console_env.engine) as session:
        products = {c.product for c in session.exec(select(Check)).all()}
    assert products == {"token", "cc_chat"}
    shown = " ".join(e.value for e in at.error)
    assert "Product not enabled" in shown and "/guide#outcome-product-not-enabled" in shown
    assert "Who must act:** 8x8 admin (Admin Console)" in shown
    assert all("Cloud Storage" not in e.value for e in at.success)  # storage was not tested


def test_detail_test_all_and_history(open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.selectbox(key="conn_detail").set_value("Everything").run()
    at.button(key="detail_test_all").click().run()
    assert not at.exception
    assert any("Everything: 2 OK, 0 failing." in t.value for t in at.toast)
    assert len([s for s in at.success if "OK" in s.value]) == 2
    history = at.dataframe[-1].value
    assert len(history) == 2 and history["Latency (ms)"].notna().all()
    assert set(history["Outcome"]) == {"OK"} and history["When"].str.endswith(" UTC").all()
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # the outcome timeline and the response times beside it
    uptime = next(d.value for d in at.dataframe if "90 d" in d.value.columns)
    assert list(uptime["Product"]) == ["Cloud Storage Service", "Contact Center Chat"]  # the two ticked
    assert list(uptime.iloc[0, 1:]) == [100.0] * 4


def test_delete_needs_the_typed_name(open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.selectbox(key="conn_detail").set_value("Archive").run()
    at.button(key="detail_delete").click().run()
    at.text_input(key="delete_confirm").input("Archiv")
    at.button(key="delete_confirm_button").click().run()
    assert not at.exception
    assert "The name does not match" in plain(at.error[0].value)
    assert len(connections.list_connections(console_env.engine)) == 2
    at.text_input(key="delete_confirm").input("Archive")
    at.button(key="delete_confirm_button").click().run()
    assert [v.name for v in connections.list_connections(console_env.engine)] == ["Everything"]
    assert [s.value for s in at.success] == ["Deleted Archive."]
    assert at.selectbox(key="conn_detail").value is None


def test_export_buttons_are_offered(open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Export CSV", "Export JSON", "Export Excel"]


def test_no_element_or_state_holds_a_secret(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.button(key="conn_test_all").click().run()
    at.selectbox(key="conn_detail").set_value("Everything").run()
    at.button(key="detail_test_all").click().run()
    rendered, state = texts(at), repr(at.session_state.to_dict())
    for app in simulator.scenario.apps:
        for needle in (app.client_id, app.client_secret, *simulator.state.issued_tokens()):
            assert needle not in rendered and needle not in state
    assert not re.search(r"v1\.k\d+\.", rendered)


# --- the error boundary -------------------------------------------------------------------


def _failing_page() -> None:
    from lib.kernel.redaction import registry as secrets
    from lib.ui.errors import error_boundary

    secrets.add("SENTINEL-BOUNDARY-SECRET-1234")
    with error_boundary():
        raise RuntimeError("boom with SENTINEL-BOUNDARY-SECRET-1234 inside")


def test_unexpected_error_shows_a_reference_and_logs_it_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install(caplog.handler)
    caplog.set_level(logging.ERROR)
    at = AppTest.from_function(_failing_page, default_timeout=30).run()
    assert not at.exception  # nothing raw reaches the browser
    message = at.error[0].value
    reference = re.search(r"Reference: `([0-9a-f]{12})`", message).group(1)  # type: ignore[union-attr]
    assert "SENTINEL" not in message and "boom" not in message
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and "SENTINEL-BOUNDARY-SECRET-1234" not in caplog.text
    assert "boom with *** inside" in caplog.text
    registry.clear()


def test_checks_are_recorded_with_the_signed_in_person_as_trigger(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS, "operator@example.com")
    at.button(key="conn_test_all").click().run()
    assert {r.run_id for r in status.latest_status(console_env.engine)} != {None}
    with read_session(console_env.engine) as session:
        assert {c.triggered_by for c in session.exec(select(Check)).all()} == {"operator@example.com"}


def test_test_shown_tests_only_the_filtered_connections(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    assert at.button(key="conn_test_shown").disabled  # nothing filtered: that is "Test all"
    at.text_input(key="conn_search").input("arch").run()
    assert at.button(key="conn_test_shown").label == "Test shown (1)"
    at.button(key="conn_test_shown").click().run()
    assert "Tested 2 products of 1 connection: 1 OK, 1 failing." in at.warning[0].value
    assert {r.connection for r in status.latest_status(console_env.engine)} == {"Archive"}


def test_a_page_that_lost_its_test_run_says_what_became_of_it(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime, prober_factory: ProberFactory
) -> None:
    """While a bulk test runs its id is in the address; a page that comes back with it (its
    server died and another instance serves the reconnect, or a reload) says how the run ended."""
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.button(key="conn_test_all").click().run()
    assert "run" not in at.query_params  # a run that reported back leaves no trace in the address
    everything = next(v for v in connections.list_connections(console_env.engine) if v.name == "Everything")
    cut = checks.RunReport(run_id=str(uuid.uuid4()))  # stored, then its server was gone: no audit row
    checks.execute(
        console_env, prober_factory(simulator.url), [[(everything, ("cloud_storage",))]], cut, triggered_by=ADMIN
    )
    finished = checks.run_checks(console_env, prober_factory(simulator.url), triggered_by=ADMIN)

    def come_back(run: str) -> AppTest:
        at = oidc_app(identity("admin@example.com"))
        at.query_params["run"] = run
        return at.run()

    interrupted = come_back(cut.run_id)
    said = interrupted.warning[0].value
    assert "was interrupted" in said and "1 product had been tested" in said
    assert "run" not in interrupted.query_params
    assert "finished: 4 products tested, 3 OK, 1 failing." in come_back(finished.run_id).warning[0].value
    assert not come_back("not-a-run").warning and not come_back("not-a-run").exception


def test_the_open_connection_is_in_the_address_and_survives_a_reload(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.selectbox(key="conn_detail").set_value("Archive").run()
    assert at.query_params["connection"] in ("Archive", ["Archive"])

    def visit(query: str) -> AppTest:  # a new tab on /?connection=... (the Connections page is the default)
        at = oidc_app(identity("admin@example.com"))
        at.query_params["connection"] = query
        return at.run()

    reloaded = visit("Archive")
    assert reloaded.selectbox(key="conn_detail").value == "Archive" and reloaded.subheader[0].value == "Archive"
    assert visit("No such").selectbox(key="conn_detail").value is None


def test_console_actions_are_audited_from_the_browser_address(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    """Streamlit names no address for a browser on this machine: the trail says localhost, never blank.
    A run with failing products completed: its result is ok, its detail counts the failing ones."""
    seed(console_env, simulator)
    at = open_page(CONNECTIONS)
    at.button(key="conn_test_all").click().run()
    run = [e for e in audit.events(console_env.engine, ADMIN) if e.action == "check.run"][-1]
    assert run.client_address == "localhost" and run.actor == "admin@example.com"
    assert run.result == "ok" and run.detail.startswith("3 OK, 1 failing (run ")
