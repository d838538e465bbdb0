"""Browser tests: a real `streamlit run` server, the simulator, and Debian's headless Chromium.

Chromium missing: skipped locally, failed under CI=true (.ci/run installs it with apt-get).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from lib.simulator import SimulatorServer
from tests.fixtures.simulator import default_scenario

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required under CI=true (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    return {"executable_path": CHROMIUM, "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Console:
    """A running console: its URL, its environment (for CLI calls) and its log."""

    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lib", *args], input=stdin, env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)


def start_console(env_overrides: dict[str, str], base_url: str) -> Console:
    tmp = Path(tempfile.mkdtemp(prefix="switchboard-e2e-"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp / "keys" / "keyring.json"),
           "SWITCHBOARD_8X8_BASE_URL": base_url, **env_overrides}
    log = tmp / "streamlit.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return Console(url, env, log, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("streamlit did not start:\n" + log.read_text())


def stop_console(console: Console) -> None:
    console.process.terminate()
    try:
        console.process.wait(10)
    except subprocess.TimeoutExpired:
        console.process.kill()
    shutil.rmtree(console.log.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(default_scenario()).start()
    yield server
    server.stop()


ConsoleFactory = Callable[..., Console]


@pytest.fixture
def console_factory(sim: SimulatorServer) -> Iterator[ConsoleFactory]:
    started: list[Console] = []

    def start(**env: str) -> Console:
        console = start_console(env, sim.url)
        started.append(console)
        return console

    yield start
    for console in started:
        stop_console(console)


@pytest.fixture
def console(console_factory: ConsoleFactory) -> Console:
    return console_factory()


def wait_for_app(page: Page) -> None:
    """Streamlit has connected, finished the script run and drawn every element."""
    page.wait_for_timeout(200)
    expect(page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']")).to_be_attached(timeout=30000)
    expect(page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")).to_be_attached(timeout=60000)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=30000)


def open_path(page: Page, console: Console, path: str) -> None:
    response = page.goto(f"{console.url}/{path}")
    assert response is not None and response.ok
    wait_for_app(page)


def keyed(page: Page, key: str):  # type: ignore[no-untyped-def]
    """The element Streamlit made for a widget or container created with key=..."""
    return page.locator(f".st-key-{key}")


def choose(page: Page, key: str, *options: str) -> None:
    """Pick options in a selectbox or multiselect."""
    for option in options:
        box = keyed(page, key).get_by_role("combobox").first
        box.scroll_into_view_if_needed()  # the list does not open for a box at the window's edge
        box.click()
        page.get_by_role("option", name=option, exact=True).click()
        wait_for_app(page)
    page.locator("h1").first.click()  # close a multiselect's list (Escape would clear a selectbox)
