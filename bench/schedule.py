"""Benchmark: one scheduled tick with every connection due, N connections x 5 products against
the simulator with 50 ms latency, at concurrency 50.

Prints the tick's wall time as a share of a 5-minute interval (goal <= 25 %: a tick must be
done long before the next slots fall due), its ratio to the lower bound (requests /
concurrency x latency) with what that projects for 10,000 connections, and token requests per
connection in the tick (goal exactly 1.00: a connection's products share one token, also when
its rows are claimed in different batches).

    .venv/bin/python -m bench.schedule [--connections 10000] [--latency-ms 50] [--concurrency 50]

The simulator runs in its own process (as in bench.bulk_check). The tick is a real worker's:
claims, checks, and each slot completed in the transaction that stores its check (SQLite).
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import httpx
from sqlalchemy import update

from bench import report
from bench.bulk_check import BENCH, fleet
from lib.catalogue.products import PRODUCT_KEYS
from lib.eightbyeight.prober import Prober
from lib.kernel import collector
from lib.services.checking import schedule
from lib.services.checking.worker import Worker
from lib.services.runtime import Runtime
from lib.store import db
from lib.store.models import DueCheck, utcnow

INTERVAL = timedelta(minutes=5)
FULL_SIZE = 10_000


def all_due(rt: Runtime) -> None:
    with db.write_session(rt.engine) as session:
        session.exec(update(DueCheck).values(due_at=utcnow() - timedelta(seconds=1)))  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=FULL_SIZE)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    n, latency = args.connections, args.latency_ms / 1000

    with fleet(n, args.latency_ms) as (rt, url):
        schedule.set_every(rt.engine, INTERVAL, actor=BENCH)
        print(
            f"workload: {n} connections x {len(PRODUCT_KEYS)} products due at once, {args.latency_ms} ms "
            f"latency, concurrency {args.concurrency}, every {INTERVAL.seconds // 60} min"
        )
        warm = Prober(url)  # imports, statements and the due rows made, as a running worker has them
        worker = Worker(rt, warm)
        worker.tick()
        warm.close()
        collector.settle()  # as a worker process does (lib.cli.common.prober, lib.services.checking.worker.Background)
        all_due(rt)
        worker.prober = Prober(url, max_connections=args.concurrency, per_connection=5)  # no token cached
        try:
            httpx.post(f"{url}/_sim/reset")
            start = time.perf_counter()
            tick = worker.tick()
            seconds = time.perf_counter() - start
        finally:
            worker.prober.close()
        stats = httpx.get(f"{url}/_sim/stats").json()
    requests = sum(v for k, v in stats["requests"].items() if k != "unmatched")
    tokens = sum(stats["token_requests"].values())
    bound = requests / args.concurrency * latency
    full_bound = FULL_SIZE * (len(PRODUCT_KEYS) + 1) / args.concurrency * latency
    print(
        f"one tick: {seconds:.2f} s for {requests} requests ({tokens} token), {tick.checked} checks stored, "
        f"{tick.failing} not ok; lower bound {bound:.2f} s, ours / bound {seconds / bound:.2f}x; at that ratio "
        f"{FULL_SIZE:,} connections take {seconds / bound * full_bound:.0f} s "
        f"({seconds / bound * full_bound / INTERVAL.total_seconds():.0%} of the interval)",
        flush=True,
    )
    report.line(
        f"scheduled tick / {INTERVAL.seconds // 60}-minute interval at {n} connections",
        seconds / INTERVAL.total_seconds() * 100,
        " %",
        "<= 25 %",
        report.at_most(25),
    )
    report.line("token requests per connection in a tick", tokens / n, "", "= 1.00", lambda value: value == 1.0)


if __name__ == "__main__":
    main()
