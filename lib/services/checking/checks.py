"""Run checks for one product, one connection, a list or all connections, and keep the results.

All go through ``execute``: it takes the plans a batch at a time (a manual run is one batch, a
scheduled tick claims its batches as the prober asks for more), and results are written in
batches as they arrive, each batch in one transaction with the current status it changes
(lib.services.history.status reads it back).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, case, func, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, col

from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.eightbyeight.answers import DETAIL_LIMIT
from lib.eightbyeight.models import ProbeResult, Target
from lib.eightbyeight.prober import Prober, ProberClosed
from lib.kernel.errors import CredentialUnreadable, FieldError, ValidationError
from lib.kernel.words import count
from lib.services import alerts, connections
from lib.services.connections import ConnectionView
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.store.db import insert_on_conflict, read_session, write_session
from lib.store.models import (
    ROLLUP_BUCKETS,
    ROLLUP_OUTCOMES,
    AuditEvent,
    Check,
    CheckCounter,
    CheckRollupDay,
    CheckRollupHour,
    CheckTally,
    Connection,
    CurrentStatus,
    FleetRollupDay,
    FleetRollupHour,
    duration_bucket,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # a batch is written by count or by age (BATCH_SECONDS), whichever comes first: in a
# bulk check it is age; small batches cost more CPU in SQLAlchemy than the requests behind them
BATCH_SECONDS = 0.5


@dataclass
class Progress:
    done: int
    total: int
    last: CheckRecord


@dataclass
class RunReport:
    run_id: str
    results: list[CheckRecord] = field(default_factory=list)  # as they arrived
    stored: list[CheckRecord] = field(default_factory=list)  # product results stored and counted
    lost: int = 0  # results that could not be stored, not even as a failure (logged)

    @property
    def products(self) -> list[CheckRecord]:
        """Product results only (token steps left out)."""
        return [r for r in self.results if r.product != TOKEN]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.products)


@dataclass(frozen=True)
class Tally:
    """A run's product results in the words every run is summed up in, manual (Test, Test
    all, ``switchboard check``) or scheduled: "3 OK, 1 failing, 1 not stored"."""

    ok: int = 0
    failing: int = 0
    not_stored: int = 0  # results that could not be stored, not even as a failure

    @classmethod
    def of(cls, report: RunReport) -> Tally:
        """What the run stored as its own (a result stored in place of one the database refused
        counts as it was stored: failing), and what it could not store."""
        failing = sum(1 for r in report.stored if not r.ok)
        return cls(len(report.stored) - failing, failing, report.lost)

    def __str__(self) -> str:
        said = f"{self.ok:,} OK, {self.failing:,} failing"
        return said + (f", {self.not_stored:,} not stored" if self.not_stored else "")


_CUT_SHORT = "cut short"


def record_run(engine: Engine, actor: Principal, target: str, report: RunReport, *, planned: int | None = None) -> None:
    """Write the audit row of a run, manual or scheduled; both are worded here. Its result is
    ``ok`` when the run came to its end and stored every result, whatever the products said
    (failing products are its findings, counted in the detail), and ``failed`` when it was cut
    short (``planned``: the product checks it was to run) or a result could not be stored.
    The detail ends with "(run ID)", which :func:`stored_run` looks for."""
    tally = Tally.of(report)
    cut = f"{_CUT_SHORT} after {len(report.products):,} of {count(planned, 'product')}: " if planned is not None else ""
    failed = planned is not None or tally.not_stored > 0
    audit.record_now(
        engine, actor, "check.run", target, audit.FAILED if failed else audit.OK, f"{cut}{tally} (run {report.run_id})"
    )


def products_to_check(view: ConnectionView, only: str | None = None) -> tuple[str, ...]:
    """What a test of the connection covers; ``only`` narrows it to one product."""
    if only is None:
        return view.tested_products
    if only not in PRODUCT_KEYS:
        raise ValidationError(
            [FieldError("product", "Product", f"Unknown product '{only}'; use one of {', '.join(PRODUCT_KEYS)}.")]
        )
    return (only,)


_DURATION_MAX = 2**31 - 1
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # PostgreSQL's text holds no NUL


def _record(view: ConnectionView, result: ProbeResult, run_id: str) -> CheckRecord:
    """The row a result is stored as, every value within what its column holds."""
    status = result.http_status if result.http_status is None or 0 <= result.http_status <= 999 else None
    return CheckRecord(
        view.id,
        view.name,
        result.product,
        result.outcome,
        status,
        min(max(result.duration_ms, 0), _DURATION_MAX),
        _UNPRINTABLE.sub(" ", result.detail[:DETAIL_LIMIT]),
        result.started_at,
        run_id,
        view.settings_version,
    )


def settings_versions(session: Session, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The settings version of each connection that still exists, locked against deletion
    (FOR KEY SHARE on PostgreSQL) until the caller's transaction ends."""
    return dict(
        session.connection()
        .execute(
            select(col(Connection.id), col(Connection.settings_version))
            .where(col(Connection.id).in_(ids))
            .with_for_update(key_share=True)
        )
        .all()
    )


def is_current(record: CheckRecord, versions: Mapping[uuid.UUID, int]) -> bool:
    """Made with the settings the connection has now (a record that names no version is)."""
    return not record.made_with_earlier_settings(versions.get(record.connection_id, 0))


def store(
    session: Session, records: Sequence[CheckRecord], granted: Mapping[uuid.UUID, frozenset[str]], triggered_by: str
) -> None:
    """Write checks in the caller's transaction: the history rows, their counts (CheckTally,
    what /metrics reads), their hourly and daily rollups (product checks made with the current
    settings only: what uptime is read from, lib.services.history.rollups), the current status of each
    (connection, product) they touch, the alerts they raise (lib.services.alerts.rules, which compares the granted products with those
    stored before), and what 8x8's tokens said each app may use. Core
    statements, many rows each: ORM objects cost more than the HTTP requests behind them.
    Results of a connection deleted while it was being checked are dropped (with it went its
    history); the others' are kept. On PostgreSQL the connections kept are locked against
    deletion (FOR KEY SHARE) until the transaction ends.

    A result made with earlier settings (the connection was edited while it was checked) goes
    into the history with its version and nothing else: it sets no current status, raises no
    alert, and its token's product list is not recorded.

    First of all it takes the next batch number (CheckCounter): transactions that store checks
    then commit one after the other, in the order of their numbers."""
    connection = session.connection()
    ids = {r.connection_id for r in records} | set(granted)
    if not ids:
        return
    batch = connection.execute(_next_batch(connection.dialect.name)).scalar_one()
    versions = settings_versions(session, ids)
    records = [r for r in records if r.connection_id in versions]
    current = [r for r in records if is_current(r, versions)]
    earlier = {r.connection_id for r in records if r.product == TOKEN and not is_current(r, versions)}
    granted = {key: value for key, value in granted.items() if key in versions and key not in earlier}
    if records:
        rows = [
            {
                "connection_id": r.connection_id,
                "product": r.product,
                "outcome": r.outcome,
                "http_status": r.http_status,
                "duration_ms": r.duration_ms,
                "detail": r.detail,
                "run_id": r.run_id,
                "checked_at": r.checked_at,
                "settings_version": versions[r.connection_id] if r.settings_version is None else r.settings_version,
            }
            for r in records
        ]
        connection.execute(
            insert(Check),
            [
                {
                    **{k: v for k, v in row.items() if k != "checked_at"},
                    "started_at": row["checked_at"],
                    "triggered_by": triggered_by,
                    "batch": batch,
                }
                for row in rows
            ],
        )
        connection.execute(_add_to_tally(connection.dialect.name), _tallied(rows))
        made_now = [is_current(r, versions) for r in records]
        counted = [now and r.product != TOKEN for r, now in zip(records, made_now, strict=True)]
        for table, start_of, fleet in _ROLLUPS:
            rolled = _rolled_up(rows, counted, start_of, fleet=fleet)
            if rolled:
                connection.execute(_add_to_rollup(connection.dialect.name, table, fleet=fleet), rolled)
        latest = _latest(rows, made_now)
        if latest:
            connection.execute(_upsert_current_status(connection.dialect.name), latest)
    alerts.rules.observe(session, current, granted)
    connections.record_granted(session, granted)


def _next_batch(dialect: str) -> Any:
    """Bump the counter (made if missing) and return its new value, in one statement."""
    statement = insert_on_conflict(dialect, CheckCounter).values(id=1, last=1)
    return statement.on_conflict_do_update(index_elements=["id"], set_={"last": CheckCounter.last + 1}).returning(
        CheckCounter.last
    )


def _latest(rows: Sequence[Mapping[str, Any]], current: Sequence[bool]) -> list[dict[str, Any]]:
    """The current status rows a batch sets: of each (connection, product), its last row made
    with the current settings (the last stored wins), with the newest ok moment of them as
    ``last_ok_at`` (None: none was ok)."""
    latest: dict[tuple[uuid.UUID, str], Mapping[str, Any]] = {}
    ok_at: dict[tuple[uuid.UUID, str], datetime] = {}
    for row, counts in zip(rows, current, strict=True):
        if counts:
            key = (row["connection_id"], row["product"])
            latest[key] = row
            if row["outcome"] == OutcomeKey.OK:
                ok_at[key] = max(ok_at.get(key, row["checked_at"]), row["checked_at"])
    return [{**row, "last_ok_at": ok_at.get(key)} for key, row in latest.items()]


def _upsert_current_status(dialect: str) -> Any:
    """The batch's latest check of each (connection, product) replaces its current status;
    ``last_ok_at`` (the batch's newest ok, or None) moves only forward."""
    statement = insert_on_conflict(dialect, CurrentStatus)
    replace = ("outcome", "http_status", "duration_ms", "detail", "checked_at", "run_id", "settings_version")
    new, kept = statement.excluded.last_ok_at, col(CurrentStatus.last_ok_at)
    newest_ok = case((new.is_(None), kept), (kept.is_(None) | (new > kept), new), else_=kept)
    return statement.on_conflict_do_update(
        index_elements=["connection_id", "product"],
        set_={**{name: statement.excluded[name] for name in replace}, "last_ok_at": newest_ok},
    )


def _tallied(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The checks of a batch as additions to CheckTally: one row per (product, outcome, duration
    bucket), in key order."""
    sums: dict[tuple[str, str, int], tuple[int, int]] = {}
    for row in rows:
        key = (row["product"], row["outcome"], duration_bucket(row["duration_ms"]))
        n, ms = sums.get(key, (0, 0))
        sums[key] = (n + 1, ms + row["duration_ms"])
    return [
        {"product": product, "outcome": outcome, "bucket": bucket, "checks": n, "duration_ms": ms}
        for (product, outcome, bucket), (n, ms) in sorted(sums.items())
    ]


def _add_to_tally(dialect: str) -> Any:
    """Add a batch's counts to CheckTally (rows made when missing), in the transaction that
    stores the checks: the counts never lag the history, and never fall when it is pruned."""
    statement = insert_on_conflict(dialect, CheckTally)
    return statement.on_conflict_do_update(
        index_elements=["product", "outcome", "bucket"],
        set_={
            "checks": CheckTally.checks + statement.excluded.checks,
            "duration_ms": CheckTally.duration_ms + statement.excluded.duration_ms,
        },
    )


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> datetime:
    return _hour(moment).replace(hour=0)


_OUTCOME_COLUMNS = {outcome.value: f"n_{outcome}" for outcome in ROLLUP_OUTCOMES}
_ROLLUP_COLUMNS = (*_OUTCOME_COLUMNS.values(), *ROLLUP_BUCKETS)
# Each rollup table, how a check's moment maps to its row's start, and whether it sums every
# connection (fleet) or keeps each apart.
_ROLLUPS = (
    (CheckRollupHour, _hour, False),
    (CheckRollupDay, _day, False),
    (FleetRollupHour, _hour, True),
    (FleetRollupDay, _day, True),
)


def _rolled_up(
    rows: Sequence[Mapping[str, Any]],
    counted: Sequence[bool],
    start_of: Callable[[datetime], datetime],
    *,
    fleet: bool = False,
) -> list[dict[str, Any]]:
    """The checks of a batch that count (``counted``) as additions to a rollup table: one row
    per (connection, product, hour or day), or per (product, hour or day) for a ``fleet``
    table, in key order. An outcome outside the catalogue counts among the checks (so as
    failing) without a column of its own."""
    sums: dict[tuple[uuid.UUID | None, str, datetime], dict[str, Any]] = {}
    for row, counts in zip(rows, counted, strict=True):
        if not counts:
            continue
        key = (None if fleet else row["connection_id"], row["product"], start_of(row["checked_at"]))
        ms = row["duration_ms"]
        found = sums.setdefault(
            key, {"checks": 0, "duration_sum_ms": 0, "duration_max_ms": 0, **dict.fromkeys(_ROLLUP_COLUMNS, 0)}
        )
        found["checks"] += 1
        found["duration_sum_ms"] += ms
        found["duration_max_ms"] = max(found["duration_max_ms"], ms)
        found[ROLLUP_BUCKETS[duration_bucket(ms)]] += 1
        if row["outcome"] in _OUTCOME_COLUMNS:
            found[_OUTCOME_COLUMNS[row["outcome"]]] += 1
    return [
        {**({} if fleet else {"connection_id": connection_id}), "product": product, "start": start, **found}
        for (connection_id, product, start), found in sorted(sums.items())
    ]


def _add_to_rollup(dialect: str, table: Any, *, fleet: bool = False) -> Any:
    """Add a batch's rollup rows to ``table`` (rows made when missing), in the transaction that
    stores the checks, as the tally is: counts and sums add up, the maximum is the larger."""
    statement = insert_on_conflict(dialect, table)
    new, kept = statement.excluded, table.c
    return statement.on_conflict_do_update(
        index_elements=["start", "product"] if fleet else ["connection_id", "product", "start"],
        set_={
            **{name: kept[name] + new[name] for name in ("checks", "duration_sum_ms", *_ROLLUP_COLUMNS)},
            "duration_max_ms": case(
                (new.duration_max_ms > kept.duration_max_ms, new.duration_max_ms), else_=kept.duration_max_ms
            ),
        },
    )


_STEP_ORDER = {key: i for i, key in enumerate((TOKEN, *PRODUCT_KEYS))}


def _in_order(connection_order: Mapping[uuid.UUID, int]) -> Callable[[CheckRecord], tuple[int, int]]:
    """Sort key: results as the connections are listed, each in catalogue order (token step
    first), whatever order 8x8 answered in."""
    return lambda r: (connection_order.get(r.connection_id, -1), _STEP_ORDER.get(r.product, len(_STEP_ORDER)))


Finished = tuple[CheckRecord, ProbeResult]


@dataclass(frozen=True)
class Settled:
    """What a batch's settle decided: the records to store, and of those the product results
    that count as this run's (a scheduled slot completed; not a result made with earlier
    settings). Counted in ``RunReport.stored`` once the transaction commits."""

    store: list[CheckRecord]
    counted: list[CheckRecord]


# Runs in each batch's write transaction before the batch is stored (the schedule completes its
# slots here, and drops what it no longer holds).
Settle = Callable[[Session, list[Finished]], Settled]
# Errors of the database itself (locked, gone, unreachable): storing record by record would
# only meet them again, once per record, so they end the run instead.
_DATABASE_DOWN = (OperationalError, InterfaceError)


def _everything(session: Session, done: list[Finished]) -> Settled:
    records = [r for r, _ in done]
    return Settled(records, [r for r in records if r.product != TOKEN])


def unstorable(finished: Finished, error: BaseException) -> Finished:
    """The stand-in for a result that could not be stored: a failed check of the same
    (connection, product), saying so, with nothing of the original that could have caused it."""
    record, result = finished
    detail = (
        f"Switchboard could not store the result of this check ({type(error).__name__}), so it counts "
        "as failed until the next check. If it repeats, the Switchboard operator should read the "
        "worker's log."
    )
    stand_in = ProbeResult(result.product, OutcomeKey.UNEXPECTED_RESPONSE, detail, result.started_at)
    return replace(record, outcome=stand_in.outcome, http_status=None, duration_ms=0, detail=detail), stand_in


class _Writer:
    """Collects records and writes them in batches (by count or by age). One bad result does
    not cost the others theirs: a batch that cannot be stored is stored result by result, and
    a result that cannot be stored is stored as a failed check of its own (:func:`unstorable`)."""

    def __init__(self, rt: Runtime, report: RunReport, triggered_by: str, settle: Settle | None) -> None:
        self.rt, self.report, self.triggered_by = rt, report, triggered_by
        self.settle = settle or _everything
        self.pending: list[Finished] = []
        self.granted: dict[uuid.UUID, frozenset[str]] = {}
        self.flushed_at = time.monotonic()

    def add(self, record: CheckRecord, result: ProbeResult) -> None:
        self.pending.append((record, result))
        if result.granted is not None:
            self.granted[record.connection_id] = result.granted
        if len(self.pending) >= BATCH_SIZE or time.monotonic() - self.flushed_at > BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        pending, granted = self.pending, self.granted
        self.pending, self.granted = [], {}
        if not pending and not granted:
            return
        try:
            self._write(pending, granted)
        except _DATABASE_DOWN:
            raise
        except Exception:
            log.warning(
                "A batch of %s could not be stored at once; storing them one by one.",
                count(len(pending), "result"),
                exc_info=True,
            )
            self._write_each(pending, granted)

    def _write(self, done: list[Finished], granted: Mapping[uuid.UUID, frozenset[str]]) -> None:
        with write_session(self.rt.engine) as session:
            settled = self.settle(session, done)
            store(session, settled.store, granted, self.triggered_by)
        self.report.stored.extend(settled.counted)

    def _write_each(self, done: list[Finished], granted: Mapping[uuid.UUID, frozenset[str]]) -> None:
        """Each result in a transaction of its own (a token step with what its token granted);
        one that fails is stored as :func:`unstorable` instead; one that cannot be stored even
        so is left out and logged (its scheduled slot stays due)."""
        for finished in done:
            record = finished[0]
            own = (
                {record.connection_id: granted[record.connection_id]}
                if (record.product == TOKEN and record.connection_id in granted)
                else {}
            )
            try:
                self._write([finished], own)
            except _DATABASE_DOWN:
                raise
            except Exception as exc:  # noqa: BLE001  (the batch's traceback was logged; one line each here)
                log.warning(
                    "The result of %s for %s could not be stored (%s); storing it as a failure.",
                    record.product,
                    record.connection,
                    type(exc).__name__,
                )
                try:
                    self._write([unstorable(finished, exc)], {})
                except _DATABASE_DOWN:
                    raise
                except Exception as again:  # noqa: BLE001  (counted: the tick reports it as failed)
                    self.report.lost += 1
                    log.error(
                        "The result of %s for %s could not be stored, not even as a failure (%s).",
                        record.product,
                        record.connection,
                        type(again).__name__,
                    )


def run_checks(
    rt: Runtime,
    prober: Prober,
    *,
    connection_ids: Sequence[uuid.UUID] | None = None,
    product: str | None = None,
    triggered_by: Principal,
    on_progress: Callable[[Progress], None] | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Check the given connections (all when None) and store every result under one run id
    (``run_id``, or a new one)."""
    require(triggered_by, Permission.RUN_TESTS)
    views = connections.list_connections(rt.engine)
    if connection_ids is not None:
        wanted = set(connection_ids)
        views = [v for v in views if v.id in wanted]
    report = RunReport(run_id=run_id or str(uuid.uuid4()))
    plans = [(view, products_to_check(view, product)) for view in views]
    what = (views[0].name if len(views) == 1 else count(len(views), "connection")) + (
        f" / {product}" if product else ""
    )
    total = sum(len(products) for _, products in plans)
    try:
        execute(rt, prober, [plans], report, triggered_by=triggered_by, on_progress=on_progress)
    except ProberClosed:
        record_run(rt.engine, triggered_by, what, report, planned=total)
        raise
    report.results.sort(key=_in_order({view.id: i for i, view in enumerate(views)}))
    record_run(rt.engine, triggered_by, what, report)
    return report


@dataclass(frozen=True)
class StoredRun:
    """What the database holds of a run: its product results so far, and whether the run
    completed (its audit row says so; a run cut short, or whose server died, did not)."""

    products: int
    failing: int
    started_at: datetime | None
    finished: bool


def stored_run(engine: Engine, run_id: str, *, actor: Principal) -> StoredRun:
    """A run as stored, e.g. one whose server stopped in the middle of it: every batch stored
    before that is kept whole (results with the status they set), the rest was never run."""
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        conn = session.connection()
        product = col(Check.product) != TOKEN
        products, failing, started_at, begun = conn.execute(
            select(
                func.count().filter(product),
                func.count().filter(product, col(Check.outcome) != "ok"),
                func.min(col(Check.started_at)).filter(product),
                func.min(col(Check.started_at)),
            ).where(col(Check.run_id) == run_id)
        ).one()
        if begun is None:  # nothing of it was stored: it ended before its first batch, or ran nothing
            return StoredRun(0, 0, None, False)
        # record_run writes the run's audit row last, its detail naming the run: "… (run X)";
        # a run cut short says so first. Written after the run's first check began, it is
        # looked for among the rows since then only (by the index on "at"), however long the trail.
        finished = conn.execute(
            select(col(AuditEvent.id))
            .where(
                col(AuditEvent.at) >= begun,
                col(AuditEvent.action) == "check.run",
                col(AuditEvent.detail).contains(f"(run {run_id})"),
                col(AuditEvent.detail).not_like(f"{_CUT_SHORT}%"),
            )
            .limit(1)
        ).first()
    return StoredRun(products, failing, started_at, finished is not None)


Plan = tuple[ConnectionView, tuple[str, ...]]  # a connection and the products to check


def execute(
    rt: Runtime,
    prober: Prober,
    batches: Iterable[Sequence[Plan]],
    report: RunReport,
    *,
    triggered_by: Principal,
    on_progress: Callable[[Progress], None] | None = None,
    settle: Settle | None = None,
    ahead: int | None = None,
) -> None:
    """Check the products of each plan, add the results to ``report`` as they arrive and store
    them in batches under its run id (what ``settle`` keeps of each batch, when given). Unaudited:
    the caller writes the audit row of the whole run.

    ``batches`` is taken lazily, one batch whenever the prober runs low (``Prober.check``'s
    ``more``: fewer than ``ahead`` connections open), so the next batch is read (a worker claims
    it) and its credentials decrypted while the one before still runs; ``Progress.total`` grows
    as batches come."""
    require(triggered_by, Permission.RUN_TESTS)
    writer = _Writer(rt, report, triggered_by.name, settle)
    by_target: dict[int, ConnectionView] = {}
    pending = iter(batches)
    total = done = 0

    def deliver(view: ConnectionView, result: ProbeResult) -> None:
        nonlocal done
        record = _record(view, result, report.run_id)
        report.results.append(record)
        writer.add(record, result)
        if result.product != TOKEN:
            done += 1
            if on_progress:
                on_progress(Progress(done, total, record))

    def next_targets() -> list[Target]:
        """The next batch that has anything to run, as targets (unreadable credentials are
        results at once); none left: empty."""
        nonlocal total
        for plans in pending:
            total += sum(len(products) for _, products in plans)
            loaded = connections.load_credentials_of(rt.engine, rt.vault, [view.id for view, _ in plans])
            targets: list[Target] = []
            for view, products in plans:
                credentials = loaded.get(view.id)  # None: deleted since the plan was made; nothing to test
                if isinstance(credentials, CredentialUnreadable):
                    now = datetime.now(UTC)
                    for key in products:
                        deliver(view, ProbeResult(key, "credential_unreadable", f"Not tested: {credentials}", now))
                elif credentials is not None:
                    target = Target(
                        credentials=credentials, settings=view.settings, products=products, connection_id=view.id
                    )
                    by_target[id(target)] = view
                    targets.append(target)
            if targets:
                return targets
        return []

    try:
        prober.check([], lambda target, result: deliver(by_target[id(target)], result), more=next_targets, ahead=ahead)
    finally:
        writer.flush()
