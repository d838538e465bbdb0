"""Benchmark: seconds from `streamlit run serve.py` to a healthy server (/_stcore/health
answering), against a bare hello app started the same way in the same run. Goal: within 1.5x.

Switchboard listens before its data is open (lib.web.state), so it also prints when /readyz
first says ready: from then on pages are served without waiting. That figure has no goal; it
is there so that nobody mistakes the first for the second.

Each server starts on a fresh SQLite database and keyring (the first start of a new install
migrates it; later starts find it at head), so the median of ``--runs`` starts after the first
is what a restart costs. Not a test: nothing here asserts a time.

    .venv/bin/python -m bench.cold_start [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import report

ROOT = Path(__file__).resolve().parent.parent
HELLO = 'import streamlit as st\n\nst.write("hello")\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(
    port: int, start: float, within_s: float, process: subprocess.Popen[bytes], path: str = "/_stcore/health"
) -> bool:
    """Poll ``path`` (Streamlit's health probe) on ``port`` until it answers 200 (True),
    ``within_s`` after ``start`` passes or ``process`` exits (False)."""
    while time.perf_counter() < start + within_s and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=0.5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    return False


def time_to_healthy(script: Path, env: dict[str, str], cwd: Path, *then: str) -> list[float]:
    """Seconds from the start of ``streamlit run script`` until it is healthy, then until each
    of the paths ``then`` answers 200, in turn."""
    port = free_port()
    start = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seconds = []
        for path in ("/_stcore/health", *then):
            if not wait_healthy(port, start, 60, process, path):
                raise SystemExit(f"{script.name} did not answer {path} within 60 s")
            seconds.append(time.perf_counter() - start)
        return seconds
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchboard-cold-start-") as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp}/data/sb.db",
            "SWITCHBOARD_KEYRING_FILE": str(Path(tmp) / "keys" / "keyring.json"),
        }
        first, _ = time_to_healthy(ROOT / "serve.py", env, ROOT, "/readyz")  # creates and migrates the database
        ours, ready, bare = [], [], []
        for _ in range(args.runs):
            healthy, opened = time_to_healthy(ROOT / "serve.py", env, ROOT, "/readyz")
            ours.append(healthy)
            ready.append(opened)
            bare.append(time_to_healthy(hello, env, Path(tmp))[0])
    median_ours, median_bare = statistics.median(ours), statistics.median(bare)
    print(
        f"first start (new database): {first:.2f} s; later starts: serve.py {median_ours:.2f} s "
        f"(ready, its data open: {statistics.median(ready):.2f} s), bare hello app {median_bare:.2f} s "
        f"(medians of {args.runs})"
    )
    report.line(
        "cold start of serve.py / a bare hello app", median_ours / median_bare, "x", "<= 1.5x", report.at_most(1.5)
    )


if __name__ == "__main__":
    main()
