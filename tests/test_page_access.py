"""Who sees which page (AppTest, real database). Page scripts are also run directly, as
Streamlit's legacy pages/ mode does for a deep link, so each page's own guard is what decides.

Signed-in identities are injected the OIDC way (see tests/fixtures/console.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from lib.services.accounts import api_tokens, sessions
from lib.services.content.navigation import PAGES, hidden_from, visible_to
from lib.services.guard import audit
from lib.services.guard.access import Principal, Role
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import WebSession, utcnow
from tests.fixtures.console import ACCESS, PageOpener, identity, oidc_app, plain
from tests.fixtures.people import ADMIN
from tests.test_pages import seed

ROOT = Path(__file__).resolve().parent.parent
PROTECTED = [p.script for p in PAGES if p.needs is not None]


def words(at: AppTest) -> str:
    """The text of what the page shows: headings, markdown, captions, alerts."""
    kinds = (at.title, at.subheader, at.markdown, at.caption, at.error, at.info, at.success, at.warning)
    return "\n".join(str(element.value) for kind in kinds for element in kind)


def run_page(script: str, at: AppTest) -> AppTest:
    """Run one page file the way a deep link can: without app.py."""
    page = AppTest.from_file(str(ROOT / script), default_timeout=30)
    page.secrets, page.user = at.secrets, at.user
    return page.run()


@pytest.mark.parametrize("script", PROTECTED)
def test_local_mode_without_a_session_shows_only_the_way_to_sign_in(
    script: str, console_env: Runtime, simulator: SimulatorServer
) -> None:
    seed(console_env, simulator)
    at = AppTest.from_file(str(ROOT / script), default_timeout=30).run()
    assert not at.exception
    shown = words(at)
    assert "Sign in to continue" in shown and "/account/sign-in" in shown
    assert "Everything" not in shown and not at.dataframe and not at.button


@pytest.mark.parametrize("script", PROTECTED)
def test_oidc_mode_signed_out_shows_only_the_sign_in_button(
    script: str, console_env: Runtime, simulator: SimulatorServer
) -> None:
    seed(console_env, simulator)
    at = run_page(script, oidc_app(None))
    assert not at.exception
    assert [b.key for b in at.button] == ["sign_in_oidc"]
    assert "Everything" not in words(at) and not at.dataframe


UNVERIFIED = {key: value for key, value in identity("ann@example.com").items() if key != "email_verified"}


@pytest.mark.parametrize(
    "user",
    [
        identity("eve@elsewhere.org"),
        identity("ann@example.com", email_verified=False),
        identity("ann@example.com", email_verified="false"),
        UNVERIFIED,
        identity("ann@example.com", email_verified=1),
        identity(""),
    ],
    ids=["elsewhere", "unverified", "the string false", "no claim", "one", "no e-mail"],
)
def test_an_identity_outside_the_allow_list_is_refused_and_audited(
    user: dict[str, object], console_env: Runtime, simulator: SimulatorServer
) -> None:
    seed(console_env, simulator)
    at = oidc_app(user).run()
    assert not at.exception
    assert "may not use Switchboard" in plain(at.error[0].value)
    assert [b.key for b in at.button] == ["refused_sign_out"] and not at.dataframe
    refused = [e for e in audit.events(console_env.engine, ADMIN) if e.action == "sign_in"]
    assert [(e.result, e.detail) for e in refused] == [("refused", "not on the [access] allow-list")]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (
            "admin@example.com",
            {
                "pages/connections.py",
                "pages/connect.py",
                "pages/monitoring.py",
                "pages/users.py",
                "pages/tokens.py",
                "pages/audit.py",
            },
        ),
        ("operator@example.com", {"pages/connections.py", "pages/monitoring.py"}),
        ("anyone@example.com", {"pages/connections.py", "pages/monitoring.py"}),  # the domain entry: viewer
    ],
)
def test_each_role_reaches_only_its_pages(
    who: str, allowed: set[str], console_env: Runtime, simulator: SimulatorServer
) -> None:
    seed(console_env, simulator)
    signed_in = oidc_app(identity(who))
    for script in PROTECTED:
        at = run_page(script, signed_in)
        assert not at.exception, (script, at.exception)
        refused = [e.value for e in at.error if "may not" in e.value]
        if script in allowed:
            assert not refused, (who, script)
        else:
            assert refused and "Ask a Switchboard admin" in refused[0], (who, script)
            assert not at.dataframe and not at.text_input


def test_navigation_lists_only_the_pages_a_role_may_open() -> None:
    titles = lambda who: {p.title for p in visible_to(who)}
    assert titles(None) == {"Setup guide"}
    assert titles(Principal("v", Role.VIEWER)) == {"Connections", "Monitoring", "Setup guide"}
    assert titles(Principal("o", Role.OPERATOR)) == {"Connections", "Monitoring", "Setup guide"}
    assert titles(Principal("a", Role.ADMIN)) == {
        "Connections",
        "Connect",
        "Monitoring",
        "Users",
        "API tokens",
        "Audit",
        "Setup guide",
    }


@pytest.mark.parametrize("who", ["operator@example.com", "anyone@example.com"])
def test_a_page_the_role_may_not_open_by_link_says_which_role_it_needs(
    who: str, console_env: Runtime, simulator: SimulatorServer
) -> None:
    """Through app.py (the router), as a link from anywhere opens it: the page's own role
    message, not Streamlit's "page not found" and a detour to the main page."""
    seed(console_env, simulator)
    role = Role(ACCESS[who] if who in ACCESS else ACCESS["@example.com"])
    forbidden = hidden_from(Principal(who, role))
    assert {p.script for p in forbidden} == {"pages/connect.py", "pages/users.py", "pages/tokens.py", "pages/audit.py"}
    for spec in forbidden:
        at = oidc_app(identity(who)).run()
        at.switch_page(spec.script).run()
        assert not at.exception, (spec.script, at.exception)
        refusal = f"Your role ({role}) may not {spec.needs}. Ask a Switchboard admin for the admin role if you need to."
        assert [e.value for e in at.error] == [refusal]
        assert not at.dataframe and not at.text_input and not at.title, spec.script


def test_the_pages_a_role_may_not_open_are_routed_but_not_listed() -> None:
    for who in (None, Principal("v", Role.VIEWER), Principal("o", Role.OPERATOR), Principal("a", Role.ADMIN)):
        listed, hidden = visible_to(who), hidden_from(who)
        assert sorted(p.url_path for p in (*listed, *hidden)) == sorted(p.url_path for p in PAGES)
        assert not set(listed) & set(hidden)


def test_buttons_follow_the_role(open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer) -> None:
    seed(console_env, simulator)
    viewer = open_page("pages/connections.py", "anyone@example.com")
    viewer.selectbox(key="conn_detail").select("Everything").run()
    keys = {b.key for b in viewer.button}
    assert not keys & {"conn_test_all", "detail_test_all", "detail_edit", "detail_delete", "test_cloud_storage"}
    assert not viewer.get("download_button")
    operator = open_page("pages/connections.py", "operator@example.com")
    operator.selectbox(key="conn_detail").select("Everything").run()
    keys = {b.key for b in operator.button}
    assert {"conn_test_all", "detail_test_all", "test_cloud_storage"} <= keys
    assert not keys & {"detail_edit", "detail_delete"}


def test_the_audit_page_filters_and_shows_rows(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer
) -> None:
    seed(console_env, simulator)
    at = open_page("pages/audit.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert {"connection.create", "sign_in"} <= set(table["action"])
    at.multiselect(key="audit_action").set_value(["connection.create"]).run()
    assert set(at.dataframe[0].value["action"]) == {"connection.create"}


def test_the_tokens_page_lists_tokens_and_revokes_one_after_a_confirmation(
    open_page: PageOpener, console_env: Runtime
) -> None:
    made = {
        name: api_tokens.create(console_env.engine, name, role, actor=ADMIN).token.get_secret_value()
        for name, role in (("prometheus", "viewer"), ("grafana", "operator"))
    }
    api_tokens.revoke(console_env.engine, "grafana", actor=ADMIN)
    at = open_page("pages/tokens.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Name"]) == ["grafana", "prometheus"] and list(table["Role"]) == ["operator", "viewer"]
    assert table["Revoked"].str.endswith(" UTC").tolist() == [True, False] and table["Revoked"][1] == "—"
    assert "switchboard tokens create" in at.code[0].value
    assert at.selectbox(key="token_chosen").options == ["prometheus"]  # live tokens only
    at.selectbox(key="token_chosen").select("prometheus").run()
    at.button(key="token_revoke").click().run()
    assert "refused at their next request" in words(at)
    assert api_tokens.list_tokens(console_env.engine, actor=ADMIN)[1].revoked_at is None  # nothing until confirmed
    at.button(key="token_revoke_confirm").click().run()
    assert not at.exception
    assert all(v.revoked_at is not None for v in api_tokens.list_tokens(console_env.engine, actor=ADMIN))
    shown = repr([*at.main, *at.sidebar]) + repr(at.session_state.to_dict())
    for token in made.values():
        assert token not in shown and token.removeprefix("sbt_") not in shown
    revoked = [e for e in audit.events(console_env.engine, ADMIN) if e.action == "token.revoke"]
    assert [(e.actor, e.target) for e in revoked] == [(ADMIN.name, "grafana"), ("admin@example.com", "prometheus")]


def test_sign_out_ends_the_session_in_every_tab(console_env: Runtime) -> None:
    """One tab signs out (the sign-out page calls sessions.end; the browser test clicks it);
    the other tab, same identity cookie, is signed out at its next click."""
    claims = identity("admin@example.com")
    oidc_app(dict(claims)).run()
    second_tab = oidc_app(dict(claims)).run()
    assert not second_tab.exception and "Sign in to continue" not in words(second_tab)
    sessions.end(console_env.engine, sessions.oidc_key(claims), Principal("admin@example.com", Role.ADMIN, via="oidc"))
    second_tab.run()  # its next click
    assert [b.key for b in second_tab.button] == ["sign_in_oidc"]
    assert [e.action for e in audit.events(console_env.engine, ADMIN)].count("sign_out") == 1


def test_an_idle_session_ends(console_env: Runtime) -> None:
    claims = identity("admin@example.com")
    at = oidc_app(dict(claims)).run()
    assert "Sign in to continue" not in words(at)
    with write_session(console_env.engine) as session:
        session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    at.run()
    assert [b.key for b in at.button] == ["sign_in_oidc"]
    assert [e.detail for e in audit.events(console_env.engine, ADMIN) if e.action == "session.expired"] == [
        "idle timeout"
    ]


def test_a_bad_allow_list_stops_with_the_reason(console_env: Runtime) -> None:
    at = oidc_app(identity("admin@example.com"))
    at.secrets["access"] = {"admin@example.com": "superuser"}
    at.run()
    assert not at.exception
    assert "has role 'superuser'; use one of: admin, operator, viewer" in plain(at.error[0].value)
    assert not at.dataframe and not at.button
