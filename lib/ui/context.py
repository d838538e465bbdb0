"""The process-wide Runtime and Prober for the console, and the two checks every protected
thing makes: ``guard`` at the top of a page, ``acting`` at the start of anything Streamlit
runs without the page.

Streamlit runs widget callbacks before the page script, reruns fragments and dialogs without
it, and builds deferred downloads outside any run at all. A principal captured when the page
was drawn says nothing about who clicks later, so none is ever handed to those functions:
each starts by asking who is signed in now (``acting``; ``deferred`` for downloads).
tests/test_action_time.py reads lib/ui/ to hold every one of them to that.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import NamedTuple

import streamlit as st
from pydantic import SecretStr

from lib.eightbyeight.prober import Prober
from lib.kernel.errors import ConfigError, SwitchboardError
from lib.kernel.redaction import configure_logging
from lib.services.guard.access import (
    NotAllowed,
    PasswordChangeRequired,
    Permission,
    Principal,
    ReauthenticationRequired,
    SignInEnded,
)
from lib.services.runtime import Runtime, shared_runtime
from lib.ui.auth import (
    CHANGE_PASSWORD_URL,
    IdentityRefused,
    current_user,
    sign_in_prompt,
    this_caller,
    whoever,
)
from lib.ui.streamlit_internals import in_callback
from lib.ui.text import literal

# Who is signed in cannot be used yet, and the page shows why instead of itself.
_STOPS = (IdentityRefused, ConfigError, PasswordChangeRequired)
_NOTICE = "access.notice"  # why the last click did nothing (or the page was redrawn); shown once
_DRAWN_FOR = "access.drawn_for"  # the role this tab's page was last drawn for


@cache
def _logging() -> None:
    configure_logging()  # once per process (the server also does it, when it runs)


def _runtime() -> Runtime:
    _logging()
    return shared_runtime()  # the server's own, when it runs (one per process)


def runtime() -> Runtime:
    """The runtime, or a stop with the reason. Fails closed: without a database and a keyring
    that matches it, nothing past this line runs."""
    try:
        return _runtime()
    except SwitchboardError as exc:
        st.error(f"Switchboard cannot start: {exc}", icon=":material/block:")
        st.caption("Who must act: a Switchboard admin (see docs/operating/configuration.md).")
        st.stop()
        raise  # unreachable: st.stop() raises


def signed_in() -> Principal | None:
    """Who is signed in, for the navigation; None also when the runtime cannot start (the
    protected page then says why, and the public guide still opens). An identity the
    allow-list refuses, or someone who must first change the password an admin chose, sees
    why, and nothing else."""
    try:
        rt = _runtime()
    except SwitchboardError:
        return None
    try:
        return current_user(rt)
    except _STOPS as exc:
        _show_notice()
        _show(exc)
        st.stop()
        raise AssertionError("unreachable: st.stop() raises") from None


def _show_notice() -> None:
    """Why the last click did nothing, or why the page was drawn again (set by ``acting``), once."""
    if notice := st.session_state.pop(_NOTICE, None):
        st.warning(literal(notice), icon=":material/block:")


def _current(rt: Runtime) -> tuple[Principal | None, SwitchboardError | None]:
    try:
        return current_user(rt), None
    except _STOPS as exc:
        return None, exc


class Console(NamedTuple):
    """What a protected page or action works with: the runtime and who is signed in now."""

    rt: Runtime
    me: Principal


def _refusal(me: Principal | None, needs: Permission, recent_proof: bool) -> SwitchboardError | None:
    """Why ``me`` may not act now, or None."""
    if me is None:
        return SignInEnded()
    if not me.can(needs):
        return NotAllowed(me, needs)
    if recent_proof and not me.proved_recently(datetime.now(UTC)):
        return ReauthenticationRequired()
    return None


def _show(refusal: SwitchboardError) -> None:
    if isinstance(refusal, SignInEnded):
        sign_in_prompt()
    elif isinstance(refusal, ReauthenticationRequired):
        st.info(str(refusal), icon=":material/verified_user:")
    elif isinstance(refusal, IdentityRefused):
        st.error(literal(str(refusal)), icon=":material/block:")
        st.button("Sign out", on_click=st.logout, key="refused_sign_out")
    elif isinstance(refusal, PasswordChangeRequired):
        st.warning(str(refusal), icon=":material/password:")
        st.markdown(
            f'<a href="{CHANGE_PASSWORD_URL}" target="_self" data-testid="change-password-link">Change password</a>',
            unsafe_allow_html=True,
        )
    else:
        st.error(str(refusal), icon=":material/lock:")


def guard(needs: Permission) -> Console:
    """First statement of every protected page (a deep link can skip app.py; docs/operating/security.md, "Authorized when the action runs"):
    without a live sign-in whose role holds ``needs``, the page stops here."""
    rt = runtime()
    me, problem = _current(rt)
    _show_notice()
    refusal = problem or _refusal(me, needs, recent_proof=False)
    if refusal is not None:
        _show(refusal)
        st.stop()
    assert me is not None
    st.session_state[_DRAWN_FOR] = me.role.value
    return Console(rt, me)


def acting(needs: Permission, *, recent_proof: bool = False) -> Console:
    """First statement of every widget callback, fragment body and dialog body: who is
    signed in *now*, holding ``needs`` (and, with ``recent_proof``, a recent password).

    Otherwise nothing more runs: a callback is abandoned and the page reruns, saying why; a
    fragment or dialog shows the sign-in prompt or the role message in its place and stops.
    A fragment or dialog whose page was drawn for another role has the whole page drawn
    again for the role now (the buttons around it were that role's).
    """
    rt = runtime()
    me, problem = _current(rt)
    refusal = problem or _refusal(me, needs, recent_proof)
    callback = in_callback()  # tests/test_action_time.py covers callbacks and fragment bodies
    if refusal is None:
        assert me is not None
        if not callback and st.session_state.get(_DRAWN_FOR, me.role.value) != me.role.value:
            st.session_state[_NOTICE] = f"Your role is now {me.role}, so this page was drawn again for it."
            st.rerun()
        return Console(rt, me)
    if callback:
        st.session_state[_NOTICE] = f"Nothing was done. {refusal}"
        st.rerun()
    _show(refusal)
    st.stop()
    raise AssertionError("unreachable: st.stop() raises")


def take_secret(key: str) -> SecretStr:
    """A password widget's value, taken out of session state. Callbacks call this before
    ``acting``, so that a refused click leaves no password behind."""
    value = SecretStr(st.session_state.get(key, ""))
    st.session_state[key] = ""
    return value


def deferred(needs: Permission, build: Callable[[Console], bytes]) -> Callable[[], bytes]:
    """``data=`` for a download button: the bytes are made when the button is clicked, for
    whoever is signed in then. Streamlit runs this outside any script run, so it remembers
    only which browser session drew the button (:class:`lib.ui.auth.Caller`) and asks the
    database again at the click; a refusal raises, and no file is made."""
    caller = this_caller()

    def data() -> bytes:
        rt = _runtime()
        me = whoever(rt, caller)
        refusal = _refusal(me, needs, recent_proof=False)
        if refusal is not None:
            raise refusal
        assert me is not None
        return build(Console(rt, me))

    return data


@st.cache_resource(show_spinner=False, on_release=lambda prober: prober.close())
def _prober() -> Prober:
    return Prober(_runtime().settings.base_url)


def prober() -> Prober:
    """One Prober (one event loop, one HTTP client) for every session; a
    closed one is replaced, never handed to a check."""
    shared = _prober()
    if shared.closed:
        _prober.clear()
        shared = _prober()
    return shared
