"""Run checks for one product, one connection, a list or all connections, and keep the results.

Results are written in batches as they arrive; the latest outcome per (connection, product)
comes back from one indexed query whatever the number of connections.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select
from sqlmodel import col

from lib import audit, connections
from lib.access import Permission, Principal, require
from lib.connections import ConnectionView
from lib.db import read_session, write_session
from lib.eightbyeight import ProbeResult, Target
from lib.errors import CredentialUnreadable, FieldError, ValidationError
from lib.models import Check, Connection
from lib.prober import Prober, ProberClosed
from lib.products import PRODUCT_KEYS, TOKEN
from lib.runtime import Runtime

BATCH_SIZE = 50
BATCH_SECONDS = 0.5


@dataclass(slots=True)
class CheckRecord:
    """One stored check, as the console, the CLI and exports read it."""

    connection_id: uuid.UUID
    connection: str
    product: str
    outcome: str
    http_status: int | None
    duration_ms: int
    detail: str
    checked_at: datetime
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass
class Progress:
    done: int
    total: int
    last: CheckRecord


@dataclass
class RunReport:
    run_id: str
    results: list[CheckRecord] = field(default_factory=list)

    @property
    def products(self) -> list[CheckRecord]:
        """Product results only (token steps left out)."""
        return [r for r in self.results if r.product != TOKEN]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.products)


def products_to_check(view: ConnectionView, only: str | None = None) -> tuple[str, ...]:
    """The admin's expected products, or all five when none are set; ``only`` narrows it."""
    chosen = view.expected_products or PRODUCT_KEYS
    if only is None:
        return chosen
    if only not in PRODUCT_KEYS:
        raise ValidationError([FieldError("product", f"Unknown product '{only}'; use one of {', '.join(PRODUCT_KEYS)}.")])
    return (only,)


def _record(view: ConnectionView, result: ProbeResult, run_id: str) -> CheckRecord:
    return CheckRecord(view.id, view.name, result.product, result.outcome, result.http_status,
                       result.duration_ms, result.detail, result.started_at, run_id)


class _Writer:
    """Collects records and writes them in batches (by count or by age)."""

    def __init__(self, rt: Runtime, triggered_by: str) -> None:
        self.rt, self.triggered_by = rt, triggered_by
        self.pending: list[CheckRecord] = []
        self.granted: dict[uuid.UUID, frozenset[str]] = {}
        self.flushed_at = time.monotonic()

    def add(self, record: CheckRecord, granted: frozenset[str] | None) -> None:
        self.pending.append(record)
        if granted is not None:
            self.granted[record.connection_id] = granted
        if len(self.pending) >= BATCH_SIZE or time.monotonic() - self.flushed_at > BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if not self.pending and not self.granted:
            return
        with write_session(self.rt.engine) as session:
            session.add_all([
                Check(connection_id=r.connection_id, product=r.product, started_at=r.checked_at,
                      duration_ms=r.duration_ms, http_status=r.http_status, outcome=r.outcome,
                      detail=r.detail, triggered_by=self.triggered_by, run_id=r.run_id)
                for r in self.pending
            ])
            for connection_id, granted in self.granted.items():
                connections.record_granted(session, connection_id, granted)
        self.pending, self.granted = [], {}


def run_checks(
    rt: Runtime,
    prober: Prober,
    *,
    connection_ids: Sequence[uuid.UUID] | None = None,
    product: str | None = None,
    triggered_by: Principal,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunReport:
    """Check the given connections (all when None) and store every result under one run id."""
    require(triggered_by, Permission.RUN_TESTS)
    views = connections.list_connections(rt.engine)
    if connection_ids is not None:
        wanted = set(connection_ids)
        views = [v for v in views if v.id in wanted]
    report = RunReport(run_id=str(uuid.uuid4()))
    writer = _Writer(rt, triggered_by.name)
    by_target: dict[int, ConnectionView] = {}
    targets: list[Target] = []
    plans = [(view, products_to_check(view, product)) for view in views]
    total = sum(len(products) for _, products in plans)
    done = 0

    def deliver(view: ConnectionView, result: ProbeResult) -> None:
        nonlocal done
        record = _record(view, result, report.run_id)
        report.results.append(record)
        writer.add(record, result.granted)
        if result.product != TOKEN:
            done += 1
            if on_progress:
                on_progress(Progress(done, total, record))

    for view, products in plans:
        try:
            credentials = connections.load_credentials(rt.engine, rt.vault, view.id)
        except CredentialUnreadable as exc:
            now = datetime.now(timezone.utc)
            for key in products:
                deliver(view, ProbeResult(key, "credential_unreadable", f"Not tested: {exc}", now))
            continue
        target = Target(credentials=credentials, settings=view.settings, products=products,
                        connection_id=view.id)
        by_target[id(target)] = view
        targets.append(target)
    what = (views[0].name if len(views) == 1 else f"{len(views)} connection(s)") + (f" / {product}" if product else "")
    try:
        prober.check(targets, lambda target, result: deliver(by_target[id(target)], result))
    except ProberClosed:
        audit.record_now(rt.engine, triggered_by, "check.run", what, audit.FAILED,
                         f"run {report.run_id}: cut short after {len(report.products)} of {total} result(s)")
        raise
    finally:
        writer.flush()
    failing = sum(1 for r in report.products if not r.ok)
    audit.record_now(rt.engine, triggered_by, "check.run", what, audit.OK if report.ok else audit.FAILED,
                     f"run {report.run_id}: {len(report.products) - failing} ok, {failing} not ok")
    return report


_RECORD_COLUMNS = (Check.connection_id, Connection.name, Check.product, Check.outcome, Check.http_status,
                   Check.duration_ms, Check.detail, Check.started_at, Check.run_id)


def _records(engine: Engine, query: Any) -> list[CheckRecord]:
    # Plain column tuples: loading ORM objects made this 10x slower at 50,000 rows.
    with read_session(engine) as session:
        return [CheckRecord(*row) for row in session.connection().execute(query).all()]


def latest_status(engine: Engine, *, include_token: bool = False) -> list[CheckRecord]:
    """The newest check per (connection, product), in one query."""
    latest = (
        sql_select(Check.connection_id, Check.product, func.max(Check.id).label("id"))
        .group_by(Check.connection_id, Check.product)
        .subquery()
    )
    query = (
        sql_select(*_RECORD_COLUMNS)
        .join(latest, col(Check.id) == latest.c.id)
        .join(Connection, col(Connection.id) == col(Check.connection_id))
        .order_by(Connection.name_key, Check.product)
    )
    if not include_token:
        query = query.where(Check.product != TOKEN)
    return _records(engine, query)


def history(engine: Engine, connection_id: uuid.UUID, *, limit: int = 500) -> list[CheckRecord]:
    """A connection's checks, newest first."""
    return _records(engine, sql_select(*_RECORD_COLUMNS)
                    .join(Connection, col(Connection.id) == col(Check.connection_id))
                    .where(Check.connection_id == connection_id)
                    .order_by(col(Check.id).desc())
                    .limit(limit))


def data_stamp(engine: Engine) -> tuple[object, ...]:
    """Changes whenever a check is stored or a connection is added, edited or removed: a cheap
    key for caching views of the status."""
    with read_session(engine) as session:
        conn = session.connection()
        checks_part = conn.execute(sql_select(func.max(Check.id))).one()
        connections_part = conn.execute(sql_select(func.count(), func.max(Connection.updated_at),
                                                   func.max(Connection.granted_at))).one()
    return (*checks_part, *connections_part)
