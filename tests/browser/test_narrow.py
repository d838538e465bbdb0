"""A phone-width screen (400 px): the name and the worst status come first, metrics stay
compact, and nothing needs sideways scrolling of the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from lib.simulator import SimulatorServer
from tests.browser.conftest import Console, keyed, sign_in, wait_for_app

pytestmark = pytest.mark.e2e


def test_the_connections_page_fits_a_phone(console: Console, sim: SimulatorServer, page: Page) -> None:
    apps = sim.scenario.apps
    for name, app, products in (
        ("Reporting", apps[0], "cloud_storage,cc_chat"),
        ("Archive", apps[2], "cloud_storage,cc_chat"),
    ):
        assert (
            console.cli(
                "connections",
                "add",
                "--name",
                name,
                "--client-id",
                app.client_id,
                "--products",
                products,
                "--storage-region",
                (app.storage_regions or ["us-west"])[0],
                "--chat-region",
                app.chat_region,
                "--tenant-id",
                (app.tenants or ["t-1"])[0],
                "--secret-stdin",
                "--no-verify",
                stdin=app.client_secret + "\n",
            ).returncode
            == 0
        )
    page.set_viewport_size({"width": 400, "height": 900})
    sign_in(page, console, path="connections")
    keyed(page, "conn_test_all").locator("button").click()
    wait_for_app(page)
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    columns = grid.locator("[role=columnheader]")  # the grid fills its accessible table after it paints
    for index, title in enumerate(("Name", "Status", "Products")):
        expect(columns.nth(index)).to_have_text(title)
    metrics = page.get_by_test_id("stMetric")
    expect(metrics).to_have_count(4)
    boxes = [metrics.nth(i).bounding_box() for i in range(4)]
    assert all(box is not None and box["height"] < 110 for box in boxes)
    assert len({round(box["y"]) for box in boxes if box}) <= 2  # two rows of two, not four stacked
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
