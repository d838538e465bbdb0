"""The process-wide Runtime and Prober for the console, and the guard every protected page
calls first."""

from __future__ import annotations

import streamlit as st

from lib.errors import SwitchboardError
from lib.prober import Prober
from lib.redaction import configure_logging
from lib.runtime import Runtime, open_runtime


@st.cache_resource(show_spinner=False)
def _runtime() -> Runtime:
    configure_logging()
    return open_runtime()


def guard() -> Runtime:
    """First statement of every protected page (a deep link can skip app.py, see README).

    Fails closed: without a database and a keyring that matches it, the page stops here.
    """
    try:
        return _runtime()
    except SwitchboardError as exc:
        st.error(f"Switchboard cannot start: {exc}", icon=":material/block:")
        st.caption("Who must act: the Switchboard operator (see README, Configuration).")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_resource(show_spinner=False, on_release=lambda prober: prober.close())
def prober() -> Prober:
    """One Prober (one event loop, one HTTP client, one token cache) for every session."""
    return Prober(_runtime().settings.base_url)
