"""Open problems, on the Monitoring page: what is failing now, since when, which channels were
told and when, the next reminder, and who acknowledged it. Roles that may acknowledge get a
button per problem not yet acknowledged; its callback decides who may when it is clicked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.kernel.errors import SwitchboardError
from lib.kernel.words import shown
from lib.services.alerts import incidents
from lib.services.guard.access import Permission
from lib.ui.context import Console, acting
from lib.ui.text import literal

_SAID = "incidents.said"  # what the last Acknowledge did (or why not), shown once


def _acknowledge(incident_id: str) -> None:
    rt, me = acting(Permission.ACKNOWLEDGE_ALERTS)
    try:
        done = incidents.acknowledge(rt.engine, incident_id, actor=me)
    except SwitchboardError as exc:
        st.session_state[_SAID] = (False, str(exc))
        return
    st.session_state[_SAID] = (True, done.describe())


def table(found: list[incidents.Incident]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Connection": i.connection,
                "Environment": i.environment or "—",
                "Product": i.product_label,
                "Outcome": i.outcome_label,
                "Since": shown(i.failing_since),
                "Failures": i.failures,
                "Channels told": "; ".join(t.describe() for t in i.told) or "none",
                "Next reminder": shown(i.next_reminder_at, never="None (acknowledged)"),
                "Acknowledged": f"{i.acknowledged_by}, {shown(i.acknowledged_at)}" if i.acknowledged_by else "—",
                "Maintenance": f"until {shown(i.maintenance_until)}" if i.maintenance_until else "—",
                "ID": i.id,
            }
            for i in found
        ]
    )


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.subheader("Open problems")
    if said := st.session_state.pop(_SAID, None):
        ok, text = said
        (st.success if ok else st.error)(literal(text), icon=":material/check:" if ok else ":material/error:")
    found = incidents.open_incidents(rt.engine, actor=me)
    if not found:
        st.caption("Nothing is failing now.")
        return
    st.dataframe(table(found), hide_index=True, width="stretch", key="incidents_table")
    if not me.can(Permission.ACKNOWLEDGE_ALERTS):
        return
    st.caption("Acknowledge a problem to stop its reminders until it recovers or fails another way.")
    for i in found:
        if i.acknowledged_by is None:
            st.button(
                literal(f"Acknowledge {i.connection}: {i.product_label}"),
                key=f"incident_ack_{i.id}",
                on_click=_acknowledge,
                args=(i.id,),
                icon=":material/front_hand:",
            )
