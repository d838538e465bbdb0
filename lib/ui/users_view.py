"""The users page (admins): who may use Switchboard and with which role.

Changes need fresh proof of identity. New passwords are read in the submit callback and
their widgets emptied there, so they never stay in session state.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from lib.kernel.errors import SwitchboardError
from lib.kernel.words import shown
from lib.services.accounts import users
from lib.services.guard.access import Permission, Role
from lib.ui.account import proven
from lib.ui.context import Console, acting, take_secret
from lib.ui.server import oidc_configured
from lib.ui.text import literal

_FLASH = "users.flash"
_NEW_NAME, _NEW_ROLE, _NEW_PASSWORD = "user_new_name", "user_new_role", "user_new_password"
_ROLE, _RESET_PASSWORD = "user_role", "user_reset_password"
_ROLES = [r.value for r in Role]


def _attempt(change: Callable[[], object], done: str) -> bool:
    """Run one change in a callback; keep only its outcome (a message) for the rerun."""
    try:
        change()
    except SwitchboardError as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return False
    st.session_state[_FLASH] = ("success", done)
    return True


def _add() -> None:
    """On an error the name and role stay for another try (the password never does)."""
    password = take_secret(_NEW_PASSWORD)
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    name, role = st.session_state.get(_NEW_NAME, "").strip(), st.session_state.get(_NEW_ROLE)
    if _attempt(
        lambda: users.add(console.rt.engine, name, password, role or "", actor=console.me),
        f"Added {literal(name)} as {role}. Give them the password through a separate channel; "
        "they choose their own at their first sign-in.",
    ):
        st.session_state[_NEW_NAME], st.session_state[_NEW_ROLE] = "", Role.VIEWER.value


def _choose() -> None:
    """Another user chosen: the role box shows their role, not the one picked for the last."""
    acting(Permission.MANAGE_USERS)
    st.session_state.pop(_ROLE, None)


def _set_role(name: str) -> None:
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    role = st.session_state.pop(_ROLE, None)  # redrawn with the stored role, changed or refused
    _attempt(
        lambda: users.set_role(console.rt.engine, name, role or "", actor=console.me), f"{literal(name)} is now {role}."
    )


def _reset(name: str) -> None:
    password = take_secret(_RESET_PASSWORD)
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    then = "" if name == console.me.name else " They choose their own at their next sign-in."
    _attempt(
        lambda: users.reset_password(console.rt.engine, name, password, actor=console.me),
        f"New password set for {literal(name)}; their open sessions were ended.{then}",
    )


def _remove(name: str) -> None:
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    _attempt(
        lambda: users.remove(console.rt.engine, name, actor=console.me),
        f"Removed {literal(name)} and ended their sessions.",
    )


def table(accounts: list[users.UserView]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "User": u.username,
                "Role": u.role.value,
                "Signs in with": "password" if u.local else "OIDC",
                "Last sign-in": shown(u.last_sign_in_at),
                "Created": shown(u.created_at),
                "Password changed": shown(u.password_changed_at)
                + (" (set by an admin, not yet changed)" if u.must_change_password else ""),
            }
            for u in accounts
        ]
    )


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("Users")
    if oidc_configured():
        st.info(
            "People sign in with your company account. Who may come in, and with which role, is "
            "the `[access]` list in `.streamlit/secrets.toml`; change it there.",
            icon=":material/info:",
        )
        return
    st.caption("admin: everything · operator: run tests, export, acknowledge alerts, read · viewer: read status")
    st.dataframe(table(users.list_users(rt.engine)), hide_index=True, width="stretch", key="users_table")
    if flash := st.session_state.pop(_FLASH, None):
        getattr(st, flash[0])(literal(flash[1]) if flash[0] == "error" else flash[1])
    if not proven(me, "add, change or remove users"):
        return
    # Not cleared on submit: an error keeps the name and role (the callback empties them after
    # a success, and the password field every time).
    st.session_state.setdefault(_NEW_ROLE, Role.VIEWER.value)
    with st.form("user_add"):
        st.subheader("Add a user", anchor=False)
        st.text_input("User name", key=_NEW_NAME, help="Letters, digits and . _ @ + -, e.g. an e-mail address.")
        st.selectbox("Role", _ROLES, key=_NEW_ROLE)
        st.text_input(
            "First password",
            type="password",
            key=_NEW_PASSWORD,
            help=f"At least {users.PASSWORD_MIN} characters, not a common one.",
        )
        st.form_submit_button("Add user", on_click=_add, key="user_add_submit")
    names = [u.username for u in users.list_users(rt.engine)]
    name = st.selectbox(
        "Change a user", names, index=None, key="user_chosen", placeholder="Choose a user…", on_change=_choose
    )
    if not name:
        return
    cols = st.columns(3)
    with cols[0]:
        st.session_state.setdefault(_ROLE, users.get(rt.engine, name).role.value)  # see _choose
        st.selectbox("Role", _ROLES, key=_ROLE)
        st.button("Set role", key="user_set_role", on_click=_set_role, args=(name,))
    with cols[1], st.form("user_reset_form", border=False, clear_on_submit=True):
        st.text_input(
            "New password",
            type="password",
            key=_RESET_PASSWORD,
            help=f"At least {users.PASSWORD_MIN} characters, not a common one.",
        )
        st.form_submit_button("Reset password", key="user_reset", on_click=_reset, args=(name,))
    with cols[2]:
        st.caption("Removing ends their sessions at once. The last admin cannot be removed.")
        st.button("Remove user", key="user_remove", on_click=_remove, args=(name,))
