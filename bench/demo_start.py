"""Benchmark: seconds from `make demo` (scripts/demo.sh) on a new install to a healthy console
(/_stcore/health answering): the simulator, the sample connections verified and saved, one
test of each, and the server. Goal: under 15 s. Not a test: nothing here asserts a time.

    .venv/bin/python -m bench.demo_start
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.cold_start import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 15.0


def time_to_console(tmp: Path) -> float:
    """One `make demo` on a fresh demo database and keyring in ``tmp``, until the console answers."""
    port = free_port()
    env = {
        **os.environ,
        "PY": sys.executable,
        "PORT": str(port),
        "SIM_PORT": str(free_port()),
        "DEMO_DATA": str(tmp / "data"),
        "DEMO_KEYRING": str(tmp / "keys" / "demo-keyring.json"),
    }
    start = time.perf_counter()
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if wait_healthy(port, start, 120, process):
            return time.perf_counter() - start
        raise SystemExit(f"make demo did not start a console within 120 s (exit code {process.poll()})")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the script, its simulator and the server
        process.wait(10)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix="switchboard-demo-start-") as tmp:
        seconds = time_to_console(Path(tmp))
    report.line(
        "make demo to a healthy console (new install)", seconds, " s", f"< {GOAL_S:.0f} s", lambda value: value < GOAL_S
    )


if __name__ == "__main__":
    main()
