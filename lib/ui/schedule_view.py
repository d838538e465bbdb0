"""The schedule on the Connections page: above the table, whether scheduled checks run (the
interval, a pause, a live worker) and how long history is kept; in a connection's detail, its
next and last scheduled check."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from lib.kernel.words import count, shown, span
from lib.services.checking import retention, schedule
from lib.services.connections import ConnectionView
from lib.services.guard.access import Principal
from lib.services.runtime import Runtime
from lib.ui.text import literal


def _ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _at(when: datetime, now: datetime) -> str:
    minutes = int((when - now).total_seconds() // 60)
    soon = "due now" if when <= now else ("in under a minute" if minutes < 1 else f"in {minutes} min")
    return f"{shown(when)} ({soon})"


def _last_ok(workers: list[schedule.Worker], now: datetime) -> str:
    done = [w.last_ok_tick_at for w in workers if w.last_ok_tick_at is not None]
    return f"last successful tick {_ago(max(done), now)}" if done else "no successful tick yet"


def _every(plan: schedule.Overview) -> str:
    """The default interval, and the range of the intervals connections have of their own:
    "every 15 min (2 connections: their own interval, 5 min–1 h)"."""
    said = f"every {span(plan.every)}"
    if not plan.own:
        return said
    low, high = plan.own[0], plan.own[-1]
    spread = span(low) if low == high else f"{span(low)}–{span(high)}"
    whose = "its" if len(plan.own) == 1 else "their"
    return f"{said} ({count(len(plan.own), 'connection')}: {whose} own interval, {spread})"


def caption(rt: Runtime, me: Principal) -> None:
    """One line: the default interval, or the pause; whether a worker is alive to run them and
    when a tick last succeeded; a warning when the latest ticks fail."""
    now = datetime.now(UTC)
    plan = schedule.overview(rt.engine, me, connection_ids=())
    workers = schedule.workers(rt.engine, me)
    alive = [w for w in workers if w.alive(now)]
    failing = [w for w in alive if w.failing]
    if plan.paused:
        st.caption(
            ":material/pause_circle: Scheduled checks are paused for all connections "
            "(an admin resumes them with `switchboard schedule resume`)."
        )
    elif failing:
        worst = failing[0]
        st.warning(
            f"Scheduled ticks are failing: the latest tick of worker {literal(worst.worker_id)} failed "
            f"{_ago(worst.last_failed_tick_at or now, now)} ({literal(worst.last_failure or 'no detail')}); "
            f"{_last_ok(alive, now)}. The part of the tick named there does not get done (the checks: statuses "
            "are not refreshed; the alerts; the pruning of old history); the other parts do. Who must act: "
            "the Switchboard "
            "operator (read the worker's log).",
            icon=":material/error:",
        )
    elif alive:
        st.caption(f":material/schedule: Scheduled checks {_every(plan)} · worker alive, {_last_ok(alive, now)}.")
    else:
        last = f"the last worker tick was {_ago(workers[0].last_tick_at, now)}" if workers else "no worker has run"
        st.caption(
            f":material/schedule: Scheduled checks {_every(plan)}, but {last}: they wait for "
            "the server's worker, `switchboard worker`, or `switchboard worker --once` from cron."
        )
    _kept(rt, me)


def _kept(rt: Runtime, me: Principal) -> None:
    """How long check history and the audit trail are kept (read only: admins change it with
    the command the tooltip gives), and the fixed rules of the other tables in the tooltip."""
    setting = retention.current(rt.engine, me)
    fixed = "\n".join(
        f"- {rule.what}: {span(rule.keep)}"
        for rule in retention.rules(setting, rt.settings.session_lifetime)
        if rule.setting is None
    )
    st.caption(
        f":material/history: Check history is kept {span(setting.checks)}, the audit trail "
        f"{span(setting.audit)}; the worker prunes older rows.",
        help="An admin changes these with `switchboard settings set --keep-checks 30d --keep-audit 400d` "
        f"(`switchboard settings show` says why each is kept). Also kept:\n{fixed}",
    )


def connection_line(rt: Runtime, me: Principal, view: ConnectionView) -> None:
    """The connection's next scheduled check (or its pause) and its last one."""
    now = datetime.now(UTC)
    found = schedule.overview(rt.engine, me, connection_ids=(view.id,)).connections
    if not found:
        return
    plan = found[0]
    every = f"every {span(plan.every)}" + ("" if plan.own_every else ", the default")
    if plan.paused:
        upcoming = f"Scheduled checks paused ({every})"
    elif plan.next_check is None:
        upcoming = f"Scheduled {every}; the worker plans its first check at its next tick"
    else:
        upcoming = f"Next scheduled check {_at(plan.next_check, now)}, {every}"
    last = f"last scheduled check {shown(plan.last_run)}" if plan.last_run else "no scheduled check yet"
    st.caption(f":material/schedule: {upcoming} · {last}.")
