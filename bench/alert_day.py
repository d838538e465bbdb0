"""Benchmark: how many alert messages one channel gets in a scripted day (issue 25), against
the goal of at most one message per incident plus one when it is over.

The day is 96 scheduled ticks, 15 minutes apart, of N connections x five products (a token
step each), stored through lib.services.checking.checks.store and followed by the worker's
alert tick (lib.services.alerts.tick) at the tick's moment, as a worker does. Three incidents:

- an 8x8 outage of Cloud Storage Service on every connection for 30 minutes (two ticks);
- a rotated Client Secret: one connection refused by 8x8's token endpoint for two hours;
- a flapping product: one connection's Contact Center Chat fails twice, works once, four times.

Messages are counted at the channel's sender (the ``send`` seam the worker's delivery calls),
by event kind and product. Not a test: nothing here asserts a count; tests/test_alerts.py holds the rules.

    .venv/bin/python -m bench.alert_day [--connections 50]
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from bench import report
from bench.bulk_check import BENCH
from bench.history import STEPS, Fleet, make_fleet, store_tick
from lib.catalogue.outcomes import OutcomeKey
from lib.notify.models import Attempt, Destination, Event
from lib.notify.urls import Allow
from lib.services import alerts
from lib.services.alerts import channels
from lib.services.history.status import CheckRecord
from lib.store.models import utcnow

EVERY = timedelta(minutes=15)
TICKS = 96
OUTAGE = range(20, 22)  # ticks in which Cloud Storage fails everywhere: 30 minutes
ROTATED = range(40, 48)  # ticks in which connection 0's old secret is refused: two hours
FLAPPING = [60 + 3 * i + k for i in range(4) for k in (0, 1)]  # connection 1's chat: fail, fail, works
INCIDENTS = 3


def outcome_of(connection: int, product: str, tick: int) -> tuple[str, int]:
    """What 8x8 answers the connection's product (or token step) at the tick, by the script."""
    if connection == 0 and tick in ROTATED:
        return OutcomeKey.BAD_CREDENTIALS, 401
    if product == "cloud_storage" and tick in OUTAGE:
        return OutcomeKey.VENDOR_ERROR, 503
    if connection == 1 and product == "cc_chat" and tick in FLAPPING:
        return OutcomeKey.TIMEOUT, 0
    return OutcomeKey.OK, 200


def records_at(fleet: Fleet, at: datetime, tick: int) -> list[CheckRecord]:
    run = str(uuid.uuid4())
    found = []
    for i, cid in enumerate(fleet.ids):
        for product in STEPS:
            outcome, http = outcome_of(i, product, tick)
            found.append(CheckRecord(cid, f"Bench {i:05d}", product, outcome, http, 120, "", at, run))
    return found


def counting() -> tuple[Counter[str], Callable[[Destination, Event], Attempt]]:
    """A sender that delivers nothing and counts what it was given, by event kind and product."""
    seen: Counter[str] = Counter()

    def send(destination: Destination, event: Event) -> Attempt:
        seen[f"{event.kind.value} {event.product or ''}".strip()] += 1
        return Attempt(delivered=True, status=200)

    return seen, send


def scripted_day(folder: Path, n: int) -> Counter[str]:
    fleet = make_fleet(folder, "alert-day", n)
    channels.add(
        fleet.rt.engine,
        fleet.rt.vault,
        "On-call",
        "webhook",
        SecretStr("http://127.0.0.1:9/hook"),
        actor=BENCH,
        allow=Allow.of(["127.0.0.1"]),
    )
    seen, send = counting()
    first = utcnow() + timedelta(minutes=1)  # after the outbox's own clock: every message is due at its tick
    for tick in range(TICKS):
        at = first + tick * EVERY
        store_tick(fleet.rt.engine, records_at(fleet, at, tick))
        alerts.tick(fleet.rt, worker="bench-alert-day", send=send, now=lambda at=at: at)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        seen = scripted_day(Path(folder), max(args.connections, 2))
    total = sum(seen.values())
    print("messages by kind and product:", ", ".join(f"{what}: {n}" for what, n in sorted(seen.items())))
    goal = 2 * INCIDENTS
    report.line(
        f"messages to one channel in a scripted day ({args.connections} connections, {INCIDENTS} incidents)",
        total,
        "",
        f"<= {goal}: one per incident and one when it is over",
        report.at_most(goal),
    )


if __name__ == "__main__":
    main()
