"""Every bench runs once, tiny, so that a change that breaks one breaks the suite. Nothing
here asserts a time: only that the bench runs and prints its result lines with their goals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from tests.fixtures.nginx import require_nginx

ROOT = Path(__file__).resolve().parent.parent
RESULT = re.compile(rf"^{report.PREFIX} (.+): ([\d.]+)[^(]*\(goal .+: (met|NOT met)\)$", re.MULTILINE)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("bench", "args", "results"),
    [
        ("bulk_check", ["--connections", "3", "--concurrency", "5", "--latency-ms", "1", "--serial-slice", "1"], 4),
        ("connections_page", ["--sizes", "2,4", "--runs", "1"], 3),
        ("cold_start", ["--runs", "1"], 1),
        ("demo_start", [], 1),
        ("schedule", ["--connections", "3", "--latency-ms", "1", "--concurrency", "5"], 2),
        ("instances", ["--connections", "20", "--sessions", "4", "--concurrency", "2"], 1),
        ("history", ["--connections", "2", "--days", "1", "--runs", "1"], 11),
        ("alert_day", ["--connections", "2"], 1),
        ("soak", ["--connections", "3", "--minutes", "0.5", "--sample-s", "5"], 2),
    ],
)
def test_the_bench_runs_and_reports(bench: str, args: list[str], results: int) -> None:
    if bench == "instances":
        require_nginx()  # nginx in front of the two instances
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(RESULT.findall(done.stdout)) == results, done.stdout
