"""`make demo`: its sample connections (scripts/demo.py) verified with the real simulator on
its sample scenario and saved in one process, a README that names the sample apps so a
newcomer can try Connect, `make demo-shell` pointing the command line at the demo's data, and
a clear stop when the simulator's port is taken (scripts/demo.sh). How long the demo takes to
start is bench/demo_start.py's figure."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
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


def test_the_samples_are_verified_with_the_simulator_and_saved_once(
    sample_simulator: SimulatorServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'demo.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "demo-keyring.json"),
        "SWITCHBOARD_8X8_BASE_URL": sample_simulator.url,
    }
    env.pop("SWITCHBOARD_KEYS", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

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
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'demo.db'}",
            "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "demo-keyring.json"),
            "SWITCHBOARD_8X8_BASE_URL": "http://127.0.0.1:9",
        },
    )
    assert done.returncode == 1 and "make demo: Could not ask 8x8" in done.stderr
    assert "Traceback" not in done.stderr


def demo_env(tmp_path: Path, sim_port: int) -> dict[str, str]:
    """What `make demo` and `make demo-shell` are given: the Makefile's PY and the three knobs
    the README documents; none of the settings they stand for."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PY": sys.executable,
        "SIM_PORT": str(sim_port),
        "DEMO_DATA": str(tmp_path / "data"),
        "DEMO_KEYRING": str(tmp_path / "keys" / "demo-keyring.json"),
    }
    for name in (
        "SWITCHBOARD_DATABASE_URL",
        "SWITCHBOARD_KEYRING_FILE",
        "SWITCHBOARD_8X8_BASE_URL",
        "SWITCHBOARD_KEYS",
    ):
        env.pop(name, None)
    return env


def test_the_demo_shell_points_the_command_line_at_the_demos_data(
    sample_simulator: SimulatorServer, tmp_path: Path
) -> None:
    env = demo_env(tmp_path, sample_simulator.port) | {"SHELL": shutil.which("bash") or "bash"}
    commands = "python -m scripts.demo >/dev/null\nswitchboard connections list --json\n"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--shell"],
        check=False,
        env=env,
        input=commands,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"simulator on port {sample_simulator.port}" in done.stderr
    assert sorted(c["name"] for c in json.loads(done.stdout)) == sorted(s.name for s in SAMPLES)
    assert (tmp_path / "data" / "switchboard-demo.db").exists() and (tmp_path / "keys" / "demo-keyring.json").exists()


def test_the_demo_stops_at_once_when_the_simulators_port_is_taken(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "demo.sh")],
            check=False,
            cwd=ROOT,
            env=demo_env(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - started
        holder.setblocking(False)
        sent = []
        while True:  # whatever the demo sent to the program holding the port
            try:
                connection, _ = holder.accept()
            except BlockingIOError:
                break
            with connection:
                connection.settimeout(5)
                sent.append(connection.recv(1024))
    assert done.returncode == 1 and elapsed < 10, (elapsed, done.stderr)
    assert f"make demo: port {port}, where the demo's 8x8 simulator listens, is taken by another program" in done.stderr
    assert f"make demo SIM_PORT={port + 1}" in done.stderr and "Traceback" not in done.stderr
    assert set(sent) <= {b""}, sent  # it asked nothing of the program there
    assert not (tmp_path / "data").exists()
