"""Links from outside land where they point (issue 22), in a real browser: a link to a connection
on another site's page opens that connection, signed in (the session cookie is SameSite=Lax)
or through the sign-in page (which keeps the query); and the connection being edited is in the
Connect page's address, so a reload goes on editing it."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from lib.simulator import SimulatorServer
from tests.browser.conftest import Console, keyed, wait_for_app
from tests.browser.test_flows import add_connection
from tests.fixtures.server import PASSWORD

pytestmark = pytest.mark.e2e


@contextmanager
def other_site(link: str) -> Iterator[str]:
    """The address of a page on another site holding only a link to ``link``. It is served as
    http://localhost while the console is on 127.0.0.1: another host is another site to the
    browser (another port of the same host would not be)."""
    body = f'<!doctype html><title>Chat</title><a id="link" href="{html.escape(link)}">Open</a>'.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def follow(page: Page, elsewhere: str) -> None:
    """Open the other site's page and click its link, as someone in a chat app would."""
    page.goto(elsewhere)
    assert page.url.startswith("http://localhost:")
    with page.expect_navigation():
        page.locator("#link").click()


def address(url: str) -> tuple[str, str, dict[str, list[str]]]:
    """Origin, path and query of ``url`` (Streamlit rewrites a query's %20 as +)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path, parse_qs(parts.query)


def expect_open(page: Page, name: str, link: str) -> None:
    """The Connections page, with ``name`` open, at the address of ``link``."""
    wait_for_app(page)
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(keyed(page, "product_cloud_storage")).to_be_visible()
    assert address(page.url) == address(link)


def test_a_link_from_another_site_opens_its_connection_and_an_edit_survives_a_reload(
    console: Console, sim: SimulatorServer, page: Page
) -> None:
    add_connection(console, sim, "My Acme")
    link = f"{console.url}/connections?connection=My%20Acme"
    with other_site(link) as elsewhere:
        # Signed out: through the sign-in page, on to the connection.
        follow(page, elsewhere)
        expect(page.get_by_test_id("sign-in-form")).to_be_visible()
        page.locator("#username").fill("ada")
        page.locator("#password").fill(PASSWORD)
        page.get_by_test_id("sign-in-submit").click()
        expect_open(page, "My Acme", link)

        # Signed in: the same link arrives signed in, straight on the connection.
        follow(page, elsewhere)
        expect_open(page, "My Acme", link)
        expect(page.get_by_test_id("sign-in-form")).to_have_count(0)

    # Edit: the connection's name is in the address, so a reload goes on editing it.
    keyed(page, "detail_edit").get_by_role("button").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Edit My Acme")).to_be_visible()
    assert address(page.url) == (console.url, "/connect", {"edit": ["My Acme"]})
    page.reload()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Edit My Acme")).to_be_visible()
    expect(keyed(page, "connect_name").locator("input")).to_have_value("My Acme")
