"""Who is using this browser tab, checked on every run, and the sign-in prompts.

Local accounts: the HttpOnly session cookie set by /account/sign-in names a server-side
session. OIDC (``[auth]`` in secrets.toml): Streamlit's identity cookie says who it is, the
``[access]`` allow-list says whether they may come in, and a server-side session row keyed by
the ID token adds what Streamlit lacks: idle and absolute limits, and sign-out in every tab.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import streamlit as st
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from lib.kernel.errors import ConfigError, SwitchboardError
from lib.services.accounts import sessions, users
from lib.services.accounts.allow_list import AllowList
from lib.services.accounts.sessions import Limits
from lib.services.guard import audit
from lib.services.guard.access import Principal, Role
from lib.services.runtime import Runtime
from lib.ui.server import oidc_configured

SIGN_IN_URL = "/account/sign-in"
CHANGE_PASSWORD_URL = "/account/password"  # a password travels only to the server's own page


def _limits(rt: Runtime) -> Limits:
    return Limits(rt.settings.session_idle, rt.settings.session_lifetime)


LOCAL = "localhost"  # what Streamlit tells of a browser on this machine


def _address() -> str:
    address = st.context.ip_address  # the WebSocket's peer (after our trusted-proxy rule); None for loopback
    return address if isinstance(address, str) and address else LOCAL


def _token() -> str | None:
    token = st.context.cookies.get(sessions.COOKIE_NAME)
    return token if isinstance(token, str) and token else None


def _claims() -> dict[str, object]:
    return {key: st.user.get(key) for key in ("iss", "sub", "iat", "nonce", "email", "email_verified")}


def _issued_at(claims: dict[str, object]) -> datetime | None:
    iat = claims.get("iat")
    return datetime.fromtimestamp(float(iat), UTC) if isinstance(iat, int | float) else None


@dataclass(frozen=True)
class Caller:
    """The browser session behind a script run, as something that outlives the run (a deferred
    download) may remember it: the session key's digest and the client address. Never the
    cookie, never a principal: who that is gets worked out again when it matters."""

    key: sessions.Key | None
    address: str | None


def this_caller() -> Caller:
    """The session of the browser this script run serves."""
    if oidc_configured():
        key = sessions.oidc_key(_claims()) if st.user.get("is_logged_in", False) else None
    else:
        token = _token()
        key = sessions.Key.of(token) if token else None
    return Caller(key, _address())


def _allow_list() -> AllowList:
    return AllowList.parse(st.secrets.get("access", {}))


def whoever(rt: Runtime, caller: Caller) -> Principal | None:
    """Who is signed in for ``caller`` now, or None. Needs no script run (a deferred download
    runs outside one); an OIDC identity is held against the allow-list as it is now."""
    me = sessions.principal(rt.engine, caller.key, _limits(rt), address=caller.address)
    if me is None or me.via != "oidc" or caller.key is None:
        return me
    role = _allow_list().role_for(me.name, True)  # verified when the session started
    if role is None:
        sessions.refuse(rt.engine, caller.key, me, "no longer on the [access] allow-list")
        return None
    if role != me.role:
        sessions.assign_role(rt.engine, caller.key, role)
        return replace(me, role=role)
    return me


class IdentityRefused(SwitchboardError):
    """Signed in with the identity provider, but not admitted: an address the provider has not
    verified (whatever the list says), or one not on the [access] allow-list."""

    def __init__(self, email: str, *, verified: bool) -> None:
        who = email or "This account"
        if verified:
            super().__init__(
                f"{who} may not use Switchboard. Who must act: a Switchboard admin adds your address "
                "(or your domain) to [access] in .streamlit/secrets.toml; then sign in again."
            )
        else:
            super().__init__(
                f"{who} may not use Switchboard: your identity provider has not verified this address. "
                "Who must act: whoever runs your company accounts verifies it; then sign in again."
            )


def _oidc_user(rt: Runtime) -> Principal | None:
    """Raises IdentityRefused (audited once per tab) or ConfigError (a malformed [access])."""
    if not st.user.get("is_logged_in", False):
        return None
    claims = _claims()
    email = str(claims.get("email") or "")
    try:
        role = _allow_list().role_for(email, claims.get("email_verified"))
    except ConfigError as exc:
        raise ConfigError(
            f"Sign-in is not set up right: {exc} Who must act: a Switchboard admin "
            "([access] in .streamlit/secrets.toml)."
        ) from None
    caller = this_caller()
    assert caller.key is not None, "a signed-in OIDC identity always has a key"
    if role is None:
        _note_refusal(rt, email, caller.key)
        raise IdentityRefused(email, verified=claims.get("email_verified") is True)
    if (me := whoever(rt, caller)) is not None:
        return me
    if sessions.known(rt.engine, caller.key):  # signed out elsewhere, idle or too old: the IdP cookie goes too
        st.logout()
        return None
    try:
        sessions.start(
            rt.engine, caller.key, Principal(email, role, caller.address, "oidc", reauthenticated_at=_issued_at(claims))
        )
    except IntegrityError:  # another tab of this sign-in started it a moment ago
        pass
    return whoever(rt, caller)


def _note_refusal(rt: Runtime, email: str, key: sessions.Key) -> None:
    """An identity outside the allow-list: its session ends, and the refusal is audited once per tab."""
    if st.session_state.get("_refused_identity") == key.digest:
        return
    st.session_state["_refused_identity"] = key.digest
    refused = Principal(email or "unknown identity", Role.VIEWER, _address(), "oidc")
    if not sessions.refuse(rt.engine, key, refused, "not on the [access] allow-list"):
        audit.record_now(rt.engine, refused, "sign_in", email, audit.REFUSED, "not on the [access] allow-list")


def current_user(rt: Runtime) -> Principal | None:
    """The signed-in principal of this run, with the role stored now (a role change applies at
    the next click), bound to its session so that every service call checks it again; or None.
    With OIDC, raises IdentityRefused or ConfigError; nothing here draws anything."""
    return _oidc_user(rt) if oidc_configured() else whoever(rt, this_caller())


def sign_in_prompt() -> None:
    """What a protected page shows to someone not signed in: the way in, nothing else."""
    st.subheader("Sign in to continue", anchor=False)
    if oidc_configured():
        st.write("Switchboard holds your company's 8x8 credentials, so every page but the setup guide needs a sign-in.")
        st.button("Sign in with your company account", on_click=st.login, type="primary", key="sign_in_oidc")
    else:
        st.write("Your session has ended or you are not signed in yet.")
        st.markdown(
            f'<a href="{SIGN_IN_URL}" target="_self" data-testid="sign-in-link">Go to the sign-in page</a>',
            unsafe_allow_html=True,
        )
        st.caption("Reloading the page takes you there too.")


def sign_out(rt: Runtime, me: Principal) -> None:
    """End the session on the server (every tab), then drop the browser's part of it."""
    key = this_caller().key
    if key is not None:
        sessions.end(rt.engine, key, me)
    if me.via == "oidc":
        st.logout()


def confirm_with_password(rt: Runtime, me: Principal, password: SecretStr) -> None:
    """Re-authentication for a sensitive action: the same throttled check as sign-in; then
    sensitive actions may go ahead for a few minutes. Raises WrongPassword or Throttled."""
    try:
        users.authenticate(rt.engine, me.name, password, address=me.address or "", action=users.REAUTHENTICATE)
    except users.SignInFailed:
        raise users.WrongPassword() from None
    key = this_caller().key
    assert key is not None, "a local sign-in always has its cookie"
    sessions.mark_reauthenticated(rt.engine, key, me)
