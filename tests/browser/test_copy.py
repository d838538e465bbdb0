"""What an admin copies from the console is what it shows (issue 22), in a real browser: a name
or message holding a bare URL, a www. name, an e-mail address, a :shortcode: or "->" is shown
as those characters (no link, icon or arrow), and Control+C copies exactly them, with nothing
invisible in between."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from lib.services.connections import client_id_hint
from lib.simulator import SimulatorServer
from tests.browser.conftest import Console, keyed, sign_in, wait_for_app
from tests.browser.test_flows import confirm_password
from tests.fixtures.server import PASSWORD

pytestmark = pytest.mark.e2e

NAME = "visit www.example.com or mail a@b.co http://x.test:8080/p"
ENVIRONMENT = "dr -> prod <= 2 :streamlit: at.x.io"


def copied(page: Page, element: Locator) -> str:
    """What Control+C puts on the clipboard with all of ``element``'s text selected."""
    element.evaluate(
        "e => { const range = document.createRange(); range.selectNodeContents(e);"
        " getSelection().removeAllRanges(); getSelection().addRange(range); }"
    )
    page.keyboard.press("Control+C")
    return str(page.evaluate("navigator.clipboard.readText()"))


def shown_and_copied(page: Page, element: Locator) -> str:
    """``element``'s text as shown, with no link or picture in it, after checking that Control+C
    copies exactly that."""
    expect(element).to_have_count(1)
    expect(element.locator("a, img, [role='img']")).to_have_count(0)
    shown = element.inner_text()
    assert copied(page, element) == shown
    return shown


def alert(page: Page, opening: str) -> Locator:
    """The text of the delete dialog's message that starts with ``opening``."""
    return (
        page.get_by_role("dialog")
        .get_by_test_id("stAlert")
        .filter(has_text=opening)
        .get_by_test_id("stMarkdownContainer")
    )


def test_names_and_messages_copy_as_shown(console: Console, sim: SimulatorServer, page: Page) -> None:
    app = sim.scenario.apps[0]
    added = console.cli(
        "connections",
        "add",
        "--name",
        NAME,
        "--environment",
        ENVIRONMENT,
        "--client-id",
        app.client_id,
        "--secret-stdin",
        "--products",
        "cloud_storage",
        "--storage-region",
        "uk",
        stdin=app.client_secret + "\n",
    )
    assert added.returncode == 0, added.stderr
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    sign_in(page, console, path=f"connections?connection={quote(NAME)}")

    assert shown_and_copied(page, page.get_by_test_id("stHeading").locator("h3")) == NAME
    caption = page.get_by_test_id("stCaptionContainer").filter(has_text="Client ID").locator("p")
    hint = client_id_hint(app.client_id)
    assert shown_and_copied(page, caption).startswith(f"{ENVIRONMENT} · Client ID {hint} · ")

    # Messages that quote the name: the delete dialog's, and its error for a name typed wrong.
    keyed(page, "detail_delete").locator("button").click()
    assert shown_and_copied(page, alert(page, "Confirm it is you")) == f"Confirm it is you to delete {NAME}."
    confirm_password(page, PASSWORD, "click")
    keyed(page, "delete_confirm").locator("input").fill("some other name")
    keyed(page, "delete_confirm_button").locator("button").click()
    wait_for_app(page)
    assert f" {NAME} " in shown_and_copied(page, alert(page, "The name does not match"))
