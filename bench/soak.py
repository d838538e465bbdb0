"""Benchmark: one server with its own worker checking N connections x 5 products against the
simulator every minute, for an hour: does its resident memory stay flat (issue 24)?

The server is a real ``streamlit run serve.py`` (tests/fixtures/server.py) with the worker in
its process (SWITCHBOARD_WORKER on, the default), on a SQLite file seeded through the services
as the console seeds it: N connections to the simulator's apps (its own process, 20 ms
latency), the schedule at its shortest interval (1 minute), a webhook channel to a local
receiver, an API token and a signed-in admin. A few connections always fail (every 50th has a
wrong secret, the one after it an app without Chat) and every 5 minutes one healthy product
fails twice, so alert rules, the outbox and its deliveries run all along. Every ``--poll-s``
seconds the bench reads /metrics and /api/v1/status with the token; every ``--sample-s``
seconds it samples the server's VmRSS (its child processes included) and opens the
Connections page through a signed-in WebSocket session (as bench.instances does), so the
read paths and their caches run too.

Prints each sample, then resident memory after the warm-up (10 minutes, or a sixth of a shorter
run), at the end and at its peak, with the ratio end / after the warm-up (goal <= 1.1x); checks
stored per minute after the warm-up (from /metrics) against N x 5 (goal >= 0.95x: the worker
kept the schedule, so the memory was measured under the load it describes); the database's
growth and the alerts delivered. Not a test: nothing here asserts a time.

    .venv/bin/python -m bench.soak [--connections 200] [--minutes 60] [--sample-s 30] [--poll-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
from pydantic import SecretStr

from bench import report
from bench.bulk_check import BENCH, SETTINGS, scenario, start_simulator
from bench.instances import cpu_seconds, one_session
from lib.catalogue.products import PRODUCT_KEYS
from lib.kernel.config import load_settings
from lib.services import connections
from lib.services.accounts import api_tokens, sessions, users
from lib.services.alerts import channels
from lib.services.checking import schedule
from lib.services.connections import ConnectionInput
from lib.services.guard.access import Principal, Role
from lib.services.runtime import open_runtime
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import PASSWORD, start_server

WARM_UP_S = 600.0  # memory is compared with what it was this long after the start
FAULT_EVERY_S = 300.0  # one healthy product fails twice this often: an alert raised and cleared
WRONG_SECRET, NOT_GRANTED = 1, 2  # connection i fails when i % 50 is one of these
UNGRANTED = "cc_chat"  # the product the NOT_GRANTED apps lack
FLAPPING = ("cloud_storage", "bench-client-0000")  # (route, client) the periodic fault hits


def soak_scenario(n: int, latency_ms: int) -> dict[str, object]:
    """bench.bulk_check's apps, every 50th (from the third) without Chat."""
    plan = scenario(n, latency_ms)
    for i, app in enumerate(cast(list[dict[str, object]], plan["apps"])):
        if i % 50 == NOT_GRANTED:
            app["products"] = [key for key in PRODUCT_KEYS if key != UNGRANTED]
    return plan


@dataclass(frozen=True)
class Seeded:
    api_token: str
    session_token: str


def seed(env: dict[str, str], n: int, hook: str) -> Seeded:
    """The database as an admin would leave it: connections, the 1-minute schedule, a webhook
    channel, an API token for the scraper and a signed-in admin for the page."""
    rt = open_runtime(load_settings(env), create=True)
    try:
        for i in range(n):
            secret = "wrong-secret" if i % 50 == WRONG_SECRET else f"bench-secret-{i:04d}"
            connections.create(
                rt.engine,
                rt.vault,
                ConnectionInput(
                    name=f"Soak {i:05d}",
                    client_id=f"bench-client-{i:04d}",
                    client_secret=SecretStr(secret),
                    **SETTINGS,
                ),
                actor=BENCH,
            )
        schedule.set_every(rt.engine, schedule.MIN_EVERY, actor=BENCH)
        channels.add(
            rt.engine,
            rt.vault,
            "Soak hook",
            "webhook",
            SecretStr(hook),
            actor=BENCH,
            allow=channels.allowed(rt.settings),
        )
        token = api_tokens.create(rt.engine, "soak", Role.VIEWER, actor=BENCH).token.get_secret_value()
        users.add(rt.engine, "soak", SecretStr(PASSWORD), "admin", actor=BENCH, own_password=True)
        session = sessions.new_token()
        sessions.start(rt.engine, sessions.Key.of(session), Principal("soak", Role.ADMIN, "127.0.0.1", "local"))
        return Seeded(token, session)
    finally:
        rt.engine.dispose()


def rss_kb(pid: int) -> int:
    """VmRSS of a process and of every process under it (the children of any of its threads)."""
    total, pending = 0, [pid]
    while pending:
        each = pending.pop()
        try:
            status = Path(f"/proc/{each}/status").read_text()
            for task in Path(f"/proc/{each}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def checks_stored(exposition: str) -> int:
    """The sum of ``switchboard_check_total``: every product check stored since the database began."""
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in exposition.splitlines()
        if line.startswith("switchboard_check_total{")
    )


def database_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_kb: int
    checks: int
    db_bytes: int


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def poll(client: httpx.Client) -> int:
    """Read /api/v1/status and /metrics as a monitor and a scraper do; the checks stored so far."""
    for path in ("/api/v1/status", "/metrics"):
        answer = client.get(path)
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}: {answer.text[:300]}")
    return checks_stored(answer.text)


def fail_twice(sim: str) -> None:
    """The flapping product's next two checks fail (404): check.failed, then check.recovered."""
    route, client = FLAPPING
    httpx.post(f"{sim}/_sim/faults", json={"route": route, "client_id": client, "status": 404, "times": 2})


def run(url: str, sim: str, seeded: Seeded, pid: int, db_path: Path, args: argparse.Namespace) -> list[Sample]:
    """Poll, sample and visit for ``args.minutes``; the samples, the first at the start, the last
    at the end."""
    samples: list[Sample] = []
    start = time.monotonic()
    end = start + args.minutes * 60
    next_poll = next_sample = next_fault = start
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {seeded.api_token}"}, timeout=60) as client:
        checks = poll(client)
        while True:
            now = time.monotonic()
            if now >= next_fault:
                fail_twice(sim)
                next_fault += FAULT_EVERY_S
            if now >= next_poll or now >= end:
                checks = poll(client)
                next_poll = now + args.poll_s
            if now >= next_sample or now >= end:
                sample = Sample(min(now, end) - start, rss_kb(pid), checks, database_bytes(db_path))
                samples.append(sample)
                print(
                    f"{sample.at_s / 60:6.1f} min: RSS {mb(sample.rss_kb)}, {sample.checks} checks stored, "
                    f"database {sample.db_bytes / 1e6:.1f} MB",
                    flush=True,
                )
                if now >= end:
                    return samples
                asyncio.run(one_session(url, seeded.session_token))
                while next_sample <= time.monotonic():  # a slow visit skips samples rather than bunching them
                    next_sample += args.sample_s
            time.sleep(max(0.0, min(next_poll, next_sample, end) - time.monotonic()))


def at(samples: list[Sample], seconds: float) -> Sample:
    """The first sample taken at or after ``seconds``."""
    return next(s for s in samples if s.at_s >= seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--sample-s", type=float, default=30, help="seconds between memory samples and page visits")
    parser.add_argument("--poll-s", type=float, default=5, help="seconds between reads of /metrics and the status API")
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    n = args.connections

    with tempfile.TemporaryDirectory(prefix="switchboard-soak-") as tmp, Receiver() as receiver:
        scenario_file = Path(tmp) / "scenario.json"
        scenario_file.write_text(json.dumps(soak_scenario(n, args.latency_ms)))
        sim_proc, sim = start_simulator(scenario_file)
        db_path = Path(tmp) / "data" / "sb.db"
        env = {
            "SWITCHBOARD_DATABASE_URL": f"sqlite:///{db_path}",
            "SWITCHBOARD_KEYRING_FILE": str(Path(tmp) / "keys" / "keyring.json"),
            "SWITCHBOARD_ALERT_ALLOW": "127.0.0.1",
            "SWITCHBOARD_WORKER": "on",
        }
        try:
            seeded = seed(env, n, receiver.url("/hook"))
            failing = sum(1 for i in range(n) if i % 50 in (WRONG_SECRET, NOT_GRANTED))
            print(
                f"workload: {n} connections x {len(PRODUCT_KEYS)} products every "
                f"{schedule.MIN_EVERY.seconds // 60} min (the shortest interval), {args.latency_ms} ms latency, "
                f"{failing} connections failing; {args.minutes:g} min, RSS every {args.sample_s:g} s, "
                f"/metrics and /api/v1/status every {args.poll_s:g} s",
                flush=True,
            )
            server = start_server(env, sim)
            try:
                cpu_before = cpu_seconds(server.process.pid)
                samples = run(server.url, sim, seeded, server.process.pid, db_path, args)
                cpu = cpu_seconds(server.process.pid) - cpu_before
            finally:
                server.stop()
        finally:
            sim_proc.terminate()
            sim_proc.wait()
        delivered = len(receiver.received)

    warm_up_s = min(WARM_UP_S, args.minutes * 60 / 6)
    warm, last = at(samples, warm_up_s), samples[-1]
    peak = max(samples, key=lambda s: s.rss_kb)
    steady_min = max(last.at_s - warm.at_s, 1e-9) / 60
    per_minute = (last.checks - warm.checks) / steady_min
    hours = max(last.at_s, 1e-9) / 3600
    print(
        f"resident memory: {mb(samples[0].rss_kb)} at the start, {mb(warm.rss_kb)} at {warm.at_s / 60:.1f} min, "
        f"{mb(last.rss_kb)} at the end ({last.at_s / 60:.1f} min), peak {mb(peak.rss_kb)} at {peak.at_s / 60:.1f} min",
        flush=True,
    )
    print(
        f"checks stored: {last.checks} in all, {per_minute:.0f} a minute after the warm-up (expected {n * 5}); "
        f"alerts delivered to the webhook: {delivered}; server CPU {cpu:.0f} s ({cpu / max(last.at_s, 1e-9):.0%} "
        f"of a core); database {samples[0].db_bytes / 1e6:.1f} -> {last.db_bytes / 1e6:.1f} MB "
        f"({(last.db_bytes - samples[0].db_bytes) / 1e6 / hours:.1f} MB an hour)",
        flush=True,
    )
    report.line(
        f"resident memory at the end / after {round(warm_up_s / 60, 1):g} min, {n} connections every minute",
        last.rss_kb / warm.rss_kb,
        "x",
        "<= 1.1x",
        report.at_most(1.1),
    )
    report.line(
        "checks stored a minute after the warm-up / connections x 5 products",
        per_minute / (n * len(PRODUCT_KEYS)) if n else 0.0,
        "x",
        ">= 0.95x",
        report.at_least(0.95),
    )


if __name__ == "__main__":
    main()
