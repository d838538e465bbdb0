"""Single sign-on in a real browser against a real OpenID Provider (panva's oidc-provider,
started on 127.0.0.1 by tests/fixtures/oidc): discovery, the authorization-code flow with PKCE,
RS256-signed ID tokens checked by Streamlit's Authlib client, and RP-initiated logout.

Roles come from ``[access]``; refusals say why; sign-out ends every tab; the re-authentication a
sensitive action asks for goes through the provider; and a download reads Streamlit's signed
identity cookie the way the server does (``lib.ui.server.oidc_claims``, private Streamlit
pieces that an upgrade may move)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect
from sqlalchemy import update
from sqlmodel import col

from lib.services.guard.access import REAUTH_VALID
from lib.simulator import SimulatorServer
from lib.store.db import make_engine
from lib.store.models import WebSession, utcnow
from tests.browser.conftest import keyed, wait_for_app
from tests.browser.test_flows import add_connection
from tests.browser.test_sign_in import csp_errors, menu, open_menu_entry  # noqa: F401 (a fixture)
from tests.fixtures.oidc import Account, IdentityProvider, start_provider
from tests.fixtures.server import Server, free_port, start_server

pytestmark = pytest.mark.e2e

ADMIN = Account("ada@example.com", "ada's provider password")
COLLEAGUE = Account("bob@example.com", "bob's provider password")  # on the list by domain only
UNVERIFIED = Account("eve@example.com", "eve's provider password", email_verified=False)
STRANGER = Account("mallory@elsewhere.test", "mallory's provider password")
ACCESS = {ADMIN.email: "admin", "@example.com": "viewer"}
ADMIN_PAGES = {"Connect", "Users", "API tokens", "Audit"}


@dataclass(frozen=True)
class SSO:
    provider: IdentityProvider
    console: Server
    url: str  # the console as the browser reaches it: Streamlit's redirect URI names localhost


@pytest.fixture(scope="module")
def sso(sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSO]:
    folder = tmp_path_factory.mktemp("sso")
    port = free_port()
    provider = start_provider(folder, port, [ADMIN, COLLEAGUE, UNVERIFIED, STRANGER])
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(provider.secrets_toml(port, ACCESS))
    try:
        console = start_server({}, sim.url, "--secrets.files", str(secrets_file), port=port)
        try:
            add_connection(console, sim, "Head office")  # something to export
            yield SSO(provider, console, f"http://localhost:{port}")
        finally:
            console.stop()
    finally:
        provider.stop()


def audited(sso: SSO) -> list[tuple[str, str, str, str]]:
    """(action, actor, result, detail) of every audit event, from the console's own CLI."""
    done = sso.console.cli("audit", "--json")
    assert done.returncode == 0, done.stderr
    return [(e["action"], e["actor"], e["result"], e["detail"]) for e in json.loads(done.stdout)]


def provider_sign_in(page: Page, sso: SSO, account: Account) -> None:
    """The provider's own sign-in form, then back to the console."""
    page.wait_for_url(f"{sso.provider.issuer}/interaction/**")
    page.locator("#email").fill(account.email)
    page.locator("#password").fill(account.password)
    page.locator("#op-sign-in").click()
    page.wait_for_url(f"{sso.url}/**")
    wait_for_app(page)


def sign_in(page: Page, sso: SSO, account: Account) -> None:
    page.goto(sso.url)
    wait_for_app(page)
    keyed(page, "sign_in_oidc").get_by_role("button").click()
    provider_sign_in(page, sso, account)


def authorization_requests(page: Page, sso: SSO) -> list[dict[str, list[str]]]:
    """The query of every authorization request the page sends the provider, from now on."""
    seen: list[dict[str, list[str]]] = []

    def watch(request: Request) -> None:
        if request.url.startswith(f"{sso.provider.issuer}/auth?"):
            seen.append(parse_qs(urlsplit(request.url).query))

    page.on("request", watch)
    return seen


def signs_out_at_the_provider(page: Page, sso: SSO, button: str) -> None:
    """The sign-out button leads out of the provider too (RP-initiated logout), then back to
    the console's way in."""
    keyed(page, button).get_by_role("button").click()
    page.wait_for_url(f"{sso.provider.issuer}/session/end**")
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(f"{sso.url}/**")
    wait_for_app(page)
    expect(keyed(page, "sign_in_oidc")).to_be_visible()


def test_an_admin_on_the_list_signs_in_with_the_provider_and_acts_as_admin(
    sso: SSO, page: Page, browser: Browser, tmp_path: Path, csp_errors: list[str]
) -> None:
    asked = authorization_requests(page, sso)
    sign_in(page, sso, ADMIN)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    # The authorization-code flow with PKCE (the provider refuses it without), as Streamlit asks.
    assert len(asked) == 1
    assert asked[0]["response_type"] == ["code"] and asked[0]["code_challenge_method"] == ["S256"]
    assert asked[0]["redirect_uri"] == [f"{sso.url}/oauth2callback"] and "nonce" in asked[0]
    assert menu(page) >= ADMIN_PAGES | {f"Sign out ({ADMIN.email})"}

    open_menu_entry(page, "Audit")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    open_menu_entry(page, "Users")
    expect(page.get_by_text("People sign in with your company account")).to_be_visible()

    # A download is served from /media, which the server opens only to a live session: it finds
    # the session from Streamlit's signed identity cookie (lib.ui.server.oidc_claims).
    open_menu_entry(page, "Connections")
    with page.expect_download() as download:
        keyed(page, "export_csv").get_by_role("button").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.read_text().startswith("connection,") and "Head office" in saved.read_text()
    media = download.value.url
    assert urlsplit(media).path.startswith("/media/")
    assert page.request.get(media).ok
    stranger = browser.new_context()
    try:
        refused = stranger.request.get(media)
        assert refused.status == 403 and "Sign in to Switchboard first." in refused.text()
    finally:
        stranger.close()
    assert ("sign_in", ADMIN.email, "ok", "via oidc") in audited(sso)


def test_an_address_listed_by_its_domain_signs_in_as_viewer(sso: SSO, page: Page, csp_errors: list[str]) -> None:
    sign_in(page, sso, COLLEAGUE)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    entries = menu(page)
    assert f"Sign out ({COLLEAGUE.email})" in entries and not entries & ADMIN_PAGES
    page.goto(f"{sso.url}/audit")
    wait_for_app(page)
    expect(page.get_by_role("alert")).to_contain_text("Your role (viewer) may not read the audit trail.")
    expect(page.get_by_role("heading", name="Audit trail")).to_have_count(0)


@pytest.mark.parametrize(
    ("account", "why"),
    [
        (UNVERIFIED, "your identity provider has not verified this address"),
        (STRANGER, "adds your address (or your domain) to [access]"),
    ],
    ids=["email_verified false", "on no list"],
)
def test_an_identity_the_list_does_not_admit_is_refused_with_the_reason(
    sso: SSO, page: Page, account: Account, why: str, csp_errors: list[str]
) -> None:
    sign_in(page, sso, account)
    refusal = page.get_by_role("alert")
    expect(refusal).to_be_visible()
    shown = refusal.inner_text()
    assert f"{account.email} may not use Switchboard" in shown and why in shown
    expect(page.get_by_role("heading", name="Connections")).to_have_count(0)
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
    page.goto(f"{sso.url}/audit")  # nor by URL
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Audit trail")).to_have_count(0)
    expect(page.get_by_role("alert")).to_contain_text("may not use Switchboard")
    # Signing out there (to try another account) leaves through the provider.
    signs_out_at_the_provider(page, sso, "refused_sign_out")
    assert ("sign_in", account.email, "refused", "not on the [access] allow-list") in audited(sso)


def test_sign_out_ends_the_session_in_every_tab(
    sso: SSO, page: Page, context: BrowserContext, csp_errors: list[str]
) -> None:
    sign_in(page, sso, ADMIN)
    other = context.new_page()  # a new tab of the same browser is signed in already
    other.goto(f"{sso.url}/audit")
    wait_for_app(other)
    expect(other.get_by_role("heading", name="Audit trail")).to_be_visible()

    open_menu_entry(page, f"Sign out ({ADMIN.email})")
    other.reload()  # opening the Sign out page signs nobody out
    wait_for_app(other)
    expect(other.get_by_role("heading", name="Audit trail")).to_be_visible()
    signs_out_at_the_provider(page, sso, "sign_out")

    # The other tab, still open: its next click finds the session gone.
    keyed(other, "audit_action").get_by_role("combobox").click()
    other.get_by_role("option", name="sign_in", exact=True).click()
    expect(keyed(other, "sign_in_oidc")).to_be_visible(timeout=30000)
    expect(other.get_by_role("heading", name="Audit trail")).to_have_count(0)
    other.goto(f"{sso.url}/audit")
    wait_for_app(other)
    expect(keyed(other, "sign_in_oidc")).to_be_visible()
    expect(other.get_by_test_id("stDataFrame")).to_have_count(0)


def _proof_ages(sso: SSO, email: str) -> None:
    """Let the proof of identity that the sign-in gave grow older than REAUTH_VALID, as the
    clock would: the server's own database, its live sessions of ``email``."""
    engine = make_engine(sso.console.env["SWITCHBOARD_DATABASE_URL"])
    try:
        with engine.begin() as connection:
            connection.execute(
                update(WebSession)
                .where(col(WebSession.subject) == email, col(WebSession.ended_at).is_(None))
                .values(reauthenticated_at=utcnow() - REAUTH_VALID - timedelta(minutes=1))
            )
    finally:
        engine.dispose()


def test_a_sensitive_action_asks_for_a_fresh_sign_in_at_the_provider(
    sso: SSO, page: Page, csp_errors: list[str]
) -> None:
    made = sso.console.cli("tokens", "create", "--name", "prometheus-sso", "--role", "viewer")
    assert made.returncode == 0, made.stderr
    sign_in(page, sso, ADMIN)
    _proof_ages(sso, ADMIN.email)
    page.goto(f"{sso.url}/tokens")
    wait_for_app(page)
    expect(page.get_by_text("Confirm it is you to revoke API tokens.")).to_be_visible()
    expect(keyed(page, "token_chosen")).to_have_count(0)

    asked = authorization_requests(page, sso)
    keyed(page, "reauth_login").get_by_role("button").click()
    provider_sign_in(page, sso, ADMIN)  # the provider asks for the password again
    assert len(asked) == 1 and asked[0]["prompt"] == ["select_account"]

    page.goto(f"{sso.url}/tokens")
    wait_for_app(page)
    expect(page.get_by_text("Confirm it is you")).to_have_count(0)
    keyed(page, "token_chosen").get_by_role("combobox").click()
    page.get_by_role("option", name="prometheus-sso", exact=True).click()
    wait_for_app(page)
    keyed(page, "token_revoke").get_by_role("button").click()
    keyed(page, "token_revoke_confirm").get_by_role("button").click()
    wait_for_app(page)
    expect(keyed(page, "token_chosen")).to_have_count(0)  # no live token left to revoke
    listed = json.loads(sso.console.cli("tokens", "list", "--json").stdout)
    assert [t["revoked_at"] is not None for t in listed if t["name"] == "prometheus-sso"] == [True]
