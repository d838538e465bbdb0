"""Browser tests: a real `streamlit run` server, the simulator, and Debian's headless Chromium.

Chromium missing: skipped locally, failed under CI=true (.ci/run installs it with apt-get).
"""

from __future__ import annotations

import os
import weakref
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
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--host-resolver-rules=MAP {TLS_HOST} 127.0.0.1",
        ],
    }


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


def sign_in(page: Page, console: Console, username: str = "ada", password: str = PASSWORD, path: str = "") -> None:
    """Sign in through the sign-in page, landing on ``path``."""
    track_runs(page)
    page.goto(f"{console.url}/{path}")
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_test_id("sign-in-submit").click()
    wait_for_app(page)


# Which script runs the page has asked for and which have finished, read off Streamlit's
# WebSocket: a BackMsg with rerun_script (field 11) asks for a run; a ForwardMsg with
# new_session (field 4) starts it and one with script_finished (field 6, any status but
# FINISHED_EARLY_FOR_RERUN, 2) ends it (streamlit/proto/BackMsg.proto, ForwardMsg.proto; only
# the top-level field numbers are read). ``pending`` is the number of the run asked for last,
# 0 once it has ended and the page has drawn what ended it (two task hops: React's render of
# a message is queued as a task while the message is handled). A socket that closes ends what
# it was asked for: a browser that reconnects asks again.
TRACK_RUNS = """(() => {
  if (window.__switchboardRuns) return;
  const runs = window.__switchboardRuns = {pending: 0, asked: 0, started: false};
  const varint = (bytes, at) => {
    let value = 0, shift = 0, byte;
    do { byte = bytes[at++]; value += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
    return [value, at];
  };
  const fields = (data) => {
    const found = new Map();
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
      : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    let at = 0, key, value;
    while (bytes && at < bytes.length) {
      [key, at] = varint(bytes, at);
      const wire = key % 8;
      if (wire === 0) [value, at] = varint(bytes, at);
      else if (wire === 2) { [value, at] = varint(bytes, at); at += value; value = true; }
      else if (wire === 1 || wire === 5) { at += wire === 1 ? 8 : 4; value = true; }
      else break;
      found.set(Math.floor(key / 8), value);
    }
    return found;
  };
  const afterDrawn = (then) => {
    const hop = new MessageChannel();
    hop.port1.onmessage = () => {
      const again = new MessageChannel();
      again.port1.onmessage = then;
      again.port2.postMessage(0);
    };
    hop.port2.postMessage(0);
  };
  const heard = new WeakSet();
  const hear = (socket) => {
    heard.add(socket);
    socket.addEventListener("close", () => { runs.pending = 0; });
    socket.addEventListener("message", (event) => {
      if (!runs.pending) return;
      const message = fields(event.data);
      if (message.has(4)) runs.started = true;
      else if (runs.started && message.has(6) && message.get(6) !== 2) {
        const ended = runs.pending;
        afterDrawn(() => { if (runs.pending === ended) runs.pending = 0; });
      }
    });
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (!heard.has(this)) hear(this);
    if (fields(data).has(11)) { runs.pending = ++runs.asked; runs.started = false; }
    return send.call(this, data);
  };
})()"""
_TRACKED: weakref.WeakSet[Page] = weakref.WeakSet()


def track_runs(page: Page) -> None:
    """Follow the script runs of every document ``page`` opens from now on (TRACK_RUNS)."""
    if page not in _TRACKED:
        page.add_init_script(TRACK_RUNS)
        _TRACKED.add(page)


def wait_for_app(page: Page) -> None:
    """Streamlit has connected, finished every script run the page asked for (a click, a
    reconnection) and drawn every element."""
    track_runs(page)
    expect(page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']")).to_be_attached(timeout=30000)
    page.evaluate(TRACK_RUNS)  # the document open now may have begun before track_runs
    # polled every 50 ms, not on animation frames: a tab in the background draws none
    page.wait_for_function("() => !window.__switchboardRuns?.pending", polling=50, timeout=60000)
    expect(page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")).to_be_attached(timeout=60000)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=30000)


def open_path(page: Page, console: Console, path: str) -> None:
    track_runs(page)
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
