"""AppTest: a refused Connect never loses a pasted Client Secret without saying so.

Every refusal comes back with the secret field empty (the secret is kept nowhere: not in
session state, not in the page) and a note under that field to paste it again. Whatever can be
refused without 8x8 is refused before the secret is sent there: the simulator, on a real
socket, counts no token request for it. Real database file, real simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import delete as sql_delete
from streamlit.testing.v1 import AppTest

from lib.kernel.errors import ConflictError, ValidationError
from lib.services import connections
from lib.services.connections import linking
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import Connection
from tests.fixtures.console import ACCESS, PageOpener, identity, oidc_app, plain
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory, control
from tests.test_checks import form_for
from tests.test_pages import CONNECT, drawn_after, everything, fill, stored, submit, texts

NOT_KEPT = "Client Secret was not kept: paste it again"
KEEP_STORED = "or leave the field blank to keep the stored one"
Change = Callable[[AppTest, SimulatorServer, Runtime], None]


@dataclass(frozen=True)
class Refusal:
    change: Change  # made after the form is filled in, before Verify & save is pressed
    message: str  # part of the refusal, as the person reads it
    field: str | None = None  # the widget it is drawn under, when one field is at fault
    tokens: int | None = 0  # token requests 8x8 got (None: 8x8 is down, nothing to count)
    who: str | None = None  # who must act, when 8x8 answered or could not be asked
    products: tuple[str, ...] = ("cloud_storage", "cc_chat")


def typed(key: str, value: str) -> Change:
    def change(at: AppTest, _sim: SimulatorServer, _rt: Runtime) -> None:
        at.text_input(key=key).input(value)

    return change


def chosen(key: str, value: str | None) -> Change:
    def change(at: AppTest, _sim: SimulatorServer, _rt: Runtime) -> None:
        at.selectbox(key=key).set_value(value)

    return change


def pasted_wrong_secret(at: AppTest, _sim: SimulatorServer, _rt: Runtime) -> None:
    at.text_input(key="connect_client_secret").input(f"WRONG-SENTINEL-{uuid.uuid4().hex}")


def eight_by_eight_down(_at: AppTest, sim: SimulatorServer, _rt: Runtime) -> None:
    sim.stop()  # its port is closed: the connection is refused


def name_taken_in_other_case(at: AppTest, sim: SimulatorServer, rt: Runtime) -> None:
    connections.create(
        rt.engine,
        rt.vault,
        form_for(sim.scenario.apps[2], "Reporting", expected_products=("cloud_storage",)),
        actor=ADMIN,
    )
    at.text_input(key="connect_name").input("REPORTING")


def pbx(value: str) -> Change:
    def change(at: AppTest, sim: SimulatorServer, _rt: Runtime) -> None:
        at.selectbox(key="connect_qm_region").set_value(everything(sim).qm_region)
        at.text_input(key="connect_pbx").input(value)

    return change


ADDING: dict[str, Refusal] = {
    "duplicate name": Refusal(name_taken_in_other_case, "Another connection already has this name", "connect_name"),
    "bad name": Refusal(typed("connect_name", "Reporting\tEU"), "Remove tabs, line breaks", "connect_name"),
    "no name": Refusal(typed("connect_name", "  "), "Enter a name", "connect_name"),
    "no Client ID": Refusal(typed("connect_client_id", ""), "Paste the Client ID", "connect_client_id"),
    "bad Client ID": Refusal(typed("connect_client_id", "abc:def"), "cannot contain ':'", "connect_client_id"),
    "bad environment": Refusal(
        typed("connect_environment", "prod\tlab"), "printable characters", "connect_environment"
    ),
    "missing region": Refusal(
        chosen("connect_storage_region", None), "Cloud Storage Service needs it to be tested", "connect_storage_region"
    ),
    "missing tenant": Refusal(
        typed("connect_tenant_id", ""), "Contact Center Chat needs it to be tested", "connect_tenant_id"
    ),
    "bad tenant": Refusal(typed("connect_tenant_id", "tenant/1"), "letters, digits", "connect_tenant_id"),
    "bad PBX": Refusal(pbx("pbx one"), "letters, digits", "connect_pbx", products=("quality_management",)),
    "missing PBX": Refusal(
        pbx(""), "Quality Management needs it to be tested", "connect_pbx", products=("quality_management",)
    ),
    "8x8 unreachable": Refusal(
        eight_by_eight_down, "Could not ask 8x8 whether these credentials work", tokens=None, who="Who must act: "
    ),
    "8x8 refuses the token": Refusal(
        pasted_wrong_secret,
        "First check what you pasted as the Client ID and Client Secret",
        tokens=1,
        who="Who must act: 8x8 admin (Admin Console).",
    ),
}


def snapshot(rt: Runtime) -> list[tuple[str, int, str]]:
    return sorted((row.name, row.version, row.client_secret_enc) for row in stored(rt))


def token_requests(sim: SimulatorServer) -> int:
    return int(control(sim, "GET", "stats")["requests"]["token"])


def assert_refused_and_told_to_paste_again(at: AppTest, case: Refusal, pasted: str, *, editing: bool) -> None:
    assert not at.exception, at.exception
    errors = plain(" ".join(e.value for e in at.error))
    assert case.message in errors
    if case.who is not None:
        assert case.who in errors
    if case.field is not None:  # under its field, and in the summary with the field's name
        assert any(case.message in line for line in drawn_after(at, case.field))
        assert "Nothing was saved. Please fix:" in errors
    # Under the (empty) secret field, and beside the refusal: what happened to it, what to do.
    assert at.text_input(key="connect_client_secret").value == ""
    [note] = [line for line in drawn_after(at, "connect_client_secret") if NOT_KEPT in line]
    assert (KEEP_STORED in note) is editing
    assert NOT_KEPT in errors
    # The secret itself is nowhere: not in session state (widget values are), not on the page.
    assert pasted not in repr(at.session_state.to_dict())
    assert pasted not in texts(at)


@pytest.mark.parametrize("case", list(ADDING.values()), ids=list(ADDING))
def test_every_refusal_of_a_new_connection_says_to_paste_the_secret_again(
    case: Refusal, open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    at = fill(open_page(CONNECT), everything(simulator), products=case.products)
    case.change(at, simulator, console_env)
    before = snapshot(console_env)
    pasted = at.text_input(key="connect_client_secret").value
    assert pasted
    submit(at)
    if case.tokens is not None:
        assert token_requests(simulator) == case.tokens
    assert snapshot(console_env) == before
    assert_refused_and_told_to_paste_again(at, case, pasted, editing=False)


def test_a_refusal_then_the_secret_pasted_again_saves_with_one_token_request(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    app = everything(simulator)
    at = fill(open_page(CONNECT), app)
    at.selectbox(key="connect_storage_region").set_value(None)
    submit(at)
    assert NOT_KEPT in " ".join(drawn_after(at, "connect_client_secret"))
    at.selectbox(key="connect_storage_region").set_value("uk")
    at.text_input(key="connect_client_secret").input(app.client_secret)
    submit(at)
    assert "8x8 issued a token" in at.success[0].value and not at.error and not at.warning
    assert token_requests(simulator) == 1 and [row.name for row in stored(console_env)] == ["Reporting"]


# --- editing (/connect?edit=NAME) -------------------------------------------------------------


def edit_page(name: str) -> AppTest:
    """A tab opened on /connect?edit=NAME by the admin."""
    at = oidc_app(identity("admin@example.com")).run()
    at.query_params["edit"] = name
    return at.switch_page(CONNECT).run()


def rename_to_taken(at: AppTest, _sim: SimulatorServer, _rt: Runtime) -> None:
    at.text_input(key="connect_name").input("archive")


def changed_meanwhile(_at: AppTest, _sim: SimulatorServer, rt: Runtime) -> None:
    view = connections.find_by_name(rt.engine, "Prod")
    connections.update(
        rt.engine,
        rt.vault,
        view.id,
        connections.input_from_view(view, environment="lab"),
        expected_version=view.version,
        actor=ADMIN,
    )


def deleted_meanwhile(_at: AppTest, _sim: SimulatorServer, rt: Runtime) -> None:
    with write_session(rt.engine) as session:
        session.exec(sql_delete(Connection).where(Connection.name == "Prod"))  # type: ignore[call-overload]


EDITING: dict[str, Refusal] = {
    "rename to a taken name": Refusal(rename_to_taken, "Another connection already has this name", "connect_name"),
    "bad name": Refusal(typed("connect_name", "Prod\nEU"), "Remove tabs, line breaks", "connect_name"),
    "missing region": Refusal(
        chosen("connect_storage_region", None), "Cloud Storage Service needs it to be tested", "connect_storage_region"
    ),
    "changed by someone else meanwhile": Refusal(changed_meanwhile, "Somebody else changed this connection"),
    "deleted meanwhile": Refusal(deleted_meanwhile, "This connection no longer exists"),
    "8x8 unreachable": Refusal(eight_by_eight_down, "Could not ask 8x8", tokens=None, who="Who must act: "),
    "8x8 refuses the new secret": Refusal(
        pasted_wrong_secret,
        "the connection keeps its stored credentials. First check what you pasted as the Client Secret",
        tokens=1,
        who="Who must act: 8x8 admin (Admin Console).",
    ),
}


@pytest.fixture
def prod(simulator: SimulatorServer, console_env: Runtime) -> None:
    """Two connections: "Prod" (to edit) and "Archive"."""
    for app, name in ((everything(simulator), "Prod"), (simulator.scenario.apps[2], "Archive")):
        connections.create(
            console_env.engine,
            console_env.vault,
            form_for(app, name, expected_products=("cloud_storage",)),
            actor=ADMIN,
        )


@pytest.mark.parametrize("case", list(EDITING.values()), ids=list(EDITING))
def test_every_refusal_of_an_edit_with_a_new_secret_says_to_paste_it_again(
    case: Refusal, prod: None, simulator: SimulatorServer, console_env: Runtime
) -> None:
    at = edit_page("Prod")
    assert at.title[0].value == "Edit Prod"
    at.text_input(key="connect_client_secret").input(everything(simulator).client_secret)
    case.change(at, simulator, console_env)
    before = snapshot(console_env)
    pasted = at.text_input(key="connect_client_secret").value
    submit(at)
    if case.tokens is not None:
        assert token_requests(simulator) == case.tokens
    assert snapshot(console_env) == before
    assert_refused_and_told_to_paste_again(at, case, pasted, editing=True)


def test_an_edit_refused_with_a_blank_secret_has_nothing_to_paste_again(prod: None, simulator: SimulatorServer) -> None:
    """A blank secret on an edit keeps the stored one: nothing was lost, so nothing is said."""
    at = edit_page("Prod")
    at.text_input(key="connect_name").input("ARCHIVE")
    submit(at)
    assert "Another connection already has this name" in drawn_after(at, "connect_name")[0]
    assert not any("not kept" in line for line in drawn_after(at, "connect_client_secret"))
    assert "not kept" not in texts(at)
    assert token_requests(simulator) == 0


# --- who may, and the service every face uses -----------------------------------------------


def test_a_save_by_an_admin_demoted_meanwhile_sends_nothing_to_8x8_and_keeps_no_secret(
    open_page: PageOpener, simulator: SimulatorServer, console_env: Runtime
) -> None:
    at = fill(open_page(CONNECT), everything(simulator))
    at.secrets["access"] = {**ACCESS, "admin@example.com": "viewer"}
    submit(at)
    assert not at.exception and "Nothing was done" in " ".join(w.value for w in at.warning)
    assert everything(simulator).client_secret not in repr(at.session_state.to_dict())
    assert everything(simulator).client_secret not in texts(at)
    assert token_requests(simulator) == 0 and stored(console_env) == []


def test_the_service_refuses_what_needs_no_8x8_before_asking_it(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """lib.services.connections.linking.save, as the console and the CLI call it: a taken name (in another case), a
    name refused along with other fields, and a stale edit cost no token request."""
    app, prober = everything(simulator), prober_factory(simulator.url)
    view, _ = linking.save(runtime, prober, form_for(app, "Prod"), actor=ADMIN)
    assert token_requests(simulator) == 1
    with pytest.raises(ValidationError) as taken:
        linking.save(runtime, prober, form_for(app, "  pROD "), actor=ADMIN)
    assert [e.field for e in taken.value.errors] == ["name"] and token_requests(simulator) == 1
    with pytest.raises(ValidationError) as several:
        linking.save(runtime, prober, form_for(app, "PROD", client_id="a:b", tenant_id="x/y"), actor=ADMIN)
    assert [e.field for e in several.value.errors] == ["name", "client_id", "tenant_id"]
    connections.update(
        runtime.engine,
        runtime.vault,
        view.id,
        connections.input_from_view(view, environment="lab"),
        expected_version=view.version,
        actor=ADMIN,
    )
    with pytest.raises(ConflictError):
        linking.save(
            runtime,
            prober,
            connections.input_from_view(view, environment="prod"),
            actor=ADMIN,
            connection_id=view.id,
            expected_version=view.version,
        )
    renamed, _ = linking.save(
        runtime,
        prober,
        connections.input_from_view(view, name="prod"),
        actor=ADMIN,
        connection_id=view.id,
        expected_version=view.version + 1,
    )
    assert renamed.name == "prod"  # its own name, in another case, is not "taken"
    assert token_requests(simulator) == 2
