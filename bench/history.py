"""Benchmark: what a year of history costs: each read path with it against none, the size of
the database, and the pruning of a day's expired checks (issue 24).

"A year of history" is the state a year of scheduled checks leaves with the default retention
(lib.services.checking.retention): the last 30 days of raw checks (the day before them written too, then pruned
here), everything the storage code keeps beside them, and a year of audit rows (one per tick,
as a worker writes them; the audit trail is kept 400 days). The checks are written as a worker
writes them: N connections x 5 products plus the token step, every 15 minutes, through
lib.services.checking.checks.store, a batch of at most checks.BATCH_SIZE results per transaction, so every table
store() keeps (tally, current status, rollups) is filled exactly as the code fills it.

Prints, as ratios measured in this run between a new database (its first day of checks, so a
connection's newest 500 are there, and a week of audit rows, so the Audit page's first page is
full: every bounded window is as full as it ever gets) and one with that history (goal <= 1.2x
each): /metrics, /api/v1/status, the CSV export, a connection's history (its detail page), the
Audit page's first page, storing one tick's checks, and ``db upgrade`` (a no-op at head). Then the database's size with its extrapolation to 1,000
connections after a year (goal <= 2 GB), and the pruning of one day's expired checks by
lib.services.checking.retention's own Pruner (an injected clock): its time as a share of the 15-minute interval
(goal <= 5 %) and its longest hold of the database (goal <= 100 ms). Not a test: nothing here
asserts a time.

    .venv/bin/python -m bench.history [--connections 25] [--days 30] [--runs 7]

The default size is what storing through lib.services.checking.checks.store allows in a few minutes on a 2-core
machine (about 0.4 ms a check row: 25 connections x 31 days is 446,400 rows); figures for
1,000 connections are extrapolated from it, linearly, and say so.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, event, insert, text

from bench import report
from bench.bulk_check import BENCH, SETTINGS
from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.kernel.config import Settings
from lib.services import connections
from lib.services.checking import checks, retention
from lib.services.checking.schedule import DEFAULT_EVERY
from lib.services.connections import ConnectionInput
from lib.services.guard import audit
from lib.services.history import status
from lib.services.history.status import CheckRecord
from lib.services.reporting import export, machine_status, metrics
from lib.services.runtime import Runtime
from lib.store import db
from lib.store.keyring import check_keyring
from lib.store.models import AuditEvent, utcnow
from lib.store.vault import Keyring, Vault, new_key

YEAR = timedelta(days=365)
FLEET = 1_000  # the size the goals speak of
TICKS_A_DAY = int(timedelta(days=1) / DEFAULT_EVERY)
STEPS = (TOKEN, *PRODUCT_KEYS)  # what a worker stores per connection and tick
RAW = "check_result"
AUDIT = "audit_event"
NEW_AUDIT_DAYS = (
    7  # the new install's audit trail: more than a page of the Audit page (lib.services.guard.audit.PAGE_SIZE)
)
PER_CONNECTION = ("connection", "current_status", "due_check", "connection_schedule")  # one row set each
WORKER = "bench-host:4242:0a1b2c3d"
# What 8x8 answers, roughly as often as a healthy fleet sees it; details about as long as the prober's.
FAILURES = (
    (OutcomeKey.RATE_LIMITED, 429, ("8x8 answered 429 Too Many Requests: it asked to wait 30 s before asking again.")),
    (
        OutcomeKey.UNEXPECTED_RESPONSE,
        502,
        ("8x8 answered 502 Bad Gateway where 200 was expected; the body was not JSON."),
    ),
)


@dataclass(frozen=True)
class Fleet:
    rt: Runtime
    ids: list[uuid.UUID]
    path: Path


def make_fleet(folder: Path, name: str, n: int) -> Fleet:
    """A new database with n connections made as the console makes them (encrypted, audited)."""
    path = folder / f"{name}.db"
    vault = Vault(Keyring("k1", {"k1": new_key()}))
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    check_keyring(engine, vault)
    ids = [
        connections.create(
            engine,
            vault,
            ConnectionInput(
                name=f"Bench {i:05d}",
                client_id=f"bench-client-{i:04d}",
                client_secret=SecretStr(f"bench-secret-{i:04d}"),
                **SETTINGS,
            ),
            actor=BENCH,
        ).id
        for i in range(n)
    ]
    return Fleet(
        Runtime(Settings(f"sqlite:///{path}", folder / "unused", "http://127.0.0.1:9"), engine, vault), ids, path
    )


def tick_records(ids: list[uuid.UUID], at: datetime, tick: int) -> list[CheckRecord]:
    """One scheduled tick's results: a token step and five products per connection, about one
    in a hundred failing."""
    run_id = str(uuid.uuid4())
    found = []
    for i, cid in enumerate(ids):
        for k, product in enumerate(STEPS):
            spin = (tick * 7 + i * 13 + k) % 100
            outcome, http, detail = (
                FAILURES[(tick + i) % 2]
                if spin == 0
                else (OutcomeKey.OK, 200, f"{spin % 20 + 1} users found by {product}.")
            )  # as lib.eightbyeight.answers
            found.append(
                CheckRecord(
                    cid,
                    f"Bench {i:05d}",
                    product,
                    outcome,
                    http,
                    40 + spin * 3,
                    detail,
                    at + timedelta(milliseconds=i * 5),
                    run_id,
                )
            )
    return found


def store_tick(engine: Engine, records: list[CheckRecord]) -> None:
    """As a worker stores a tick: at most checks.BATCH_SIZE results a transaction."""
    for start in range(0, len(records), checks.BATCH_SIZE):
        with db.write_session(engine) as session:
            checks.store(session, records[start : start + checks.BATCH_SIZE], {}, "schedule")


def write_history(fleet: Fleet, first: datetime, ticks: int) -> None:
    for tick in range(ticks):
        store_tick(fleet.rt.engine, tick_records(fleet.ids, first + tick * DEFAULT_EVERY, tick))


def write_audit(engine: Engine, n: int, last: datetime, days: int) -> None:
    """A worker's run rows (lib.services.checking.checks.record_run's words), one per tick for ``days`` before
    ``last``, in one statement per day."""
    target = f"{n:,} connections (scheduled, worker {WORKER})"
    with db.write_session(engine) as session:
        for day in range(days):
            session.connection().execute(
                insert(AuditEvent),
                [
                    {
                        "at": last - timedelta(days=day) - k * DEFAULT_EVERY,
                        "actor": "schedule",
                        "client_address": None,
                        "action": "check.run",
                        "target": target,
                        "result": audit.OK,
                        "detail": f"{n * len(PRODUCT_KEYS):,} OK, 0 failing (run {uuid.uuid4()})",
                    }
                    for k in range(TICKS_A_DAY)
                ],
            )


# --- Measuring ----------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def read_paths(fleet: Fleet) -> dict[str, Callable[[], Any]]:
    """Each path as its face calls it (lib.web.api for /metrics and /api/v1/status, the
    download button and ``switchboard export``, the detail page, the Audit page)."""
    engine, someone = fleet.rt.engine, fleet.ids[len(fleet.ids) // 2]
    return {
        "/metrics": lambda: metrics.exposition(engine, per_connection=True, actor=BENCH),
        "/api/v1/status": lambda: machine_status.everything(engine, actor=BENCH),
        "export CSV": lambda: export.export(engine, "csv", actor=BENCH),
        "a connection's history (detail page)": lambda: status.history(engine, someone, limit=500),
        "Audit page, first page": lambda: audit.page(engine, BENCH),
        "db upgrade (at head)": lambda: db.upgrade(engine),
    }


def compare(new: Fleet, old: Fleet, runs: int) -> dict[str, tuple[float, float]]:
    """(seconds with no history, seconds with it) per path, the two taken in turns."""
    paths_new, paths_old = read_paths(new), read_paths(old)
    found = {}
    for path in paths_new:
        timed(paths_new[path])  # imports and compiled statements are not what is measured
        timed(paths_old[path])
        pairs = [(timed(paths_new[path]), timed(paths_old[path])) for _ in range(runs)]
        found[path] = (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))
    return found


def tick_store(new: Fleet, old: Fleet, after: datetime, runs: int) -> tuple[float, float]:
    """Storing one more tick of checks, in turns on each database."""
    pairs = []
    for run in range(runs + 1):
        at = after + (run + 1) * DEFAULT_EVERY
        one = timed(lambda: store_tick(new.rt.engine, tick_records(new.ids, at, run)))  # noqa: B023
        two = timed(lambda: store_tick(old.rt.engine, tick_records(old.ids, at, run)))  # noqa: B023
        if run:  # the first of each warms up
            pairs.append((one, two))
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


@contextmanager
def holds(engine: Engine) -> Iterator[list[float]]:
    """How long each use of a pooled connection lasted while the block ran (a transaction, or
    giving space back, each holding SQLite's lock at most that long): an upper bound on each."""
    taken: dict[int, float] = {}
    found: list[float] = []

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        taken[id(dbapi_conn)] = time.perf_counter()

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if id(dbapi_conn) in taken:
            found.append(time.perf_counter() - taken.pop(id(dbapi_conn)))

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine.pool, "checkin", checkin)
    try:
        yield found
    finally:
        event.remove(engine.pool, "checkout", checkout)
        event.remove(engine.pool, "checkin", checkin)


def prune_a_day(fleet: Fleet, now: datetime) -> tuple[float, float, int]:
    """lib.services.checking.retention's Pruner, its clock at ``now``, with no budget to stop it: (seconds, the
    longest hold of the database, checks deleted)."""
    pruner = retention.Pruner(fleet.rt, budget=timedelta(days=1), now=lambda: now)
    with holds(fleet.rt.engine) as held:
        start = time.perf_counter()
        pruned = pruner.run()
        seconds = time.perf_counter() - start
    return seconds, max(held), pruned.rows["checks"]


def table_bytes(engine: Engine) -> dict[str, tuple[int, int]]:
    """(bytes, rows) per table, its indexes included (SQLite's dbstat)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes = dict(
            conn.execute(
                text(
                    "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat s JOIN sqlite_schema m "
                    "ON s.name = m.name GROUP BY m.tbl_name"
                )
            ).all()
        )
        return {
            name: (size, conn.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar_one())
            for name, size in sizes.items()
        }


def a_year_at(sizes: dict[str, tuple[int, int]], n: int, days: int) -> float:
    """Bytes after a year at FLEET connections: the raw checks the retention keeps (bytes per
    check measured here), a year of audit rows, tables of one row set per connection scaled to
    the fleet, and every other table scaled to the fleet and to a year (an upper bound: most
    hold a few rows whatever the age)."""
    total = 0.0
    for name, (size, rows) in sizes.items():
        if name == RAW:
            total += size / max(rows, 1) * FLEET * len(STEPS) * TICKS_A_DAY * retention.DEFAULT_KEEP_CHECKS.days
        elif name == AUDIT:
            total += size / max(rows, 1) * TICKS_A_DAY * YEAR.days
        elif name in PER_CONNECTION:
            total += size * FLEET / n
        else:
            total += size * FLEET / n * YEAR.days / days
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=25)
    parser.add_argument(
        "--days",
        type=int,
        default=retention.DEFAULT_KEEP_CHECKS.days,
        help="days of raw checks kept (one more is written, then pruned)",
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    n, days = args.connections, args.days
    ticks = (days + 1) * TICKS_A_DAY
    now = utcnow().replace(microsecond=0)
    first = now - (ticks - 1) * DEFAULT_EVERY
    with tempfile.TemporaryDirectory(prefix="switchboard-history-bench-") as tmp:
        new, old = make_fleet(Path(tmp), "new", n), make_fleet(Path(tmp), "old", n)
        start = time.perf_counter()
        write_history(new, now - (TICKS_A_DAY - 1) * DEFAULT_EVERY, TICKS_A_DAY)
        write_audit(new.rt.engine, n, now, NEW_AUDIT_DAYS)
        write_history(old, first, ticks)
        write_audit(old.rt.engine, n, now, YEAR.days)
        print(
            f"workload: {n} connections x {len(PRODUCT_KEYS)} products and the token step every "
            f"{DEFAULT_EVERY.seconds // 60} min. New: its first day of checks and {NEW_AUDIT_DAYS} days of audit "
            f"rows (every bounded window full). A year: {days + 1} days of checks ({ticks * n * len(STEPS):,} "
            f"rows; the oldest day then pruned) and {YEAR.days} days of audit rows. Written in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
        # The clock of the pruning: the oldest day has just expired (on the default size, now).
        seconds, longest, gone = prune_a_day(old, first + timedelta(days=1) + retention.DEFAULT_KEEP_CHECKS)
        print(
            f"pruned {gone:,} checks (a day's) in {seconds:.2f} s; longest hold of the database "
            f"{longest * 1000:.1f} ms",
            flush=True,
        )
        timed = compare(new, old, args.runs)
        timed["storing a tick's checks"] = tick_store(new, old, now, args.runs)
        sizes = table_bytes(old.rt.engine)
        file_bytes = old.path.stat().st_size
    for path, (empty, full) in timed.items():
        print(f"{path}: {empty * 1000:.1f} ms new, {full * 1000:.1f} ms with the history", flush=True)
        report.line(f"{path}, with a year of history / new", full / empty, "x", "<= 1.2x", report.at_most(1.2))
    raw_size, raw_rows = sizes[RAW]
    print(
        "largest tables: "
        + ", ".join(
            f"{name} {size / 2**20:,.1f} MiB ({rows:,} rows)"
            for name, (size, rows) in sorted(sizes.items(), key=lambda item: -item[1][0])[:5]
        )
    )
    year = a_year_at(sizes, n, days + 1)
    print(
        f"database file: {file_bytes / 2**20:,.1f} MiB at {n} connections ({raw_size / raw_rows:.0f} bytes a "
        f"check with its indexes); after a year at {FLEET:,} connections (extrapolated): {year / 2**30:.2f} GiB, "
        f"{year / FLEET / 2**20:.2f} MiB per connection-year",
        flush=True,
    )
    report.line(
        f"database after a year at {FLEET:,} connections (extrapolated from {n})",
        year / 2**30,
        " GiB",
        "<= 2 GiB",
        report.at_most(2),
    )
    interval = DEFAULT_EVERY.total_seconds()
    report.line(
        f"pruning a day's expired checks at {n} connections / 15-minute interval",
        seconds / interval * 100,
        " %",
        "<= 5 %",
        report.at_most(5),
    )
    report.line(
        f"pruning a day's expired checks at {FLEET:,} connections (extrapolated) / 15-minute interval",
        seconds * FLEET / n / interval * 100,
        " %",
        "<= 5 %",
        report.at_most(5),
    )
    report.line("longest prune transaction", longest * 1000, " ms", "<= 100 ms", report.at_most(100))


if __name__ == "__main__":
    main()
