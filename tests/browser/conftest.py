"""Browser tests: a real `streamlit run` server, the simulator, and Debian's headless Chromium.

Chromium missing: skipped locally, failed under CI=true (.ci/run installs it with apt-get).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from lib.simulator import SimulatorServer
from tests.fixtures.server import PASSWORD, Server, start_server
from tests.fixtures.simulator import default_scenario

CHROMIUM = "/usr/bin/chromium"
# A host name for a console served over https (not localhost, which Chromium treats as secure
# on any port): Chromium resolves it to 127.0.0.1.
TLS_HOST = "switchboard.test"

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
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     f"--host-resolver-rules=MAP {TLS_HOST} 127.0.0.1"]}


Console = Server


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(default_scenario()).start()
    yield server
    server.stop()


ConsoleFactory = Callable[..., Console]


@pytest.fixture
def console_factory(sim: SimulatorServer) -> Iterator[ConsoleFactory]:
    started: list[Console] = []

    def start(tls_names: tuple[str, ...] = (), **env: str) -> Console:
        console = start_server(env, sim.url, tls_names=tls_names)
        started.append(console)
        return console

    yield start
    for console in started:
        console.stop()


@pytest.fixture
def console(console_factory: ConsoleFactory) -> Console:
    """A server with one admin account, "ada"."""
    server = console_factory()
    server.add_user("ada", "admin")
    return server


def sign_in(page: Page, console: Console, username: str = "ada", password: str = PASSWORD,
            path: str = "") -> None:
    """Sign in through the sign-in page, landing on ``path``."""
    page.goto(f"{console.url}/{path}")
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_test_id("sign-in-submit").click()
    wait_for_app(page)


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
