"""Issue 22: one vocabulary everywhere. With data in every state (a connection without an
environment, one never tested, one OK, one failing, products not ticked, one whose settings
changed after its test; an API token never used; an outbox row waiting for its next attempt and
one delivered; audit rows from the command line, the schedule and the web), no page an admin
opens says None, NaN or NaT, and every moment on them (tables, captions, messages, the history
chart's axis) reads one way: 2026-12-07 17:09 UTC."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from lib.services.content.navigation import PAGES
from lib.simulator import App, SimulatorServer
from tests.browser.conftest import Console, ConsoleFactory, open_path, sign_in
from tests.fixtures.receiver import Answer, Receiver
from tests.fixtures.server import free_port

pytestmark = pytest.mark.e2e

SHOWN = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d UTC\b")  # lib.kernel.words.shown
# Any other form of a moment: a date, or a clock time (not the port of an address, 127.0.0.1:8088).
OTHER_MOMENT = re.compile(r"\b\d{4}-\d\d-\d\d|\d{4}/\d\d/\d\d|(?<![\d.:])\d{1,2}:\d\d(?::\d\d)?(?![\d:])")
MISSING = re.compile(r"\b(?:None|NaN|NaT|nan|null|undefined)\b")


def offences(text: str) -> list[str]:
    """Each missing value and each moment not in the shown form, with the words around it."""
    found = []
    for pattern, where in ((MISSING, text), (OTHER_MOMENT, SHOWN.sub("<moment>", text))):
        found += [where[max(0, m.start() - 40) : m.end() + 40] for m in pattern.finditer(where)]
    return found


# --- the data ---------------------------------------------------------------------------------


def run(console: Console, *args: str, stdin: str = "", codes: tuple[int, ...] = (0,)) -> str:
    done = console.cli(*args, stdin=stdin)
    assert done.returncode in codes, (args, done.stdout, done.stderr)
    return done.stdout


def seed(console: Console, sim: SimulatorServer) -> None:
    everything, _, storage_only = sim.scenario.apps

    def add(name: str, app: App, *options: str) -> None:
        run(
            console,
            "connections",
            "add",
            "--name",
            name,
            "--client-id",
            app.client_id,
            "--secret-stdin",
            "--no-verify",
            *options,
            stdin=app.client_secret + "\n",
        )

    add("Archive", storage_only, "--products", "cloud_storage", "--storage-region", "ap")  # no environment
    add(
        "Reporting",
        everything,
        "--environment",
        "production",
        "--products",
        "cloud_storage,cc_chat",
        "--storage-region",
        "uk",
        "--chat-region",
        "us",
        "--tenant-id",
        "tenant-us-1",
    )  # never tested
    add(
        "Broken",
        storage_only,
        "--environment",
        "staging",
        "--products",
        "cloud_storage,cc_chat",
        "--storage-region",
        "ap",
        "--chat-region",
        "us",
        "--tenant-id",
        "tenant-us-1",
    )  # chat not granted
    add("Edited", everything, "--environment", "staging", "--products", "cloud_storage", "--storage-region", "us-east")
    run(console, "check", "Archive", "Edited")
    run(
        console, "connections", "edit", "Edited", "--storage-region", "uk", "--no-verify"
    )  # its result no longer counts

    with Receiver(Answer(204)) as good, Receiver(Answer(410)) as gone:
        for name, url in (
            ("Dead hook", f"http://127.0.0.1:{free_port()}/hook"),
            ("Good hook", good.url()),
            ("Gone hook", gone.url()),
        ):
            run(console, "channels", "add", "--name", name, "--kind", "webhook", "--url", url)
        run(console, "channels", "test", "Dead hook", codes=(1,))  # a test is tried once: failed, no next attempt
        for _ in range(2):  # failing twice in a row raises check.failed, for every channel
            run(console, "check", "Broken", codes=(1,))
        # The schedule's worker delivers it: sent to Good hook, waiting for another attempt to
        # Dead hook, and Gone hook turned off (an audit row of the schedule's).
        run(console, "worker", "--once", codes=(0, 1))
        assert good.received

    for name in ("prometheus", "retired"):
        run(console, "tokens", "create", "--name", name, "--role", "viewer")
    used = run(console, "tokens", "create", "--name", "scraper", "--role", "viewer").strip()
    with console.client() as client:  # scraper is used once, prometheus never
        assert client.get("/api/v1/status", headers={"Authorization": f"Bearer {used}"}).status_code == 200
    run(console, "tokens", "revoke", "retired")
    console.add_user("newbie", "viewer", set_by_admin=True)  # never signed in


# --- what a page shows --------------------------------------------------------------------------

# A data grid draws its cells on a canvas, and its accessible copy (a table) holds the values
# before they are formatted (a null is "" there, and "None" on the screen): what people read is
# only on the canvas. So every text drawn on a canvas is kept, from the moment the page loads.
DRAWN = """(() => {
  const drawn = new Set();
  window.__drawn = drawn;
  const fill = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    drawn.add(String(text));
    return fill.call(this, text, ...rest);
  };
})();"""
NEXT_FRAME = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def draw_every_row(grid: Locator) -> None:
    """Scroll a data grid from top to bottom, so that it draws each of its rows."""
    expect(grid.locator("table[role='grid']")).to_be_attached()
    scroller = grid.locator(".dvn-scroller").first
    while True:
        grid.page.evaluate(NEXT_FRAME)
        if not scroller.evaluate(
            "s => { const top = s.scrollTop; s.scrollTop += s.clientHeight / 2; return s.scrollTop !== top; }"
        ):
            grid.page.evaluate(NEXT_FRAME)
            return


def shown_text(page: Page) -> str:
    """The page as people read it: its text with every expander open, and every grid's cells."""
    for expander in page.get_by_test_id("stExpander").all():
        expander.locator("summary").click()
        expect(expander.locator("details")).to_have_attribute("open", "")
    for grid in page.get_by_test_id("stDataFrame").all():
        draw_every_row(grid)
    return "\n".join([page.get_by_test_id("stMain").inner_text(), *page.evaluate("() => [...window.__drawn]")])


# What pages must show for the test to mean anything: the states seeded above, in words.
SEEDED = {
    "connections": ("Never tested", "Not tested since", "not ticked", "Archive"),
    "monitoring": ("pending", "delivered", "retrying", "gone", "failed", "No more attempts"),
    "tokens": ("prometheus", "scraper", "retired", "Never"),
    "users": ("newbie", "Never"),
    "audit": ("schedule", "cli:", "127.0.0.1", "sign_in", "Command line", "Scheduled"),
    "connections?connection=Edited": ("History",),
    "connections?connection=Broken": ("History",),
}


def test_no_page_says_none_and_every_moment_reads_one_way(
    console_factory: ConsoleFactory, sim: SimulatorServer, page: Page
) -> None:
    console = console_factory(SWITCHBOARD_ALERT_ALLOW="127.0.0.1")
    console.add_user("ada", "admin")
    seed(console, sim)
    page.set_viewport_size({"width": 2400, "height": 1400})  # every column of the widest table in view
    page.add_init_script(DRAWN)
    sign_in(page, console, path="connections")  # an audit row from the web
    details = [f"connections?connection={name}" for name in ("Archive", "Reporting", "Broken", "Edited")]
    paths = [p.url_path for p in PAGES] + details + ["connect?edit=Archive", "password", "sign-out"]
    texts = {}
    for path in paths:
        open_path(page, console, path)
        texts[path] = shown_text(page)
    found = {path: bad for path, text in texts.items() if (bad := offences(text))}
    assert not found, found
    for path, words in SEEDED.items():  # and the pages did show what was seeded, moments too
        assert all(word in texts[path] for word in words) and SHOWN.search(texts[path]), (path, texts[path])
