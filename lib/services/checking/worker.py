"""The worker: runs the checks lib.services.checking.schedule says are due, each (connection, product, slot) once,
however many workers share the database.

A tick writes the worker's heartbeat, brings the due rows in line with the connections when
they changed, then claims due rows a batch at a time until none is left: one statement
(``UPDATE … WHERE (connection_id, product) IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)
RETURNING …``; on PostgreSQL workers skip each other's rows, on SQLite ``BEGIN IMMEDIATE``
makes them take turns), each row marked with the worker and a lease. The batches are checked by
the same runner as a manual test (lib.services.checking.checks), under one run id per tick, and pipelined: the
next batch is claimed when the prober runs low, while the one before still runs, so the HTTP
side never drains between batches. Each result is stored in the transaction that completes its
slot: the row moves to its next slot and is let go. Only rows the worker still holds are
completed and stored; a row is claimed in one batch only and stays claimed until that
completes it, so batches in flight together never complete a slot twice or drop one (a
connection whose due rows straddle two batches is checked as two targets, each completing its
own rows).

While a tick runs, the worker renews its leases and its heartbeat. A worker killed mid-tick
(SIGKILL, a lost machine) stops renewing; once its lease ends, any worker retakes what it held
and had not completed. So nothing is lost, and nothing is stored twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import and_, bindparam, delete, select, tuple_
from sqlmodel import Session, col

from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.eightbyeight.prober import Prober
from lib.kernel import collector
from lib.kernel.redaction import registry
from lib.kernel.words import count
from lib.services import alerts, connections
from lib.services.alerts.delivery import Clock, Send
from lib.services.checking import checks, retention, schedule
from lib.services.checking.checks import Finished, RunReport
from lib.services.connections import ConnectionView
from lib.services.guard.access import schedule as schedule_principal
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.store import leases
from lib.store.db import read_session, write_session
from lib.store.models import DueCheck, WorkerHeartbeat, utcnow

log = logging.getLogger(__name__)

TICK = timedelta(seconds=30)
LEASE = timedelta(minutes=2)
BATCH = 2500  # (connection, product) rows claimed at a time


@dataclass(frozen=True)
class TickReport:
    run_id: str
    checked: int = 0  # product checks run and stored
    failing: int = 0  # of those, not ok
    connections: int = 0
    not_stored: int = 0  # results that could not be stored, not even as a failure
    paused: bool = False  # the schedule is paused for all connections: nothing ran
    alerts: int = 0  # alert events delivered
    pruned: int = 0  # rows deleted past their retention time (lib.services.checking.retention)
    failure: str | None = None  # what went wrong when part of the tick failed (its other part still ran)

    @property
    def ok(self) -> bool:
        return self.failing == 0 and self.failure is None

    def describe(self) -> str:
        if self.paused:
            said = "Scheduled checks are paused for all connections; nothing ran."
        elif not self.checked:
            said = "Nothing was due." if self.failure is None else "No check was stored."
        else:
            tally = checks.Tally(self.checked - self.failing, self.failing, self.not_stored)
            said = (
                f"Checked {count(self.checked, 'product')} of {count(self.connections, 'connection')}: "
                f"{tally} (run {self.run_id})."
            )
        said += f" Delivered {count(self.alerts, 'alert')}." if self.alerts else ""
        said += f" Pruned {count(self.pruned, 'expired row')}." if self.pruned else ""
        return said + (f" The tick failed: {self.failure}" if self.failure else "")


def _failure(part: str, exc: BaseException) -> str:
    """A failed part of a tick in a line for the heartbeat and the console: the error's kind
    and its first words, masked (lib.kernel.redaction) and short."""
    said = registry.mask(str(exc).splitlines()[0] if str(exc) else "")[:160]
    return f"{part}: {type(exc).__name__}" + (f" ({said})" if said else "") + ". See the worker's log."


class Worker:
    """One worker: its identity, heartbeat and claims. ``prober`` is the 8x8 client it checks
    with (every check asks 8x8 for a token of its own: none is carried from one tick to the
    next); ``send`` delivers one alert (lib.notify's sender by default); ``now`` is the clock its
    claims, leases, slots and heartbeat are measured by (a test moves it past a lease)."""

    def __init__(
        self,
        rt: Runtime,
        prober: Prober,
        *,
        tick: timedelta = TICK,
        lease: timedelta = LEASE,
        batch: int = BATCH,
        send: Send | None = None,
        now: Clock = utcnow,
    ) -> None:
        self.rt, self.prober, self.send, self.now = rt, prober, send, now
        self.tick_every, self.lease, self.batch = tick, lease, batch
        self.host, self.pid = socket.gethostname()[:255], os.getpid()
        self.id = f"{self.host[:80]}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.principal = schedule_principal()
        self._stamp: tuple[object, ...] | None = None
        self._views: dict[uuid.UUID, ConnectionView] = {}
        self.pruner = retention.Pruner(rt, budget=tick * retention.BUDGET_SHARE, now=now)

    # -- a tick --

    def tick(self, stop: threading.Event | None = None) -> TickReport:
        """Run every check due now, then deliver the alerts due (also while the schedule is
        paused: manual tests raise them too), then prune what outlived its retention time
        (lib.services.checking.retention: a bounded share of the tick); with ``stop`` set, no new batch is claimed
        and nothing is pruned. No part failing stops the others: the report says what failed, and
        so does the heartbeat (a tick is successful only when every part ran)."""
        self._beat(ticked=True)
        failures: list[str] = []
        report = TickReport(run_id="")
        try:
            with read_session(self.rt.engine) as session:
                paused = schedule.intervals(session).paused
            report = TickReport(run_id="", paused=True) if paused else self._check(stop)
            failures += [report.failure] if report.failure else []
        except Exception as exc:
            log.exception("The checks of a scheduled tick failed; its alerts are delivered all the same.")
            failures.append(_failure("checks", exc))
        try:
            report = replace(report, alerts=alerts.tick(self.rt, worker=self.id, send=self.send, now=self.now))
        except Exception as exc:
            log.exception("The alert delivery of a scheduled tick failed.")
            failures.append(_failure("alerts", exc))
        if not (stop and stop.is_set()):
            try:
                report = replace(report, pruned=self.pruner.run().total)
            except retention.PruningFailed as exc:
                report = replace(report, pruned=exc.pruned.total)
                failures.append(_failure("pruning", exc))
            except Exception as exc:
                log.exception("The pruning of a scheduled tick failed; its checks and alerts ran all the same.")
                failures.append(_failure("pruning", exc))
        report = replace(report, failure=" ".join(failures) or None)
        self._ended(report)
        return report

    def _check(self, stop: threading.Event | None) -> TickReport:
        report = RunReport(run_id=str(uuid.uuid4()))
        intervals: list[schedule.Intervals] = []  # as they stood at the latest claim

        def batches() -> Iterator[list[checks.Plan]]:
            """Claim the next batch when the prober runs low (while the one before still runs),
            with the connections as they are then (an edit meanwhile is checked as edited)."""
            while not (stop and stop.is_set()):
                self._sync()
                claimed = self._claim()
                if not claimed:
                    return
                with read_session(self.rt.engine) as session:
                    intervals[:] = [schedule.intervals(session)]
                yield [(self._views[c], products) for c, products in claimed.items() if c in self._views]

        def settle(session: Session, done: list[Finished]) -> checks.Settled:
            return self._settle(session, done, run_id=report.run_id, now_set=intervals[0])

        try:
            with self._keepalive():
                checks.execute(
                    self.rt,
                    self.prober,
                    batches(),
                    report,
                    triggered_by=self.principal,
                    settle=settle,
                    ahead=self._ahead(),
                )
        finally:
            self._release()  # claimed but not completed (a connection deleted meanwhile, an error)
        tally = checks.Tally.of(report)  # what this worker completed (not what it lost meanwhile)
        lost = (
            f"checks: {count(tally.not_stored, 'result')} could not be stored, not even as a failure. "
            "See the worker's log."
            if tally.not_stored
            else None
        )
        result = TickReport(
            report.run_id,
            tally.ok + tally.failing,
            tally.failing,
            len({r.connection_id for r in report.stored}),
            not_stored=tally.not_stored,
            failure=lost,
        )
        if report.stored or tally.not_stored:
            checks.record_run(
                self.rt.engine,
                self.principal,
                f"{count(result.connections, 'connection')} (scheduled, worker {self.id})",
                report,
            )
        return result

    def _ahead(self) -> int:
        """How few connections may be left open before the next batch is claimed: the prober's
        low-water mark, but never more than a batch holds, so ``batch`` keeps bounding what one
        worker takes ahead of the others (with --batch 5, one connection at a time, as before
        batches overlapped)."""
        return min(self.prober.low_water, max(1, self.batch // len(PRODUCT_KEYS)))

    def run(self, stop: threading.Event, on_tick: Callable[[TickReport], None] | None = None) -> None:
        """Tick every ``tick_every`` until ``stop`` is set (the tick running then ends after the
        batches in flight). A tick that could not even begin (the database unreachable) is
        logged and the next one tried."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                report = self.tick(stop)
            except Exception:
                log.exception("A scheduled tick failed; the next tick tries again.")
            else:
                if on_tick:
                    on_tick(report)
            stop.wait(max(0.0, self.tick_every.total_seconds() - (time.monotonic() - started)))

    # -- due rows --

    def _sync(self) -> None:
        """The connections as they are now, and a due row per tested product; only when they
        changed since the last tick."""
        stamp = schedule.connections_stamp(self.rt.engine)
        if stamp == self._stamp:
            return
        self._views = {view.id: view for view in connections.list_connections(self.rt.engine)}
        schedule.sync(self.rt.engine, self._views.values())
        self._stamp = stamp

    def _claim(self) -> dict[uuid.UUID, tuple[str, ...]]:
        """Take up to ``batch`` due rows nobody holds, of connections not paused: product keys
        per connection, in catalogue order. One statement, the rows marked with this worker
        and a lease as they are chosen: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (workers skip
        each other's rows), SQLite's ``BEGIN IMMEDIATE`` otherwise (workers take turns)."""
        now = self.now()
        due = (
            select(col(DueCheck.connection_id), col(DueCheck.product))
            .where(*schedule.claimable(now))
            .order_by(col(DueCheck.due_at), col(DueCheck.connection_id), col(DueCheck.product))
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        claim = leases.take(
            DueCheck, tuple_(col(DueCheck.connection_id), col(DueCheck.product)).in_(due), self.id, now + self.lease
        ).returning(col(DueCheck.connection_id), col(DueCheck.product))
        with write_session(self.rt.engine) as session:
            rows = session.connection().execute(claim).all()
        claimed: dict[uuid.UUID, list[str]] = {}
        for c, p in rows:
            claimed.setdefault(c, []).append(p)
        return {c: tuple(k for k in PRODUCT_KEYS if k in products) for c, products in claimed.items()}

    def _settle(
        self, session: Session, done: list[Finished], *, run_id: str, now_set: schedule.Intervals
    ) -> checks.Settled:
        """In the transaction that stores a batch of results (of any batch in flight): complete
        the slots this worker still holds (next slot by ``now_set``, the intervals as they stood
        at the latest claim; let go) and keep their results, counted as the tick's; drop the rest
        (a lease lost meanwhile: the worker that retook the slot stores it). A result made with
        earlier settings (the connection was edited meanwhile) is kept for the history but
        completes nothing: its slot is let go still due, and checked again with the new ones."""
        ids = {record.connection_id for record, _ in done}
        held = {
            (c, p)
            for c, p in session.connection().execute(
                select(col(DueCheck.connection_id), col(DueCheck.product))
                .where(leases.held_by(DueCheck, self.id), col(DueCheck.connection_id).in_(ids))
                .with_for_update()
            )
        }
        holding = {c for c, _ in held}
        versions = checks.settings_versions(session, ids)
        now = self.now()
        keep: list[CheckRecord] = []
        counted: list[CheckRecord] = []
        completed: list[dict[str, object]] = []
        released: list[dict[str, object]] = []
        for record, result in done:
            slot = (record.connection_id, record.product)
            if slot in held and not checks.is_current(record, versions):
                keep.append(record)
                released.append({"c": record.connection_id, "p": record.product})
            elif slot in held:
                keep.append(record)
                counted.append(record)
                completed.append(
                    {
                        "c": record.connection_id,
                        "p": record.product,
                        "due": now_set.next_due(record.connection_id, now, result.outcome, result.retry_after_s),
                    }
                )
            elif record.product == TOKEN and record.connection_id in holding:
                keep.append(record)
        slot_of = and_(col(DueCheck.connection_id) == bindparam("c"), col(DueCheck.product) == bindparam("p"))
        if completed:
            session.connection().execute(
                leases.let_go(DueCheck, slot_of).values(
                    due_at=bindparam("due"), last_run_id=run_id, last_checked_at=now
                ),
                completed,
            )
        if released:
            session.connection().execute(leases.let_go(DueCheck, slot_of), released)
            self._stamp = None  # the connections changed under this worker: read them again before claiming
        return checks.Settled(keep, counted)

    def _release(self) -> None:
        with write_session(self.rt.engine) as session:
            session.connection().execute(leases.let_go(DueCheck, leases.held_by(DueCheck, self.id)))

    # -- signs of life --

    def _beat(self, *, ticked: bool) -> None:
        """The heartbeat (and, mid-tick, the leases of what this worker holds) renewed."""
        now = self.now()
        with write_session(self.rt.engine) as session:
            row = session.get(WorkerHeartbeat, self.id)
            if row is None:
                row = WorkerHeartbeat(
                    worker_id=self.id,
                    host=self.host,
                    pid=self.pid,
                    tick_s=max(1, int(self.tick_every.total_seconds())),
                    started_at=now,
                    last_tick_at=now,
                    last_seen_at=now,
                )
                session.add(row)
            row.last_seen_at = now
            if ticked:
                row.last_tick_at = now
            else:
                session.connection().execute(leases.renew(DueCheck, self.id, now + self.lease))
            session.connection().execute(
                delete(WorkerHeartbeat).where(col(WorkerHeartbeat.last_seen_at) < now - retention.FORGET_WORKERS)
            )

    def _ended(self, report: TickReport) -> None:
        """Record how the tick ended: when it succeeded, or when and how it failed. Only a tick
        that ran every part counts as successful; the heartbeat alone says the process lives."""
        try:
            with write_session(self.rt.engine) as session:
                row = session.get(WorkerHeartbeat, self.id)
                if row is None:
                    return
                now = self.now()
                row.last_seen_at = now
                if report.failure is None:
                    row.last_ok_tick_at = now
                else:
                    row.last_failed_tick_at, row.last_failure = now, report.failure[:300]
        except Exception:
            log.exception("Could not record how the tick ended.")

    @contextmanager
    def _keepalive(self) -> Iterator[None]:
        """Renew leases and heartbeat three times a lease while the block runs."""
        done = threading.Event()
        every = self.lease.total_seconds() / 3

        def renew() -> None:
            while not done.wait(every):
                try:
                    self._beat(ticked=False)
                except Exception:
                    log.exception("Could not renew the worker's leases; trying again.")

        thread = threading.Thread(target=renew, name=f"lease-{self.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


class Background:
    """The worker inside the server process (``make run``): a thread that ticks until stopped,
    with an 8x8 client of its own."""

    def __init__(self, rt: Runtime, *, tick: timedelta = TICK) -> None:
        self.rt, self.tick = rt, tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="switchboard-worker", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def _run(self) -> None:
        prober = Prober(self.rt.settings.base_url)
        collector.settle()  # with the worker's 8x8 client loaded (the server settled the rest)
        try:
            Worker(self.rt, prober, tick=self.tick).run(self._stop)
        finally:
            prober.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Claim nothing more; wait (up to ``timeout``) for the batches running to be stored."""
        self._stop.set()
        self._thread.join(timeout)
