"""Sign-in in a real browser: the gate on a fresh server, the setup code, sessions that survive
reloads and new tabs, sign-out in every tab, pages a viewer cannot reach by URL, and a session
cookie that a page on another port cannot swap. Every page load is also watched for
Content-Security-Policy violations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Cookie, Page, expect

from lib.services.accounts.sessions import COOKIE_NAME
from lib.services.content.navigation import protected_paths
from lib.web.cookie import HOST_COOKIE, PROBE
from tests.browser.conftest import TLS_HOST, Console, ConsoleFactory, keyed, sign_in, wait_for_app
from tests.fixtures.receiver import Answer, Receiver
from tests.fixtures.server import PASSWORD

pytestmark = pytest.mark.e2e


def _sections(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("navigation", name="App pages").get_by_role("button")


def menu(page: Page) -> set[str]:
    """Every entry of the top menu (sections open on click)."""
    entries: set[str] = set()
    sections = _sections(page)
    for index in range(sections.count()):
        sections.nth(index).click()
        page.get_by_role("menu").wait_for()
        # An entry's text is its icon's ligature name, then its title.
        entries |= {text.split("\n")[-1].strip() for text in page.get_by_role("menuitem").all_inner_texts()}
        page.keyboard.press("Escape")
        expect(page.get_by_role("menu")).to_have_count(0)
    return entries


def open_menu_entry(page: Page, name: str) -> None:
    sections = _sections(page)
    for index in range(sections.count()):
        sections.nth(index).click()
        page.get_by_role("menu").wait_for()
        entry = page.get_by_role("menuitem", name=name)
        if entry.count():
            entry.click()
            wait_for_app(page)
            return
        page.keyboard.press("Escape")
        expect(page.get_by_role("menu")).to_have_count(0)
    raise AssertionError(f"no menu entry {name!r}")


@pytest.fixture
def csp_errors(context: BrowserContext) -> Iterator[list[str]]:
    """Console messages about blocked content; the test fails if any appear."""
    seen: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen.append(message.text)

    context.on("console", watch)
    yield seen
    assert not seen, seen


def test_a_fresh_server_shows_only_the_way_in(
    console_factory: ConsoleFactory, page: Page, csp_errors: list[str]
) -> None:
    server = console_factory()
    for path in sorted(protected_paths()):  # before anyone opened "/": the legacy pages/ trap
        page.goto(f"{server.url}{path}")
        expect(page.get_by_test_id("setup-form")).to_be_visible()
        expect(page.locator("[data-testid='stApp']")).to_have_count(0)
    server.add_user("ada", "admin")
    for path in sorted(protected_paths()):
        page.goto(f"{server.url}{path}")
        expect(page.get_by_test_id("sign-in-form")).to_be_visible()
        expect(page.locator("[data-testid='stApp']")).to_have_count(0)


def test_the_setup_code_creates_the_first_admin(
    console_factory: ConsoleFactory, page: Page, csp_errors: list[str]
) -> None:
    server = console_factory()
    page.goto(f"{server.url}/connections")
    page.locator("#setup_code").fill(server.setup_code())
    page.locator("#username").fill("ada")
    page.locator("#password").fill(PASSWORD)
    page.locator("#password_again").fill(PASSWORD)
    page.get_by_test_id("setup-submit").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    assert menu(page) >= {"Connections", "Connect", "Users", "API tokens", "Audit", "Setup guide"}
    assert PASSWORD not in page.content()
    listed = server.cli("users", "list", "--json").stdout
    assert '"ada"' in listed and '"admin"' in listed


def test_sign_in_survives_reload_and_new_tab_and_sign_out_ends_every_tab(
    console: Console, page: Page, context: BrowserContext, csp_errors: list[str]
) -> None:
    sign_in(page, console, path="connections")
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    page.reload()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    other = context.new_page()
    other.goto(f"{console.url}/audit")
    wait_for_app(other)
    expect(other.get_by_role("heading", name="Audit trail")).to_be_visible()

    open_menu_entry(page, "Sign out (ada)")
    # Opening the page signs nobody out (a link from another site could open it): a click does.
    other.reload()
    wait_for_app(other)
    expect(other.get_by_role("heading", name="Audit trail")).to_be_visible()
    keyed(page, "sign_out").get_by_role("button").click()
    wait_for_app(page)
    expect(page.get_by_text("You are signed out, in every tab")).to_be_visible()

    # The other tab, still open: its next click finds the session gone.
    keyed(other, "audit_action").get_by_role("combobox").click()
    other.get_by_role("option", name="sign_in", exact=True).click()
    expect(other.get_by_text("Sign in to continue")).to_be_visible()
    expect(other.get_by_test_id("stDataFrame")).to_have_count(0)
    # And a reload lands on the sign-in page.
    other.reload()
    expect(other.get_by_test_id("sign-in-form")).to_be_visible()
    page.get_by_test_id("sign-in-again").click()
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()
    expect(page.get_by_text("You are signed out.")).to_be_visible()


def test_a_viewer_cannot_reach_connect_users_tokens_or_audit_by_url(
    console: Console, page: Page, csp_errors: list[str]
) -> None:
    """Each such link says which role the page needs and who grants it (the page is routed,
    out of the menu, rather than "page not found")."""
    console.add_user("val", "viewer")
    sign_in(page, console, "val", path="connections")
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    assert not menu(page) & {"Connect", "Users", "API tokens", "Audit"}
    for path, what in (
        ("connect", "add, change or delete connections"),
        ("users", "manage users"),
        ("tokens", "manage users"),
        ("audit", "read the audit trail"),
    ):
        page.goto(f"{console.url}/{path}")
        wait_for_app(page)
        expect(page.get_by_role("alert")).to_contain_text(
            f"Your role (viewer) may not {what}. Ask a Switchboard admin for the admin role if you need to."
        )
        expect(keyed(page, "connect_submit")).to_have_count(0)
        expect(page.get_by_role("heading", name="Audit trail")).to_have_count(0)
        expect(page.get_by_role("heading", name="Users")).to_have_count(0)
        expect(page.get_by_role("heading", name="API tokens")).to_have_count(0)
        expect(page.get_by_test_id("stDataFrame")).to_have_count(0)


def test_a_wrong_password_says_so_without_naming_the_account(
    console: Console, page: Page, csp_errors: list[str]
) -> None:
    page.goto(f"{console.url}/connections")
    page.locator("#username").fill("ada")
    page.locator("#password").fill("not the password at all")
    page.get_by_test_id("sign-in-submit").click()
    expect(page.get_by_test_id("account-notice")).to_have_text("The user name or password is not right.")
    expect(page.locator("#password")).to_have_value("")


def test_someone_an_admin_added_chooses_their_own_password_at_the_first_sign_in(
    console: Console, page: Page, csp_errors: list[str]
) -> None:
    console.add_user("newbie", "operator", set_by_admin=True)  # as `switchboard users add` or the Users page do
    page.goto(f"{console.url}/connections")
    page.locator("#username").fill("newbie")
    page.locator("#password").fill(PASSWORD)
    page.get_by_test_id("sign-in-submit").click()
    expect(page.get_by_test_id("password-form")).to_be_visible()
    assert page.url == f"{console.url}/account/password?next=/connections"
    expect(page.get_by_text("An admin chose your password.")).to_be_visible()
    # The console itself opens nothing else, however it is reached (here the public guide).
    page.goto(f"{console.url}/guide")
    wait_for_app(page)
    expect(page.get_by_role("alert")).to_contain_text("An admin set your password, so choose your own")
    expect(page.get_by_role("navigation", name="App pages")).to_have_count(0)
    page.get_by_test_id("change-password-link").click()

    expect(page.get_by_test_id("password-form")).to_be_visible()
    page.locator("#current_password").fill("not my password at all")
    page.locator("#new_password").fill("a password of my very own 7")
    page.locator("#new_password_again").fill("a password of my very own 7")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("account-notice")).to_contain_text("Current password: This is not your current")
    expect(page.locator("#current_password")).to_have_value("")  # a refused form keeps no password
    page.locator("#current_password").fill(PASSWORD)
    page.locator("#new_password").fill("a password of my very own 7")
    page.locator("#new_password_again").fill("a password of my very own 7")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("account-notice")).to_have_text("Your password is changed.")
    page.get_by_test_id("password-continue").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    assert "Change password" in menu(page)  # for a later change, next to Sign out
    open_menu_entry(page, "Change password")
    page.get_by_test_id("change-password-link").click()
    expect(page.get_by_test_id("password-form")).to_be_visible()
    expect(page.get_by_text("An admin chose your password.")).to_have_count(0)
    assert "a password of my very own 7" not in page.content()


def test_the_users_page_shows_each_last_sign_in(console: Console, page: Page, csp_errors: list[str]) -> None:
    console.add_user("newbie", "viewer", set_by_admin=True)
    sign_in(page, console, path="users")
    keyed(page, "reauth_password").locator("input").fill(PASSWORD)
    keyed(page, "reauth_confirm").locator("button").click()
    wait_for_app(page)
    # The grid draws on a canvas; its accessible copy is the table inside it.
    grid = page.get_by_test_id("stDataFrame").locator("table[role='grid']")
    expect(grid.locator("th[aria-colindex='4']")).to_have_text("Last sign-in")
    last_sign_in = {
        name: grid.locator("tr", has=page.locator("td[aria-colindex='1']", has_text=name)).locator(
            "td[aria-colindex='4']"
        )
        for name in ("ada", "newbie")
    }
    expect(last_sign_in["newbie"]).to_have_text("Never")
    expect(last_sign_in["ada"]).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    expect(grid.locator("tr", has_text="newbie")).to_contain_text("(set by an admin, not yet changed)")


# --- Issue 21, item 12: a page on another port of the same host cannot swap the session --------


def _token_of(server: Console, username: str) -> str:
    """A sign-in of ``username`` from another browser: its session token (a valid one, for the
    other port to plant)."""
    with server.client() as client:
        answer = client.post("/account/sign-in", data={"username": username, "password": PASSWORD, "next": "/"})
        return answer.headers["set-cookie"].split(";")[0].partition("=")[2]


def _open_other_port(page: Page, url: str, times: int) -> None:
    """Open ``url``, a page on another port (by a form posted to it: the receiver answers
    POSTs), ``times`` times; its answers set cookies. The form is on a blank page: the
    console's own pages may post forms only to the console."""
    for _ in range(times):
        page.goto("about:blank")
        page.set_content(f'<form method="post" action="{url}"><button>go</button></form>')
        with page.expect_navigation():
            page.locator("button").click()


def _cookies(context: BrowserContext) -> dict[str, Cookie]:
    return {cookie["name"]: cookie for cookie in context.cookies()}


def test_a_page_on_another_port_cannot_swap_the_session_on_loopback(
    console: Console, page: Page, context: BrowserContext
) -> None:
    """Chromium keeps a __Host- cookie on http://127.0.0.1 (a secure origin to it), so the
    console's session cookie is one, and the plain name another port can set is never read."""
    console.add_user("oscar", "operator")
    oscar = _token_of(console, "oscar")
    sign_in(page, console, path="connections")
    kept = _cookies(context)
    assert COOKIE_NAME not in kept, kept
    assert (kept[HOST_COOKIE]["secure"], kept[HOST_COOKIE]["httpOnly"], kept[HOST_COOKIE]["path"]) == (True, True, "/")
    with Receiver(Answer(200, {"Set-Cookie": f"{COOKIE_NAME}={oscar}; Path=/"})) as other_port:
        _open_other_port(page, other_port.url("/"), 1)
    assert _cookies(context)[COOKIE_NAME]["value"] == oscar  # the browser took it, and sends it to us
    page.goto(f"{console.url}/connections")
    wait_for_app(page)
    assert "Sign out (ada)" in menu(page) and "Users" in menu(page)  # still the admin


def test_over_https_a_page_on_another_port_cannot_set_or_replace_the_session_cookie(
    console_factory: ConsoleFactory, browser: Browser
) -> None:
    """The console over https on a host name; a plain-http page on another port of that host
    tries both names (the operator's valid token): Chromium refuses the __Host- one, and the
    server never reads the other."""
    server = console_factory(tls_names=(TLS_HOST,))
    server.add_user("ada", "admin")
    server.add_user("oscar", "operator")
    oscar = _token_of(server, "oscar")
    https = replace(server, url=server.url.replace("127.0.0.1", TLS_HOST))
    context = browser.new_context(ignore_https_errors=True)  # the throwaway CA is the test's own
    try:
        page = context.new_page()
        sign_in(page, https, path="connections")
        ours = _cookies(context)[HOST_COOKIE]["value"]
        assert PROBE not in _cookies(context)  # over https no probe is needed
        with Receiver(
            Answer(200, {"Set-Cookie": f"{HOST_COOKIE}={oscar}; Secure; Path=/"}),
            Answer(200, {"Set-Cookie": f"{COOKIE_NAME}={oscar}; Path=/"}),
        ) as other_port:
            _open_other_port(page, other_port.url("/", host=TLS_HOST), 2)
        kept = _cookies(context)
        assert kept[HOST_COOKIE]["value"] == ours and kept[COOKIE_NAME]["value"] == oscar
        page.goto(f"{https.url}/connections")
        wait_for_app(page)
        assert "Sign out (ada)" in menu(page) and "Users" in menu(page)
    finally:
        context.close()


def test_a_password_change_gives_the_browser_a_new_session_cookie(
    console: Console, page: Page, context: BrowserContext
) -> None:
    sign_in(page, console, path="connections")
    before = _cookies(context)[HOST_COOKIE]["value"]
    page.goto(f"{console.url}/account/password")
    page.locator("#current_password").fill(PASSWORD)
    page.locator("#new_password").fill("a password of my very own 7")
    page.locator("#new_password_again").fill("a password of my very own 7")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("account-notice")).to_have_text("Your password is changed.")
    after = _cookies(context)[HOST_COOKIE]["value"]
    assert after != before
    with console.client() as thief:  # the old cookie, copied before the change
        assert thief.get("/connections", headers={"Cookie": f"{COOKIE_NAME}={before}"}).status_code == 303
    page.get_by_test_id("password-continue").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
