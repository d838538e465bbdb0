"""Benchmark: check N connections x 5 products against the simulator with 50 ms latency.

For each concurrency, prints our wall time, the lower bound (requests / concurrency x
latency), our ratio to that bound, CPU time per request (process CPU / requests), and the
ratio of a naive serial run (a new token per probe, one request at a time; measured on a
slice of the same workload in the same run) to ours. Also token requests per connection per
run: each concurrency checks the fleet a second time on the same Prober, untimed, as the next
Test all or scheduled tick would, so a token kept from one run to the next would show.
Goals: ratio to the bound <= 1.25x at concurrency 20 and <= 1.5x at 50; <= 1 ms CPU per
request; naive / ours >= 30x; exactly 1.00 token request per connection in each run.

    .venv/bin/python -m bench.bulk_check [--connections 200] [--concurrency 20,50] [--latency-ms 50]

The simulator runs in its own process so the two do not share a GIL. Not a test: nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from bench import report
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.eightbyeight.answers import build_probe
from lib.eightbyeight.client import TOKEN_PATH
from lib.eightbyeight.prober import Prober
from lib.kernel import collector
from lib.kernel.config import Settings
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionInput
from lib.services.guard.access import Principal, Role
from lib.services.runtime import Runtime
from lib.store import db
from lib.store.keyring import check_keyring
from lib.store.vault import Keyring, Vault, new_key

ROOT = Path(__file__).resolve().parent.parent
BENCH = Principal("bench", Role.ADMIN, via="cli")  # acts like the shell: no web session to ask
SETTINGS = {
    "analytics_region": "us",
    "storage_region": "us-east",
    "qm_region": "us-east",
    "chat_region": "us",
    "tenant_id": "bench-tenant",
    "pbx": "bench-pbx",
}


def scenario(n: int, latency_ms: int) -> dict[str, object]:
    return {
        "latency_ms": latency_ms,
        "apps": [
            {
                "client_id": f"bench-client-{i:04d}",
                "client_secret": f"bench-secret-{i:04d}",
                "products": list(PRODUCT_KEYS),
                "tenants": ["bench-tenant"],
                "pbx_names": ["bench-pbx"],
                "analytics_region": "us",
                "storage_regions": ["us-east"],
                "qm_region": "us-east",
                "chat_region": "us",
            }
            for i in range(n)
        ],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(scenario_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib", "simulator", "--port", str(port), "--scenario", str(scenario_file)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/_sim/stats", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the simulator did not start")


def naive_serial(url: str, n: int) -> float:
    """The baseline: for every probe a fresh token, one request at a time. Seconds for n connections."""
    start = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            for product in PRODUCTS.values():
                token = client.post(
                    url + TOKEN_PATH,
                    data={"grant_type": "client_credentials"},
                    auth=(f"bench-client-{i:04d}", f"bench-secret-{i:04d}"),
                ).json()["access_token"]
                path, params, headers = build_probe(product, SETTINGS)
                client.get(url + path, params=params, headers={**headers, "Authorization": f"Bearer {token}"})
    return time.perf_counter() - start


def warm_up(rt: Runtime, url: str) -> None:
    """One connection checked first, as a server has done before anyone clicks: imports,
    compiled statements and the first TLS and HTTP machinery are not what is measured. Then
    the cycle collector is settled, as the server and the commands that check do."""
    prober = Prober(url)
    try:
        checks.run_checks(
            rt, prober, connection_ids=[connections.list_connections(rt.engine)[0].id], triggered_by=BENCH
        )
    finally:
        prober.close()
    collector.settle()


@contextmanager
def fleet(n: int, latency_ms: int) -> Iterator[tuple[Runtime, str]]:
    """A fresh database with n connections, and the simulator (its own process) knowing their
    apps at ``latency_ms``: (runtime, simulator URL). Shared by the bulk and schedule benches."""
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        scenario_file = Path(tmp) / "scenario.json"
        scenario_file.write_text(json.dumps(scenario(n, latency_ms)))
        proc, url = start_simulator(scenario_file)
        try:
            vault = Vault(Keyring("k1", {"k1": new_key()}))
            database_url = f"sqlite:///{tmp}/bench.db"
            engine = db.make_engine(database_url)
            db.upgrade(engine)
            check_keyring(engine, vault)
            for i in range(n):
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
                )
            yield Runtime(Settings(database_url, Path(tmp) / "unused", url), engine, vault), url
        finally:
            proc.terminate()
            proc.wait()


BOUND_GOALS = {20: 1.25, 50: 1.5}  # ours / bound, per concurrency; others: 1.5


def measure(rt: Runtime, url: str, n: int, concurrency: int, latency: float) -> float:
    """One bulk check of every connection at ``concurrency`` (timed), then a second one on the
    same Prober (only its token requests counted); prints results."""
    prober = Prober(url, max_connections=concurrency, per_connection=5)
    try:
        httpx.post(f"{url}/_sim/reset")
        start, cpu_start = time.perf_counter(), time.process_time()
        run = checks.run_checks(rt, prober, triggered_by=BENCH)
        ours, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        stats = httpx.get(f"{url}/_sim/stats").json()
        checks.run_checks(rt, prober, triggered_by=BENCH)
    finally:
        prober.close()
    requests = sum(v for k, v in stats["requests"].items() if k != "unmatched")
    tokens = sum(stats["token_requests"].values())
    again = sum(httpx.get(f"{url}/_sim/stats").json()["token_requests"].values()) - tokens  # the second run's
    bound = requests / concurrency * latency
    outcomes = {o: sum(1 for r in run.products if r.outcome == o) for o in {r.outcome for r in run.products}}
    print(
        f"concurrency {concurrency}: {ours:.2f} s for {requests} requests ({tokens} token), bound {bound:.2f} s, "
        f"max in flight {stats['max_in_flight']}, outcomes {outcomes}",
        flush=True,
    )
    goal = BOUND_GOALS.get(concurrency, 1.5)
    report.line(
        f"bulk check / lower bound at concurrency {concurrency}", ours / bound, "x", f"<= {goal}x", report.at_most(goal)
    )
    report.line(
        f"bulk check CPU per request at concurrency {concurrency}",
        cpu / requests * 1000,
        " ms",
        "<= 1 ms",
        report.at_most(1.0),
    )
    report.line(
        f"token requests per connection per run at concurrency {concurrency}",
        (tokens + again) / (2 * n),
        "",
        "= 1.00 in each run",
        lambda _mean: tokens == again == n,
    )
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--concurrency", default="20,50", help="comma-separated")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--serial-slice", type=int, default=4, help="connections in the naive baseline")
    args = parser.parse_args()
    n, latency = args.connections, args.latency_ms / 1000
    levels = [int(level) for level in args.concurrency.split(",")]

    with fleet(n, args.latency_ms) as (rt, url):
        print(f"workload: {n} connections x {len(PRODUCT_KEYS)} products, {args.latency_ms} ms latency")
        warm_up(rt, url)
        ours = {level: measure(rt, url, n, level, latency) for level in levels}
        serial_slice = naive_serial(url, args.serial_slice)
    serial_full = serial_slice / args.serial_slice * n
    print(
        f"naive serial: {serial_slice:.2f} s for {args.serial_slice} connections -> {serial_full:.1f} s for {n} "
        "(extrapolated)"
    )
    for level, seconds in ours.items():
        report.line(
            f"naive serial / ours at concurrency {level}", serial_full / seconds, "x", ">= 30x", report.at_least(30)
        )


if __name__ == "__main__":
    main()
