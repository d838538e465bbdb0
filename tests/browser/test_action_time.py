"""In a real browser, over the real WebSocket: every action drawn while signed in, then the
sign-in is ended or changed elsewhere (sign-out in another tab, a demotion or removal from the
shell, 44 minutes idle), then the action is clicked. It is refused, nothing changes, and the
audit trail shows no such action by that person.

The actions cover each way Streamlit runs code without the page: a fragment (a product's Test
button), dialogs (delete a connection, revoke an API token), widget callbacks (the connect form, the Users page) and deferred
downloads (exports, the audit CSV), next to plain buttons of the page body (Test all / shown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import BrowserContext, Download, Page, expect
from pydantic import SecretStr
from sqlalchemy import update

from lib.kernel.config import load_settings
from lib.services import connections
from lib.services.accounts import api_tokens, users
from lib.services.guard import audit
from lib.services.runtime import Runtime, open_runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import WebSession, utcnow
from tests.browser.conftest import (
    Console,
    ConsoleFactory,
    choose,
    keyed,
    open_path,
    sign_in,
    wait_for_app,
)
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import control
from tests.fixtures.server import PASSWORD
from tests.fixtures.waiting import eventually
from tests.test_checks import form_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def stage(console_factory: ConsoleFactory, sim: SimulatorServer) -> Iterator[tuple[Console, Runtime]]:
    """A server with two connections, the admin "ada" who will act, another admin and an
    operator "target" for the Users page; and a Runtime on the same database."""
    console = console_factory()
    runtime = open_runtime(load_settings(console.env))
    everything, _, storage_only = sim.scenario.apps
    for name, app in (("Everything", everything), ("Archive", storage_only)):
        connections.create(
            runtime.engine, runtime.vault, form_for(app, name, expected_products=("cloud_storage",)), actor=ADMIN
        )
    for name, role in (("ada", "admin"), ("root", "admin"), ("target", "operator")):
        users.add(runtime.engine, name, SecretStr(PASSWORD), role, actor=ADMIN, own_password=True)
    api_tokens.create(runtime.engine, "prometheus", "viewer", actor=ADMIN)
    yield console, runtime
    runtime.engine.dispose()


def _detail(page: Page, name: str) -> None:
    choose(page, "conn_detail", name)


def _filter(page: Page) -> None:
    keyed(page, "conn_search").locator("input").fill("Every")
    keyed(page, "conn_search").locator("input").press("Enter")
    wait_for_app(page)


def _connect_form(page: Page, sim: SimulatorServer) -> None:
    app = sim.scenario.apps[0]
    choose(page, "connect_products", "Cloud Storage Service")
    keyed(page, "connect_name").locator("input").fill("Fresh")
    keyed(page, "connect_client_id").locator("input").fill(app.client_id)
    keyed(page, "connect_client_secret").locator("input").fill(app.client_secret)
    choose(page, "connect_storage_region", "uk")


def _delete_dialog(page: Page) -> None:
    _detail(page, "Archive")
    keyed(page, "detail_delete").locator("button").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    keyed(page, "delete_confirm").locator("input").fill("Archive")  # sent with the click on Delete


def _revoke_dialog(page: Page) -> None:
    choose(page, "token_chosen", "prometheus")
    keyed(page, "token_revoke").locator("button").click()
    expect(page.get_by_role("dialog")).to_be_visible()


def _chosen_user(page: Page) -> None:
    choose(page, "user_chosen", "target")


def _new_user(page: Page) -> None:
    keyed(page, "user_new_name").locator("input").fill("newbie")
    keyed(page, "user_new_password").locator("input").fill("a brand new long phrase 5")


def _reset_form(page: Page) -> None:
    _chosen_user(page)
    keyed(page, "user_reset_password").locator("input").fill("a brand new long phrase 5")


def _role_form(page: Page) -> None:
    _chosen_user(page)
    choose(page, "user_role", "admin")


@dataclass(frozen=True)
class Action:
    path: str
    prepare: Callable[[Page, SimulatorServer], None]
    button: str  # the key of the button that does it
    audited_as: str
    download: bool = False


ACTIONS = {
    "product test (fragment)": Action(
        "connections", lambda p, s: _detail(p, "Everything"), "test_cloud_storage", "check.run"
    ),
    "test all": Action("connections", lambda p, s: None, "conn_test_all", "check.run"),
    "test shown": Action("connections", lambda p, s: _filter(p), "conn_test_shown", "check.run"),
    "test all products": Action("connections", lambda p, s: _detail(p, "Everything"), "detail_test_all", "check.run"),
    **{
        f"export {fmt}": Action("connections", lambda p, s: None, f"export_{fmt}", "export", download=True)
        for fmt in ("csv", "json", "xlsx")
    },
    "save a connection (callback)": Action("connect", _connect_form, "connect_submit", "connection.create"),
    "delete a connection (dialog)": Action(
        "connections", lambda p, s: _delete_dialog(p), "delete_confirm_button", "connection.delete"
    ),
    "add a user": Action("users", lambda p, s: _new_user(p), "user_add_submit", "user.add"),
    "set a role": Action("users", lambda p, s: _role_form(p), "user_set_role", "user.set_role"),
    "reset a password": Action("users", lambda p, s: _reset_form(p), "user_reset", "user.reset_password"),
    "remove a user": Action("users", lambda p, s: _chosen_user(p), "user_remove", "user.remove"),
    "revoke an API token (dialog)": Action(
        "tokens", lambda p, s: _revoke_dialog(p), "token_revoke_confirm", "token.revoke"
    ),
    "audit download": Action("audit", lambda p, s: None, "audit_csv", "audit.export", download=True),
}


def _sign_out_elsewhere(console: Console, runtime: Runtime, context: BrowserContext) -> None:
    other = context.new_page()
    open_path(other, console, "sign-out")
    keyed(other, "sign_out").locator("button").click()
    expect(other.get_by_text("You are signed out, in every tab")).to_be_visible()


def _idle(console: Console, runtime: Runtime, context: BrowserContext) -> None:
    with write_session(runtime.engine) as session:
        session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=44)))


def _shell(*args: str) -> Callable[[Console, Runtime, BrowserContext], None]:
    def run(console: Console, runtime: Runtime, context: BrowserContext) -> None:
        done = console.cli("users", *args)
        assert done.returncode == 0, done.stderr

    return run


def _nothing(console: Console, runtime: Runtime, context: BrowserContext) -> None:
    """The control: with the sign-in unchanged, every click does what it says."""


STALENESS = {
    "still signed in (control)": _nothing,
    "signed out in another tab": _sign_out_elsewhere,
    "demoted to viewer from the shell": _shell("set-role", "ada", "viewer"),
    "removed from the shell": _shell("remove", "ada"),
    "idle for 44 minutes": _idle,
}


def _confirm_password(page: Page, console: Console) -> None:
    open_path(page, console, "users")
    keyed(page, "reauth_password").locator("input").fill(PASSWORD)
    keyed(page, "reauth_confirm").locator("button").click()
    wait_for_app(page)
    expect(keyed(page, "user_add_submit")).to_be_visible()


@pytest.mark.parametrize("stale", list(STALENESS))
def test_every_action_drawn_before_the_sign_in_changed_is_refused(
    stale: str, stage: tuple[Console, Runtime], sim: SimulatorServer, context: BrowserContext, page: Page
) -> None:
    console, runtime = stage
    sign_in(page, console, path="connections")
    _confirm_password(page, console)
    tabs: dict[str, Page] = {}
    for name, action in ACTIONS.items():
        tab = context.new_page()
        open_path(tab, console, action.path)
        action.prepare(tab, sim)
        expect(keyed(tab, action.button)).to_be_visible()
        tabs[name] = tab
    users_before = [(u.username, u.role) for u in users.list_users(runtime.engine) if u.username != "ada"]
    requests_before = control(sim, "GET", "stats")["requests"]
    marker = len(audit.events(runtime.engine, ADMIN))

    STALENESS[stale](console, runtime, context)

    unchanged = STALENESS[stale] is _nothing  # the control case
    downloads: list[Download] = []
    for name, tab in tabs.items():
        action = ACTIONS[name]
        tab.on("download", lambda download: downloads.append(download))
        button = keyed(tab, action.button).locator("button").first
        if action.download and unchanged:
            with tab.expect_download():  # the file comes
                button.click()
        else:
            button.click()
        wait_for_app(tab)
        if action.download and not unchanged:  # refused: the button says so where the file would have come
            expect(keyed(tab, action.button).get_by_test_id("stDownloadButtonError")).to_be_visible()
        expect(tab.get_by_test_id("stException")).to_have_count(0)

    def done_by_ada() -> set[str]:
        return {e.action for e in audit.events(runtime.engine, ADMIN)[marker:] if e.actor == "ada"}

    if unchanged:
        expected = {action.audited_as for action in ACTIONS.values()}
        eventually(lambda: done_by_ada() >= expected, what=f"ada's actions {sorted(expected)} in the audit trail")
        assert len(downloads) == sum(action.download for action in ACTIONS.values())
        return
    assert not downloads, [d.suggested_filename for d in downloads]
    assert not done_by_ada() & {action.audited_as for action in ACTIONS.values()}, done_by_ada()
    assert sorted(v.name for v in connections.list_connections(runtime.engine)) == ["Archive", "Everything"]
    assert [(u.username, u.role) for u in users.list_users(runtime.engine) if u.username != "ada"] == users_before
    assert [t.revoked_at for t in api_tokens.list_tokens(runtime.engine, actor=ADMIN)] == [None]
    assert control(sim, "GET", "stats")["requests"] == requests_before  # 8x8 was not called either
