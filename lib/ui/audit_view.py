"""The audit page: who did what, when, from where; filters and a CSV download (admins)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from lib import audit
from lib.access import Permission
from lib.ui.runtime import Console, deferred


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("Audit trail")
    st.caption("Every sign-in, sign-out, change, test, export, key operation and user change. "
               "Rows are never changed or deleted, and never hold a secret.")
    today = datetime.now(UTC).date()
    cols = st.columns([2, 2, 2, 2])
    period = cols[0].date_input("Days (UTC)", value=(today - timedelta(days=7), today), key="audit_days",
                                max_value=today)
    start, end = (period if isinstance(period, tuple) and len(period) == 2 else (today, today))
    rows = audit.events(rt.engine, me, since=_day_start(start), until=_day_start(end + timedelta(days=1)))
    actors = cols[1].multiselect("Who", sorted({r.actor for r in rows}), key="audit_actor")
    actions = cols[2].multiselect("Action", sorted({r.action for r in rows}), key="audit_action")
    results = cols[3].multiselect("Result", sorted({r.result for r in rows}), key="audit_result")
    shown = [r for r in rows if (not actors or r.actor in actors) and (not actions or r.action in actions)
             and (not results or r.result in results)]
    name = f"switchboard-audit-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    st.download_button(f"Download CSV ({len(shown)} rows)", file_name=name, mime="text/csv",
                       data=deferred(Permission.READ_AUDIT,
                                     lambda now: audit.export_csv(now.rt.engine, now.me, shown, name)),
                       key="audit_csv", on_click="ignore", icon=":material/download:")
    frame = pd.DataFrame([{column: getattr(r, column) for column in audit.COLUMNS} for r in reversed(shown)],
                         columns=list(audit.COLUMNS))
    st.dataframe(frame, hide_index=True, width="stretch", key="audit_table", column_config={
        "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
        "actor": "Who", "client_address": "From", "action": "Action", "target": "Target",
        "result": "Result", "detail": "Detail",
    })
