"""Retention: how long history is kept, and the worker's pruning of what has expired.

Two times are settings: check history (default 30 days) and the audit trail (default 400 days,
never shorter than the checks, so an audit row outlives the checks it speaks of). They live in
one row (``retention_setting``), so every instance keeps the same, and change only through
``switchboard settings set`` (admins, audited). No environment variable overrides them: an
instance started with a shorter time would prune what the others keep, and a delete cannot be
undone. The other growing tables follow fixed rules, each with its reason (:func:`rules`).

Pruning is a part of each worker tick that fails alone (lib.services.checking.worker). It deletes expired rows
BATCH at a time, each batch a short transaction of its own, taking turns between the tables, and
starts no batch once the tick's budget (a twentieth of the tick interval) is spent: what is left
goes at the next tick. On SQLite each batch is followed by giving a bounded number of free pages
back to the file system, and the planner's statistics are refreshed now and then
(lib.store.db). Deleting is idempotent, so instances need no lock between them: workers
pruning at once delete each row once (PostgreSQL's skip each other's locked rows; SQLite's take
turns on its write lock) and at worst repeat a search that finds nothing. Nothing points at a
check row: the current status keeps a copy of what it shows (lib.services.checking.checks), /metrics counts
from a tally and uptime from the rollups, so pruning a check changes no status, counter or
uptime; the rollups are pruned the same way by their own fixed rules.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, delete, select
from sqlmodel import Session, SQLModel

from lib.kernel.errors import FieldError, SwitchboardError, ValidationError
from lib.kernel.words import count, parse_span, span
from lib.services.alerts.outbox import KEEP as KEEP_ALERTS
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.services.runtime import Runtime
from lib.store.db import give_back_space, optimize, read_session, serialize, write_session
from lib.store.models import (
    AuditEvent,
    Check,
    CheckRollupDay,
    CheckRollupHour,
    FleetRollupDay,
    FleetRollupHour,
    RetentionSetting,
    SetupCode,
    SignInAttempt,
    WebSession,
    utcnow,
)

log = logging.getLogger(__name__)

DEFAULT_KEEP_CHECKS = timedelta(days=30)
DEFAULT_KEEP_AUDIT = timedelta(days=400)
SHORTEST = timedelta(days=1)
LONGEST = timedelta(days=3650)
# Streamlit keeps an OIDC sign-in's identity cookie for 30 days; a session row must outlive it,
# or that cookie would start a new sign-in once its ended row is gone (lib.ui.auth).
KEEP_SESSIONS = timedelta(days=35)
KEEP_ATTEMPTS = timedelta(days=1)  # throttling reads the last 15 minutes (lib.services.accounts.users.WINDOW)
KEEP_SETUP_CODES = timedelta(days=1)  # after they expired (an hour after they were made)
FORGET_WORKERS = timedelta(days=1)  # heartbeats of workers not seen this long (lib.services.checking.worker)
# Rollups (lib.services.history.rollups): days for two years; hours only as long as the windows read from them
# (7 days) and a month of detail need, as an hour holds about as few checks as a raw row
# (4 at the default interval): two years of hours would be ≈ 7 GB at 1,000 connections.
KEEP_DAILY_ROLLUPS = timedelta(days=730)
KEEP_HOURLY_ROLLUPS = timedelta(days=35)

BATCH = 2_000  # rows deleted per transaction: about 50 ms of SQLite's write lock for checks
BUDGET_SHARE = 0.05  # of the tick interval: the most a tick spends starting batches
VACUUM_PAGES = 1_024  # SQLite pages given back after a batch, at most (4 MiB at the default page size)
OPTIMIZE_EVERY = timedelta(hours=1)
_SETTING_ID = 1
_LABELS = {"keep_checks": "Keep checks", "keep_audit": "Keep audit"}
_EXAMPLES = {"keep_checks": "30d", "keep_audit": "400d"}


# --- Settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """How long check history and the audit trail are kept, and who set it last."""

    checks: timedelta = DEFAULT_KEEP_CHECKS
    audit: timedelta = DEFAULT_KEEP_AUDIT
    updated_at: datetime | None = None  # None: the defaults, never changed
    updated_by: str = ""


def kept(session: Session) -> Retention:
    """The settings as stored (the defaults when no admin changed them)."""
    row = session.get(RetentionSetting, _SETTING_ID)
    if row is None:
        return Retention()
    return Retention(
        timedelta(seconds=row.keep_checks_s), timedelta(seconds=row.keep_audit_s), row.updated_at, row.updated_by
    )


def current(engine: Engine, actor: Principal) -> Retention:
    """What is kept for how long: every role may read it."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        return kept(session)


def parse_keep(text: str, field: str) -> timedelta:
    """A time to keep, as people write it (``30d``), for ``field`` (keep_checks or keep_audit)."""
    keep = parse_span(text)
    if keep is None:
        raise ValidationError(
            [
                FieldError(
                    field,
                    _LABELS[field],
                    f"'{text[:40]}' is not a length of time: write a whole number and a unit, e.g. {_EXAMPLES[field]}.",
                )
            ]
        )
    return keep


def _check_range(keep: timedelta, field: str) -> None:
    if not SHORTEST <= keep <= LONGEST:
        raise ValidationError(
            [
                FieldError(
                    field,
                    _LABELS[field],
                    f"Keep history at least {span(SHORTEST)} and at "
                    f"most {span(LONGEST)}, not {span(keep)}. Use e.g. {_EXAMPLES[field]}.",
                )
            ]
        )


def _check_order(checks: timedelta, audit_trail: timedelta, *, audit_given: bool) -> None:
    """The audit trail is kept at least as long as check history; the message names the
    setting that was given (the audit one when both were)."""
    if audit_trail >= checks:
        return
    if audit_given:
        raise ValidationError(
            [
                FieldError(
                    "keep_audit",
                    _LABELS["keep_audit"],
                    (
                        f"The audit trail is kept at least as long as check history ({span(checks)}), so not {span(audit_trail)}: "
                        f"give {span(checks)} or more, or shorten Keep checks (--keep-checks) in the same command."
                    ),
                )
            ]
        )
    raise ValidationError(
        [
            FieldError(
                "keep_checks",
                _LABELS["keep_checks"],
                (
                    f"Check history is kept no longer than the audit trail ({span(audit_trail)}), so not {span(checks)}: "
                    f"raise Keep audit (--keep-audit) to {span(checks)} or more in the same command."
                ),
            )
        ]
    )


def set_keep(
    engine: Engine, *, actor: Principal, keep_checks: timedelta | None = None, keep_audit: timedelta | None = None
) -> Retention:
    """Keep check history and/or the audit trail this long (admins). Refused, with nothing
    saved, outside SHORTEST..LONGEST or when the audit trail would be kept shorter than check
    history. Rows older than the new times go at the worker's next ticks."""
    require(actor, Permission.MANAGE_CONNECTIONS, recent_proof=True)
    if keep_checks is None and keep_audit is None:
        raise ValidationError(
            [
                FieldError(
                    "keep_checks",
                    _LABELS["keep_checks"],
                    "Give the time to keep check history, the audit trail, or both.",
                )
            ]
        )
    for keep, field in ((keep_checks, "keep_checks"), (keep_audit, "keep_audit")):
        if keep is not None:
            _check_range(keep, field)
    with write_session(engine) as session:
        serialize(session, "retention")
        before = kept(session)
        after = Retention(keep_checks or before.checks, keep_audit or before.audit)
        _check_order(after.checks, after.audit, audit_given=keep_audit is not None)
        row = session.get(RetentionSetting, _SETTING_ID)
        if row is None:
            row = RetentionSetting(id=_SETTING_ID, keep_checks_s=0, keep_audit_s=0, updated_at=utcnow())
            session.add(row)
        row.keep_checks_s, row.keep_audit_s = int(after.checks.total_seconds()), int(after.audit.total_seconds())
        row.updated_at, row.updated_by = utcnow(), actor.name[:120]
        audit.record(
            session,
            actor,
            "retention.set",
            "history",
            audit.OK,
            f"checks kept {_change(before.checks, after.checks)}; "
            f"audit trail kept {_change(before.audit, after.audit)}",
        )
        session.flush()
        return kept(session)


def _change(before: timedelta, after: timedelta) -> str:
    return span(after) + ("" if before == after else f" (was {span(before)})")


# --- What each table keeps ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one kind of row is kept for, as `settings show` and the console say it."""

    name: str
    what: str
    keep: timedelta
    setting: str | None  # the `settings set` option that changes it; None: a fixed rule
    why: str


def rules(setting: Retention, session_lifetime: timedelta) -> tuple[Rule, ...]:
    """Every growing table's rule. ``session_lifetime`` is the longest a sign-in lasts
    (SWITCHBOARD_SESSION_HOURS): an ended sign-in is kept past both it and the identity cookie."""
    return (
        Rule(
            "checks",
            "Check history",
            setting.checks,
            "--keep-checks",
            "the history, charts and exports of each connection; the current status and the /metrics counters "
            "are kept apart and outlive it",
        ),
        Rule(
            "audit", "Audit trail", setting.audit, "--keep-audit", "who did what; never kept shorter than check history"
        ),
        Rule(
            "sessions",
            "Sign-ins (web sessions), from their start",
            max(KEEP_SESSIONS, session_lifetime + SHORTEST),
            None,
            "past the longest sign-in and the 30 days a company-account sign-in's cookie lasts, so an "
            "ended sign-in cannot start again",
        ),
        Rule(
            "attempts",
            "Sign-in attempts",
            KEEP_ATTEMPTS,
            None,
            "throttling counts the last 15 minutes; refused attempts are also in the audit trail",
        ),
        Rule(
            "setup_codes", "Setup codes, after they expired", KEEP_SETUP_CODES, None, "a code works for an hour, once"
        ),
        Rule(
            "alerts",
            "Sent and failed alerts, and the delivery log",
            KEEP_ALERTS,
            None,
            "what the Monitoring page shows; pruned by the alert part of each tick",
        ),
        Rule(
            "rollups_daily",
            "Daily rollups (uptime, latency)",
            KEEP_DAILY_ROLLUPS,
            None,
            "the 30- and 90-day uptime and the long history; they outlive the checks they count",
        ),
        Rule(
            "rollups_hourly",
            "Hourly rollups (uptime, latency)",
            KEEP_HOURLY_ROLLUPS,
            None,
            "the 24-hour and 7-day uptime and a month of hour-by-hour detail",
        ),
        Rule(
            "workers",
            "Heartbeats of workers no longer seen",
            FORGET_WORKERS,
            None,
            "a worker stopped this long is gone; a new one has a new id",
        ),
    )


# --- Pruning ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A table this module prunes: rows whose ``moment`` is older than the rule's time go."""

    table: type[SQLModel] | Table
    key: Any  # its primary key column
    moment: Any
    label: str  # what a failure calls it
    rule: str = ""  # the rule whose time it keeps rows for, when not the one it is listed under


_TARGETS: dict[str, _Target] = {
    "checks": _Target(Check, Check.id, Check.started_at, "check history"),
    "audit": _Target(AuditEvent, AuditEvent.id, AuditEvent.at, "the audit trail"),
    "sessions": _Target(WebSession, WebSession.id, WebSession.created_at, "sign-ins"),
    "attempts": _Target(SignInAttempt, SignInAttempt.id, SignInAttempt.at, "sign-in attempts"),
    "setup_codes": _Target(SetupCode, SetupCode.id, SetupCode.expires_at, "setup codes"),
    "rollups_daily": _Target(CheckRollupDay, CheckRollupDay.c.id, CheckRollupDay.c.start, "daily rollups"),
    "rollups_hourly": _Target(CheckRollupHour, CheckRollupHour.c.id, CheckRollupHour.c.start, "hourly rollups"),
    "fleet_rollups_daily": _Target(
        FleetRollupDay, FleetRollupDay.c.id, FleetRollupDay.c.start, "daily fleet rollups", "rollups_daily"
    ),
    "fleet_rollups_hourly": _Target(
        FleetRollupHour, FleetRollupHour.c.id, FleetRollupHour.c.start, "hourly fleet rollups", "rollups_hourly"
    ),
}


@dataclass(frozen=True)
class Pruned:
    """What one pruning pass deleted, by rule name; ``more``: its budget ran out while a table
    still had rows to delete."""

    rows: Mapping[str, int]
    more: bool = False

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class PruningFailed(SwitchboardError):
    """Some tables could not be pruned (the others were: ``pruned``); they are tried again at
    the next tick."""

    def __init__(self, failed: Mapping[str, Exception], pruned: Pruned) -> None:
        self.pruned = pruned
        said = "; ".join(
            f"{_TARGETS[name].label}: {type(exc).__name__}" + (f" ({str(exc).splitlines()[0]})" if str(exc) else "")
            for name, exc in failed.items()
        )
        super().__init__(f"Could not prune {said}. The other tables were pruned.")


class Pruner:
    """The pruning part of one worker's ticks. ``now`` is the clock expiry is measured by;
    ``timer`` the one the budget and the statistics refresh are (both injectable for tests)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        budget: timedelta,
        batch: int = BATCH,
        now: Callable[[], datetime] = utcnow,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rt, self.budget, self.batch, self.now, self.timer = rt, budget.total_seconds(), batch, now, timer
        self._optimized_at = timer()
        self._turn = 0  # which table goes first: a different one each pass, so none waits behind a backlog

    def run(self) -> Pruned:
        started, at = self.timer(), self.now()
        with read_session(self.rt.engine) as session:
            setting = kept(session)
        keep = {rule.name: rule.keep for rule in rules(setting, self.rt.settings.session_lifetime)}
        cutoffs = {
            name: at - keep[target.rule or name] for name, target in _TARGETS.items() if (target.rule or name) in keep
        }
        deleted = dict.fromkeys(cutoffs, 0)
        failed: dict[str, Exception] = {}
        pending = deque(cutoffs)
        pending.rotate(-self._turn)
        self._turn += 1
        while pending:
            name = pending.popleft()
            try:
                gone = self._delete_batch(_TARGETS[name], cutoffs[name])
            except Exception as exc:  # that table waits for the next tick; the others go on
                log.exception("Could not prune %s; the other tables are pruned all the same.", name)
                failed[name] = exc
                continue
            deleted[name] += gone
            if gone:
                give_back_space(self.rt.engine, VACUUM_PAGES)
            if gone == self.batch:  # maybe more: its next batch after the other tables' turn
                pending.append(name)
            if self.timer() - started >= self.budget:
                break
        self._refresh_statistics()
        pruned = Pruned(deleted, more=any(deleted[name] for name in pending))
        if pruned.total:
            log.info(
                "Pruned %s past their retention time%s.",
                count(pruned.total, "row"),
                "; more at the next tick" if pruned.more else "",
            )
        if failed:
            raise PruningFailed(failed, pruned)
        return pruned

    def _delete_batch(self, target: _Target, cutoff: datetime) -> int:
        """Delete up to ``batch`` rows older than ``cutoff`` in one transaction; how many went.
        On PostgreSQL, rows another worker is deleting are skipped, not waited for."""
        chosen = select(target.key).where(target.moment < cutoff).limit(self.batch).with_for_update(skip_locked=True)
        with write_session(self.rt.engine) as session:
            return session.connection().execute(delete(target.table).where(target.key.in_(chosen))).rowcount

    def _refresh_statistics(self) -> None:
        if self.timer() - self._optimized_at >= OPTIMIZE_EVERY.total_seconds():
            optimize(self.rt.engine)
            self._optimized_at = self.timer()
