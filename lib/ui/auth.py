"""Who is using this browser tab, checked on every run, and the sign-in prompts.

Local accounts: the HttpOnly session cookie set by /account/sign-in names a server-side
session. OIDC (``[auth]`` in secrets.toml): Streamlit's identity cookie says who it is, the
``[access]`` allow-list says whether they may come in, and a server-side session row keyed by
the ID token adds what Streamlit lacks: idle and absolute limits, and sign-out in every tab.
"""

from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from streamlit.errors import StreamlitSecretNotFoundError

from lib import audit, sessions, users
from lib.access import Principal, Role
from lib.allow_list import AllowList
from lib.errors import ConfigError, NotFoundError
from lib.runtime import Runtime
from lib.sessions import Limits

SIGN_IN_URL = "/account/sign-in"


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return False


def _limits(rt: Runtime) -> Limits:
    return Limits(rt.settings.session_idle, rt.settings.session_lifetime)


def _address() -> str | None:
    address = st.context.ip_address  # None on localhost
    return address if isinstance(address, str) and address else None


def _token() -> str | None:
    token = st.context.cookies.get(sessions.COOKIE_NAME)
    return token if isinstance(token, str) and token else None


def _claims() -> dict[str, object]:
    return {key: st.user.get(key) for key in ("iss", "sub", "iat", "nonce", "email", "email_verified")}


def _issued_at(claims: dict[str, object]) -> datetime | None:
    iat = claims.get("iat")
    return datetime.fromtimestamp(float(iat), timezone.utc) if isinstance(iat, int | float) else None


def _oidc_user(rt: Runtime) -> Principal | None:
    if not st.user.get("is_logged_in", False):
        return None
    claims = _claims()
    email = str(claims.get("email") or "")
    try:
        allow_list = AllowList.parse(st.secrets.get("access", {}))
    except ConfigError as exc:
        st.error(f"Sign-in is not set up right: {exc}", icon=":material/block:")
        st.caption("Who must act: the Switchboard operator (`[access]` in `.streamlit/secrets.toml`).")
        st.stop()
    role = allow_list.role_for(email, claims.get("email_verified"))
    key = sessions.oidc_key(claims)
    if role is None:
        _refuse(rt, email, key)
        return None
    me = Principal(email, role, _address(), "oidc", reauthenticated_at=_issued_at(claims))
    if sessions.resume(rt.engine, key, _limits(rt)) is not None:
        return me
    if sessions.known(rt.engine, key):  # signed out elsewhere, idle or too old: the IdP cookie goes too
        st.logout()
        return None
    try:
        sessions.start(rt.engine, key, me)
    except IntegrityError:  # another tab of this sign-in started it a moment ago
        pass
    return me


def _refuse(rt: Runtime, email: str, key: str) -> None:
    """An identity outside the allow-list: audited once per tab, then told who can let them in."""
    if st.session_state.get("_refused_identity") != key:
        st.session_state["_refused_identity"] = key
        audit.record_now(rt.engine, Principal(email or "unknown identity", Role.VIEWER, _address(), "oidc"),
                         "sign_in", email, audit.REFUSED, "not on the [access] allow-list")
    st.error(f"**{email or 'This account'}** may not use Switchboard.", icon=":material/block:")
    st.caption("Who must act: a Switchboard admin adds your address (or your domain) to `[access]` "
               "in `.streamlit/secrets.toml`. Then sign in again.")
    st.button("Sign out", on_click=st.logout, key="refused_sign_out")
    st.stop()


def _local_user(rt: Runtime) -> Principal | None:
    live = sessions.resume(rt.engine, _token(), _limits(rt))
    if live is None:
        return None
    try:
        account = users.get(rt.engine, live.subject)
    except NotFoundError:  # removed since: its sessions were ended with it
        return None
    return Principal(account.username, account.role, _address(), "local", live.reauthenticated_at)


def current_user(rt: Runtime) -> Principal | None:
    """The signed-in principal of this run, with the role stored now (a role change applies at
    the next click), or None."""
    return _oidc_user(rt) if oidc_configured() else _local_user(rt)


def sign_in_prompt() -> None:
    """What a protected page shows to someone not signed in: the way in, nothing else."""
    st.subheader("Sign in to continue", anchor=False)
    if oidc_configured():
        st.write("Switchboard holds your company's 8x8 credentials, so every page but the setup "
                 "guide needs a sign-in.")
        st.button("Sign in with your company account", on_click=st.login, type="primary", key="sign_in_oidc")
    else:
        st.write("Your session has ended or you are not signed in yet.")
        st.markdown(f'<a href="{SIGN_IN_URL}" target="_self" data-testid="sign-in-link">Go to the sign-in page</a>',
                    unsafe_allow_html=True)
        st.caption("Reloading the page takes you there too.")


def sign_out(rt: Runtime, me: Principal) -> None:
    """End the session on the server (every tab), then drop the browser's part of it."""
    if me.via == "oidc":
        sessions.end(rt.engine, sessions.oidc_key(_claims()), me)
        st.logout()
    else:
        token = _token()
        if token:
            sessions.end(rt.engine, token, me)


def confirm_with_password(rt: Runtime, me: Principal, password: str) -> Principal:
    """Re-authentication for a sensitive action: the same throttled check as sign-in. Returns
    the principal with fresh proof; raises SignInFailed or Throttled."""
    users.authenticate(rt.engine, me.name, SecretStr(password), address=_address() or "",
                       action="reauthenticate")
    token = _token()
    assert token is not None, "a local sign-in always has its cookie"
    now = datetime.now(timezone.utc)
    sessions.mark_reauthenticated(rt.engine, token, me, now=now)
    return Principal(me.name, me.role, me.address, me.via, now)
