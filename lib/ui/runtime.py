"""The process-wide Runtime and Prober for the console, and the guard every protected page
calls first."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lib.access import NotAllowed, Permission, Principal
from lib.errors import SwitchboardError
from lib.prober import Prober
from lib.redaction import configure_logging
from lib.runtime import Runtime, open_runtime
from lib.ui.auth import current_user, sign_in_prompt


@st.cache_resource(show_spinner=False)
def _runtime() -> Runtime:
    configure_logging()
    return open_runtime()


def runtime() -> Runtime:
    """The runtime, or a stop with the reason. Fails closed: without a database and a keyring
    that matches it, nothing past this line runs."""
    try:
        return _runtime()
    except SwitchboardError as exc:
        st.error(f"Switchboard cannot start: {exc}", icon=":material/block:")
        st.caption("Who must act: the Switchboard operator (see README, Configuration).")
        st.stop()
        raise  # unreachable: st.stop() raises


def signed_in() -> Principal | None:
    """Who is signed in, for the navigation; None also when the runtime cannot start (the
    protected page then says why, and the public guide still opens)."""
    try:
        rt = _runtime()
    except SwitchboardError:
        return None
    return current_user(rt)


@dataclass(frozen=True)
class Console:
    """What a protected page works with: the runtime and who is signed in."""

    rt: Runtime
    me: Principal


def guard(needs: Permission) -> Console:
    """First statement of every protected page (a deep link can skip app.py, see README):
    without a live sign-in whose role holds ``needs``, the page stops here."""
    rt = runtime()
    me = current_user(rt)
    if me is None:
        sign_in_prompt()
        st.stop()
    assert me is not None
    if not me.can(needs):
        st.error(str(NotAllowed(me, needs)), icon=":material/lock:")
        st.stop()
    return Console(rt, me)


@st.cache_resource(show_spinner=False, on_release=lambda prober: prober.close())
def prober() -> Prober:
    """One Prober (one event loop, one HTTP client, one token cache) for every session."""
    return Prober(_runtime().settings.base_url)
