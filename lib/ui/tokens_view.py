"""The API tokens page (admins): which machines may read the status API and /metrics, when
each token was last used, and revoking one.

Tokens are made on the server's command line only (``switchboard tokens create``): the token
is printed once, to a terminal or straight into the file the machine reads, and so never
crosses the console's WebSocket, sits in a browser page, or passes through a clipboard.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.kernel.errors import NotFoundError
from lib.kernel.words import shown
from lib.services.accounts import api_tokens
from lib.services.guard.access import Permission
from lib.ui.account import proven
from lib.ui.context import Console, acting
from lib.ui.text import literal

_REVOKING = "tokens.revoking"  # the name whose revoke dialog is open
_CREATE = "switchboard tokens create --name prometheus --role viewer > /etc/prometheus/switchboard.token"


def _close_revoke_dialog() -> None:
    acting(Permission.MANAGE_USERS)
    st.session_state.pop(_REVOKING, None)


@st.dialog("Revoke API token", on_dismiss=_close_revoke_dialog)
def _revoke_dialog(name: str) -> None:
    rt, me = acting(Permission.MANAGE_USERS, recent_proof=True)
    st.write(
        f"Machines that use **{literal(name)}** are refused at their next request, on every "
        "Switchboard instance. A revoked token cannot be used again; make a new one if needed."
    )
    if st.button("Revoke", key="token_revoke_confirm", type="primary", icon=":material/key_off:"):
        try:
            api_tokens.revoke(rt.engine, name, actor=me)
        except NotFoundError:
            pass  # revoked meanwhile, from here or the command line
        st.session_state.pop(_REVOKING, None)
        st.toast(f"Revoked {literal(name)}.", icon=":material/key_off:")
        st.rerun()


def table(views: list[api_tokens.TokenView]) -> pd.DataFrame:
    """The tokens in words: "Never" for a token not used yet, a dash for one not revoked."""
    return pd.DataFrame(
        [
            {
                "Name": v.name,
                "Role": v.role.value,
                "Created": shown(v.created_at),
                "Created by": v.created_by or "—",
                "Last used": shown(v.last_used_at),
                "Revoked": shown(v.revoked_at, never="—"),
            }
            for v in views
        ]
    )


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("API tokens")
    st.caption(
        "Machines (Prometheus, Uptime Kuma, scripts) read `/api/v1/status` and `/metrics` with a token, "
        "sent as `Authorization: Bearer sbt_…`. A viewer token reads status; no token is ever an admin."
    )
    views = api_tokens.list_tokens(rt.engine, actor=me)
    if views:
        st.dataframe(table(views), hide_index=True, width="stretch", key="tokens_table")
    else:
        st.info("No API tokens yet.", icon=":material/info:")
    st.markdown(
        "Make a token on the Switchboard server; it is printed once, so write it straight to where "
        "the machine reads it:"
    )
    st.code(_CREATE, language="sh")
    live = [v.name for v in views if v.revoked_at is None]
    if not live or not proven(me, "revoke API tokens"):
        return
    cols = st.columns([3, 1], vertical_alignment="bottom")
    name = cols[0].selectbox("Revoke a token", live, index=None, key="token_chosen", placeholder="Choose a token…")
    if name and cols[1].button("Revoke…", key="token_revoke", icon=":material/key_off:"):
        st.session_state[_REVOKING] = name
    if (revoking := st.session_state.get(_REVOKING)) in live:
        _revoke_dialog(revoking)
