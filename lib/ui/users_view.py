"""The users page (admins): who may use Switchboard and with which role.

Changes need fresh proof of identity. New passwords are read in the submit callback and
their widgets emptied there, so they never stay in session state.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from lib import users
from lib.access import Permission, Role
from lib.errors import SwitchboardError
from lib.ui.account import proven
from lib.ui.runtime import Console, acting, take_secret
from lib.ui.server import oidc_configured
from lib.ui.text import literal

_FLASH = "users.flash"
_ROLES = [r.value for r in Role]


def _attempt(change: Callable[[], object], done: str) -> None:
    """Run one change in a callback; keep only its outcome (a message) for the rerun."""
    try:
        change()
    except SwitchboardError as exc:
        st.session_state[_FLASH] = ("error", str(exc))
    else:
        st.session_state[_FLASH] = ("success", done)


def _add() -> None:
    password = take_secret("user_new_password")
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    name, role = st.session_state.get("user_new_name", "").strip(), st.session_state.get("user_new_role")
    _attempt(lambda: users.add(console.rt.engine, name, password, role or "", actor=console.me),
             f"Added {literal(name)} as {role}. Give them the password through a separate channel.")


def _set_role(name: str) -> None:
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    role = st.session_state.get("user_role")
    _attempt(lambda: users.set_role(console.rt.engine, name, role or "", actor=console.me),
             f"{literal(name)} is now {role}.")


def _reset(name: str) -> None:
    password = take_secret("user_reset_password")
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    _attempt(lambda: users.reset_password(console.rt.engine, name, password, actor=console.me),
             f"New password set for {literal(name)}; their open sessions were ended.")


def _remove(name: str) -> None:
    console = acting(Permission.MANAGE_USERS, recent_proof=True)
    _attempt(lambda: users.remove(console.rt.engine, name, actor=console.me),
             f"Removed {literal(name)} and ended their sessions.")


def _table(accounts: list[users.UserView]) -> None:
    st.dataframe(pd.DataFrame([{
        "User": u.username, "Role": u.role.value, "Signs in with": "password" if u.local else "OIDC",
        "Created": u.created_at, "Password changed": u.password_changed_at,
    } for u in accounts]), hide_index=True, width="stretch", key="users_table")


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("Users")
    if oidc_configured():
        st.info("People sign in with your company account. Who may come in, and with which role, is "
                "the `[access]` list in `.streamlit/secrets.toml`; change it there.", icon=":material/info:")
        return
    st.caption("admin: everything · operator: run tests, export, read · viewer: read status")
    _table(users.list_users(rt.engine))
    if flash := st.session_state.pop(_FLASH, None):
        getattr(st, flash[0])(literal(flash[1]) if flash[0] == "error" else flash[1])
    if not proven(me, "add, change or remove users"):
        return
    with st.form("user_add", clear_on_submit=True):
        st.subheader("Add a user", anchor=False)
        st.text_input("User name", key="user_new_name", help="Letters, digits and . _ @ + -, e.g. an e-mail address.")
        st.selectbox("Role", _ROLES, key="user_new_role", index=_ROLES.index(Role.VIEWER.value))
        st.text_input("First password", type="password", key="user_new_password",
                      help=f"At least {users.PASSWORD_MIN} characters, not a common one.")
        st.form_submit_button("Add user", on_click=_add, key="user_add_submit")
    names = [u.username for u in users.list_users(rt.engine)]
    name = st.selectbox("Change a user", names, index=None, key="user_chosen", placeholder="Choose a user…")
    if not name:
        return
    cols = st.columns(3)
    with cols[0]:
        st.selectbox("Role", _ROLES, key="user_role", index=_ROLES.index(users.get(rt.engine, name).role.value))
        st.button("Set role", key="user_set_role", on_click=_set_role, args=(name,))
    with cols[1]:
        st.text_input("New password", type="password", key="user_reset_password")
        st.button("Reset password", key="user_reset", on_click=_reset, args=(name,))
    with cols[2]:
        st.caption("Removing ends their sessions at once. The last admin cannot be removed.")
        st.button("Remove user", key="user_remove", on_click=_remove, args=(name,))
