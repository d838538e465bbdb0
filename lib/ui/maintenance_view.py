"""Maintenance windows in the console: the Monitoring page's list of current and upcoming
windows (every role) with an add form and Remove (admins), and the line a connection covered by
one shows on the Connections page. Every callback asks who is signed in at click time
(lib.ui.context.acting), and the service checks the role again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from lib.kernel.errors import SwitchboardError
from lib.kernel.words import count, shown
from lib.services import connections
from lib.services.alerts import maintenance
from lib.services.connections import ConnectionView
from lib.services.guard.access import Permission, Principal
from lib.services.runtime import Runtime
from lib.ui.context import Console, acting
from lib.ui.text import literal

_SAID = "maintenance.said"  # what the last action did (or why not), shown once
_SCOPES = ("Every connection", "A connection", "An environment")


def _say(ok: bool, text: str) -> None:
    st.session_state[_SAID] = (ok, text)


def _moment(day: object, at: object) -> datetime:
    return datetime.combine(day, at, tzinfo=UTC)  # type: ignore[arg-type]


def _add() -> None:
    rt, me = acting(Permission.MANAGE_ALERTS)
    state = st.session_state
    scope = state["maintenance_scope"]
    try:
        view = maintenance.add(
            rt.engine,
            starts_at=_moment(state["maintenance_from_day"], state["maintenance_from_time"]),
            ends_at=_moment(state["maintenance_to_day"], state["maintenance_to_time"]),
            connection=(state.get("maintenance_connection") or "") if scope == _SCOPES[1] else None,
            environment=(state.get("maintenance_environment") or "") if scope == _SCOPES[2] else None,
            reason=state["maintenance_reason"],
            actor=me,
        )
    except SwitchboardError as exc:
        _say(False, str(exc))
        return
    _say(True, f"Added maintenance window #{view.id} for {view.covered}, until {shown(view.ends_at)}.")


def _remove(window_id: int | None) -> None:
    rt, me = acting(Permission.MANAGE_ALERTS)
    if window_id is None:
        return
    try:
        _say(True, maintenance.remove(rt.engine, window_id, actor=me))
    except SwitchboardError as exc:
        _say(False, str(exc))


def _table(views: list[maintenance.MaintenanceView], now: datetime) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Window": f"#{v.id}",
                    "Covers": v.covered,
                    "From": shown(v.starts_at),
                    "Until": shown(v.ends_at),
                    "State": v.state(now),
                    "Reason": v.reason or "—",
                    "Added by": v.created_by,
                }
                for v in views
            ]
        ),
        hide_index=True,
        width="stretch",
        key="maintenance_table",
    )


def _add_form(rt: Runtime) -> None:
    views = connections.list_connections(rt.engine)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with st.expander("Add a maintenance window", icon=":material/build:"):
        scope = st.radio("Covers", _SCOPES, key="maintenance_scope", horizontal=True)
        if scope == _SCOPES[1]:
            st.selectbox("Connection", [v.name for v in views], key="maintenance_connection")
        elif scope == _SCOPES[2]:
            environments = sorted({v.environment for v in views if v.environment})
            st.selectbox("Environment", environments, key="maintenance_environment")
        start_day, start_time, end_day, end_time = st.columns(4)
        start_day.date_input("From (UTC)", now.date(), key="maintenance_from_day")
        start_time.time_input("at", now.time(), key="maintenance_from_time")
        end = now + timedelta(hours=2)
        end_day.date_input("Until (UTC)", end.date(), key="maintenance_to_day")
        end_time.time_input("at", end.time(), key="maintenance_to_time")
        st.text_input("Reason", key="maintenance_reason", max_chars=maintenance.REASON_MAX)
        st.button("Add maintenance window", key="maintenance_add", on_click=_add, icon=":material/add:")


def render(console: Console) -> None:
    """The Monitoring page's section: current and upcoming windows; for admins, add and remove."""
    rt, me = console.rt, console.me
    st.subheader("Maintenance windows")
    st.caption(
        "Checks still run and are stored, but nothing that happens to the connections a window covers "
        "is sent; when it ends, one maintenance.ended message names what still fails (none when all works)."
    )
    if said := st.session_state.pop(_SAID, None):
        ok, text = said
        (st.success if ok else st.error)(literal(text), icon=":material/check:" if ok else ":material/error:")
    now = datetime.now(UTC)
    views = maintenance.list_windows(rt.engine, actor=me, now=now)
    if views:
        _table(views, now)
    else:
        st.caption("No maintenance window in force or planned.")
    if not me.can(Permission.MANAGE_ALERTS):
        return
    _add_form(rt)
    if views:
        chosen = st.selectbox(
            "Window",
            [v.id for v in views],
            key="maintenance_chosen",
            format_func=lambda i: next(f"#{v.id}: {v.covered}, until {shown(v.ends_at)}" for v in views if v.id == i),
        )
        st.button(
            "Remove (or end now, if in force)",
            key="maintenance_remove",
            on_click=_remove,
            args=(chosen,),
            icon=":material/delete:",
        )


def connection_line(rt: Runtime, me: Principal, view: ConnectionView) -> None:
    """The Connections page's line for a connection a window covers now."""
    now = datetime.now(UTC)
    window = maintenance.covering(maintenance.active_windows(rt.engine, now, actor=me), view.id, view.environment, now)
    if window is not None:
        st.caption(
            f"🔧 In maintenance until {shown(window.ends_at)} ({literal(window.covered)}"
            + (f": {literal(window.reason)})" if window.reason else ")")
            + ". Its checks run and are stored; no alert is sent."
        )


def caption(rt: Runtime, me: Principal) -> None:
    """The Connections page's line while windows are in force."""
    now = datetime.now(UTC)
    active = maintenance.active_windows(rt.engine, now, actor=me)
    if active:
        named = "; ".join(f"{literal(w.covered)} until {shown(w.ends_at)}" for w in active[:3])
        more = f" and {count(len(active) - 3, 'more window')}" if len(active) > 3 else ""
        st.caption(f"🔧 In maintenance: {named}{more}. No alert is sent for what they cover.")
