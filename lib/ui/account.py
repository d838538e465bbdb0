"""Signing out, the way to change one's password, and "confirm it is you" before sensitive
actions.

Sensitive actions (deleting a connection, changing users, rotating keys) need proof of
identity from the last few minutes: the password again, or a fresh OIDC sign-in. Once given,
it unlocks those actions for ``REAUTH_VALID`` in every tab, like a sudo timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from lib.kernel.errors import SwitchboardError
from lib.services.guard.access import Permission, Principal
from lib.ui.auth import CHANGE_PASSWORD_URL, SIGN_IN_URL, confirm_with_password, sign_out
from lib.ui.context import acting, guard, take_secret

_PASSWORD = "reauth_password"
_ERROR = "reauth_error"


def sign_out_page() -> None:
    """Signing out takes a click: merely opening this page (a link from anywhere) does nothing."""
    console = guard(Permission.READ_STATUS)
    st.title("Sign out")
    st.write("Signing out ends your session on the server, in every tab of this browser.")
    if st.button("Sign out", key="sign_out", type="primary", icon=":material/logout:"):
        sign_out(console.rt, console.me)
        st.success("You are signed out, in every tab of this browser.", icon=":material/logout:")
        st.markdown(
            f'<a href="{SIGN_IN_URL}?signed_out=1" target="_self" data-testid="sign-in-again">Sign in again</a>',
            unsafe_allow_html=True,
        )


def password_page() -> None:
    """The way to the server's own change-password form: a password never travels over the
    console's WebSocket. Listed for local accounts only (a company account's password is the
    identity provider's)."""
    guard(Permission.READ_STATUS)
    st.title("Change password")
    st.write("Choose a new password on Switchboard's own password page. Your other sessions end; this one stays.")
    st.markdown(
        f'<a href="{CHANGE_PASSWORD_URL}" target="_self" data-testid="change-password-link">Change your password</a>',
        unsafe_allow_html=True,
    )


def _confirm() -> None:
    """Button callback: the password leaves session state here, before the rerun."""
    password = take_secret(_PASSWORD)
    console = acting(Permission.READ_STATUS)
    try:
        confirm_with_password(console.rt, console.me, password)
    except SwitchboardError as exc:
        st.session_state[_ERROR] = str(exc)


def proven(me: Principal, why: str) -> bool:
    """True when ``me`` may do a sensitive action now; otherwise shows how to confirm
    identity (``why`` says what for) and returns False.

    The password is a form: it reaches the server with Confirm (a click, Enter, or Tab then
    Enter), in one message, so it cannot arrive empty because the field had not been committed
    yet; the form empties the field after each try. The caller's next step (the dialog's, the
    page's) is drawn by the rerun that follows."""
    if me.proved_recently(datetime.now(UTC)):
        return True
    st.info(f"Confirm it is you to {why}.", icon=":material/verified_user:")
    if me.via == "oidc":
        st.button("Sign in again", key="reauth_login", on_click=st.login)
        return False
    with st.form("reauth", border=False, clear_on_submit=True):
        st.text_input("Your password", type="password", key=_PASSWORD, autocomplete="current-password")
        if error := st.session_state.pop(_ERROR, None):
            st.error(error, icon=":material/error:")
        st.form_submit_button("Confirm", key="reauth_confirm", on_click=_confirm, type="primary")
    return False
