"""Flows an admin goes through in a real browser, each in one go: deleting a connection
(password, then the typed name, in one opening of the dialog), a product's Test updating the
history, pages a role may not open answering with the role they need, and the Users page
keeping what was typed through an error and following the chosen user."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Locator, Page, expect

from lib.simulator import SimulatorServer
from tests.browser.conftest import Console, choose, keyed, open_path, sign_in, wait_for_app
from tests.browser.test_sign_in import menu
from tests.fixtures.server import PASSWORD

pytestmark = pytest.mark.e2e


def add_connection(console: Console, sim: SimulatorServer, name: str) -> None:
    app = sim.scenario.apps[0]
    added = console.cli(
        "connections",
        "add",
        "--name",
        name,
        "--client-id",
        app.client_id,
        "--secret-stdin",
        "--products",
        "cloud_storage",
        "--storage-region",
        "uk",
        stdin=app.client_secret + "\n",
    )
    assert added.returncode == 0, added.stderr


def confirm_password(page: Page, password: str, how: str) -> None:
    """Type the password and confirm it the way people do: a click, Enter, or Tab to Confirm."""
    box = keyed(page, "reauth_password").locator("input")
    box.press_sequentially(password)
    if how == "click":
        keyed(page, "reauth_confirm").locator("button").click()
    elif how == "enter":
        box.press("Enter")
    else:
        box.press("Tab")  # to "Show password"
        page.keyboard.press("Tab")  # to Confirm
        page.keyboard.press("Enter")
    wait_for_app(page)


@pytest.mark.parametrize("how", ["click", "enter", "tab"])
def test_delete_asks_the_password_then_the_name_in_one_opening(
    console: Console, sim: SimulatorServer, page: Page, how: str
) -> None:
    add_connection(console, sim, "Archive")
    sign_in(page, console, path="connections")
    choose(page, "conn_detail", "Archive")
    keyed(page, "detail_delete").locator("button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()

    confirm_password(page, "not the password at all", how)
    expect(dialog.get_by_role("alert")).to_contain_text(
        "That is not your password. Type the password you sign in with, then Confirm again."
    )
    expect(dialog).not_to_contain_text("user name")
    expect(keyed(page, "reauth_password").locator("input")).to_have_value("")
    expect(keyed(page, "delete_confirm")).to_have_count(0)

    confirm_password(page, PASSWORD, how)
    expect(dialog).to_be_visible()
    expect(keyed(page, "reauth_password")).to_have_count(0)
    keyed(page, "delete_confirm").locator("input").fill("Archive")
    keyed(page, "delete_confirm_button").locator("button").click()
    wait_for_app(page)
    expect(dialog).to_have_count(0)
    expect(page.get_by_text("Deleted Archive.")).to_be_visible()
    assert console.cli("connections", "list", "--json").stdout.strip() == "[]"


def expect_history_rows(history: Locator, rows: int) -> None:
    """The history table's row count, from the grid's accessible table (header row included)."""
    expect(history.get_by_test_id("stDataFrame").locator("table[role='grid']")).to_have_attribute(
        "aria-rowcount", str(rows + 1)
    )


def test_a_product_test_shows_in_the_history_at_once(console: Console, sim: SimulatorServer, page: Page) -> None:
    add_connection(console, sim, "Reporting")
    sign_in(page, console, path="connections")
    choose(page, "conn_detail", "Reporting")
    history = page.get_by_test_id("stExpander").filter(has_text="History")
    expect(history).to_have_count(0)  # nothing tested yet

    keyed(page, "test_cloud_storage").locator("button").click()
    wait_for_app(page)
    expect(keyed(page, "product_cloud_storage")).to_contain_text("OK")
    charts = page.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(2)  # the timeline, with its one mark, and the response times
    expect(charts.first).to_be_visible()
    history.get_by_text("History").click()
    expect_history_rows(history, 1)

    keyed(page, "test_cloud_storage").locator("button").click()
    wait_for_app(page)
    expect_history_rows(history, 2)


def test_an_operator_opening_admin_pages_by_url_reads_the_role_they_need(console: Console, page: Page) -> None:
    console.add_user("otto", "operator")
    sign_in(page, console, "otto", path="connections")
    assert not menu(page) & {"Connect", "Users", "Audit"}
    for path, what in (
        ("users", "manage users"),
        ("connect", "add, change or delete connections"),
        ("audit", "read the audit trail"),
    ):
        open_path(page, console, path)
        expect(page.get_by_role("alert")).to_contain_text(
            f"Your role (operator) may not {what}. Ask a Switchboard admin for the admin role if you need to."
        )
        assert page.url == f"{console.url}/{path}"  # not sent to the main page
        expect(page.get_by_text("Page not found")).to_have_count(0)
        expect(page.get_by_role("heading", name="Connections")).to_have_count(0)
        expect(keyed(page, "connect_submit")).to_have_count(0)
        expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
        assert not menu(page) & {"Connect", "Users", "Audit"}


def test_the_add_user_form_keeps_name_and_role_through_an_error(console: Console, page: Page) -> None:
    sign_in(page, console, path="users")
    confirm_password(page, PASSWORD, "click")
    name, password = keyed(page, "user_new_name").locator("input"), keyed(page, "user_new_password").locator("input")
    role = keyed(page, "user_new_role").get_by_role("combobox")
    name.fill("newbie")
    choose(page, "user_new_role", "operator")
    password.fill("short")
    keyed(page, "user_add_submit").locator("button").click()
    wait_for_app(page)
    expect(page.get_by_role("alert").filter(has_text="Use at least 12 characters")).to_be_visible()
    expect(name).to_have_value("newbie")
    expect(role).to_have_value("operator")
    expect(password).to_have_value("")  # never kept
    expect(page.get_by_text("Session State API")).to_have_count(0)  # no widget warning either

    password.fill("a brand new long phrase 5")
    password.press("Enter")
    wait_for_app(page)
    expect(page.get_by_text("Added newbie as operator.")).to_be_visible()
    expect(name).to_have_value("")
    expect(role).to_have_value("viewer")
    assert {u["username"]: u["role"] for u in json.loads(console.cli("users", "list", "--json").stdout)} == {
        "ada": "admin",
        "newbie": "operator",
    }


def test_the_role_shown_is_the_chosen_users(console: Console, page: Page) -> None:
    """The role box follows the chosen user, and after a refused change shows the stored role."""
    console.add_user("otto", "operator")
    console.add_user("val", "viewer")
    sign_in(page, console, path="users")
    confirm_password(page, PASSWORD, "click")
    role = keyed(page, "user_role").get_by_role("combobox")
    choose(page, "user_chosen", "otto")
    expect(role).to_have_value("operator")
    choose(page, "user_chosen", "val")
    expect(role).to_have_value("viewer")
    keyed(page, "user_set_role").locator("button").click()  # sets what is shown: val stays a viewer
    wait_for_app(page)
    expect(page.get_by_text("val is now viewer.")).to_be_visible()
    choose(page, "user_chosen", "ada")  # the only admin
    choose(page, "user_role", "viewer")
    keyed(page, "user_set_role").locator("button").click()
    wait_for_app(page)
    expect(page.get_by_role("alert").filter(has_text="admin")).to_be_visible()  # refused, and why
    expect(role).to_have_value("admin")
    stored = {u["username"]: u["role"] for u in json.loads(console.cli("users", "list", "--json").stdout)}
    assert stored == {"ada": "admin", "otto": "operator", "val": "viewer"}, stored
