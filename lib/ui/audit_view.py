"""The audit page: who did what, when, from where; filters and a CSV download (admins)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from lib.kernel.words import count, shown
from lib.services.guard import audit
from lib.services.guard.access import Permission, schedule
from lib.store.models import AuditEvent
from lib.ui.context import Console, deferred

_SCHEDULE = schedule().name  # the actor of what the schedule's worker does


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def origin(event: AuditEvent) -> str:
    """Where an action came from: the client's address; for one without, the command line
    (lib.services.guard.access.shell names its actor "cli:<user>") or the schedule."""
    if event.client_address:
        return event.client_address
    if event.actor == _SCHEDULE:
        return "Scheduled"
    return "Command line" if event.actor.startswith("cli:") else "—"


def cells(event: AuditEvent) -> dict[str, object]:
    """One row in words: the moment in the form people read, where it came from even without an
    address, a dash for no target or detail."""
    return {column: getattr(event, column) for column in audit.COLUMNS} | {
        "at": shown(event.at),
        "client_address": origin(event),
        "target": event.target or "—",
        "detail": event.detail or "—",
    }


_PAGES = "audit_pages"  # session state: the filter paged through, and the cursor of each page before this one


def _cursors(which: audit.Filter) -> list[int]:
    """The ``before`` cursors of the pages turned so far (none: the newest page), kept while
    the filter stays the same; a new filter starts again from its newest rows."""
    kept = st.session_state.get(_PAGES)
    if kept is None or kept[0] != which:
        kept = st.session_state[_PAGES] = (which, [])
    return kept[1]


def render(console: Console) -> None:
    rt, me = console.rt, console.me
    st.title("Audit trail")
    st.caption(
        "Every sign-in, sign-out, change, test, export, key operation and user change. "
        "Rows are never changed and never hold a secret; they are deleted only when older "
        "than the audit retention (`switchboard settings show`)."
    )
    today = datetime.now(UTC).date()
    cols = st.columns([2, 2, 2, 2])
    period = cols[0].date_input(
        "Days (UTC)", value=(today - timedelta(days=7), today), key="audit_days", max_value=today
    )
    start, end = period if isinstance(period, tuple) and len(period) == 2 else (today, today)
    since, until = _day_start(start), _day_start(end + timedelta(days=1))
    who, what, said = audit.choices(rt.engine, me, since=since, until=until)
    actors = cols[1].multiselect("Who", who, key="audit_actor")
    actions = cols[2].multiselect("Action", what, key="audit_action")
    results = cols[3].multiselect("Result", said, key="audit_result")
    which = audit.Filter(since, until, frozenset(actors), frozenset(actions), frozenset(results))
    cursors = _cursors(which)
    page = audit.page(rt.engine, me, which, before=cursors[-1] if cursors else None)
    name = f"switchboard-audit-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    held = (
        f"newest {audit.EXPORT_LIMIT:,} of {page.total:,} rows"
        if page.total > audit.EXPORT_LIMIT
        else count(page.total, "row")
    )
    st.download_button(
        f"Download CSV ({held})",
        file_name=name,
        mime="text/csv",
        data=deferred(
            Permission.READ_AUDIT,
            lambda now: audit.export_csv(now.rt.engine, now.me, audit.events(now.rt.engine, now.me, which), name),
        ),
        key="audit_csv",
        on_click="ignore",
        icon=":material/download:",
    )
    nav = st.columns([1, 1, 4], vertical_alignment="center")
    if nav[0].button("Newer", key="audit_newer", disabled=not cursors, icon=":material/navigate_before:"):
        cursors.pop()
        st.rerun()
    older = page.older
    if nav[1].button("Older", key="audit_older", disabled=older is None, icon=":material/navigate_next:") and older:
        cursors.append(older)
        st.rerun()
    nav[2].caption(f"{page.describe()}, newest first." if page.rows else page.describe())
    frame = pd.DataFrame([cells(r) for r in page.rows], columns=list(audit.COLUMNS))
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key="audit_table",
        column_config={
            "at": "When",
            "actor": "Who",
            "client_address": "From",
            "action": "Action",
            "target": "Target",
            "result": "Result",
            "detail": "Detail",
        },
    )
