"""`make demo`: its sample connections (scripts/demo.py) verified with the real simulator on
its sample scenario and saved in one process, and a README that names the sample apps so a
newcomer can try Connect. How long the demo takes to start is bench/demo_start.py's figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.simulator import SAMPLE_SCENARIO, SimulatorServer, load_scenario
from scripts.demo import SAMPLES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sample_simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(load_scenario(SAMPLE_SCENARIO)) as server:
        yield server


def test_the_readme_names_every_sample_app_and_what_it_answers_to() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    for app in load_scenario(SAMPLE_SCENARIO).apps:
        [row] = [line for line in readme if line.startswith(f"| `{app.client_id}` | `{app.client_secret}` |")]
        for value in (*app.tenants, *app.pbx_names, *app.storage_regions):
            assert f"`{value}`" in row, (app.client_id, value)


def test_the_samples_are_verified_with_the_simulator_and_saved_once(sample_simulator: SimulatorServer,
                                                                      tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'demo.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "demo-keyring.json"),
           "SWITCHBOARD_8X8_BASE_URL": sample_simulator.url}
    env.pop("SWITCHBOARD_KEYS", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], check=False, env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    first = run("-m", "scripts.demo")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("Verified with the simulator and saved") == len(SAMPLES)
    assert "failing on purpose: Flaky lab, Storage archive." in first.stdout
    stored = json.loads(run("-m", "lib", "connections", "list", "--json").stdout)
    assert sorted(c["name"] for c in stored) == sorted(s.name for s in SAMPLES)
    for connection in stored:  # 8x8 (the simulator) was asked: what it granted is recorded
        assert connection["granted_products"], connection["name"]
    again = run("-m", "scripts.demo")  # a restart of the demo keeps what is there
    assert again.returncode == 0 and "saved" not in again.stdout, again.stdout + again.stderr
    assert len(json.loads(run("-m", "lib", "connections", "list", "--json").stdout)) == len(SAMPLES)


def test_the_demo_says_what_is_wrong_when_the_simulator_is_not_there(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.demo"], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'demo.db'}",
                               "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "demo-keyring.json"),
                               "SWITCHBOARD_8X8_BASE_URL": "http://127.0.0.1:9"})
    assert done.returncode == 1 and "make demo: Could not ask 8x8" in done.stderr
    assert "Traceback" not in done.stderr
