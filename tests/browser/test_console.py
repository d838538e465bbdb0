"""What an admin does in a real browser: deep links, add a connection, test, export."""

from __future__ import annotations

import base64

import pandas as pd
import pytest
from playwright.sync_api import Page, expect
from streamlit.proto.BackMsg_pb2 import BackMsg
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from lib.simulator import SimulatorServer
from lib.store.vault import new_key
from tests.browser.conftest import (
    Console,
    ConsoleFactory,
    choose,
    keyed,
    open_path,
    sign_in,
    wait_for_app,
)
from tests.fixtures.prober import control
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.e2e


def add_through_form(
    page: Page, console: Console, sim: SimulatorServer, *, name: str = "Reporting", secret: str | None = None
) -> None:
    app = sim.scenario.apps[0]
    sign_in(page, console, path="connect")
    choose(page, "connect_products", "Cloud Storage Service", "Contact Center Chat")
    keyed(page, "connect_name").locator("input").fill(name)
    keyed(page, "connect_client_id").locator("input").fill(app.client_id)
    keyed(page, "connect_client_secret").locator("input").fill(app.client_secret if secret is None else secret)
    choose(page, "connect_storage_region", "uk")
    choose(page, "connect_chat_region", app.chat_region)
    keyed(page, "connect_tenant_id").locator("input").fill(app.tenants[0])
    keyed(page, "connect_submit").locator("button").click()
    wait_for_app(page)


def test_a_wrong_keyring_fails_closed_and_says_why(console_factory: ConsoleFactory, page: Page) -> None:
    """With a keyring that does not match the data, the server opens nothing: every protected
    path, the sign-in page included, answers 503 with the reason and who must act."""
    seeded = console_factory()
    assert (
        seeded.cli(
            "connections",
            "add",
            "--name",
            "Seeded",
            "--client-id",
            "seeded-client",
            "--secret-stdin",
            "--no-verify",
            stdin="seeded-secret\n",
        ).returncode
        == 0
    )
    seeded.process.terminate()
    seeded.process.wait(10)
    wrong_key = f"k1:{base64.b64encode(new_key()).decode()}"
    fresh = console_factory(SWITCHBOARD_DATABASE_URL=seeded.env["SWITCHBOARD_DATABASE_URL"], SWITCHBOARD_KEYS=wrong_key)
    for path in ("connections", "connect", "account/sign-in"):
        response = page.goto(f"{fresh.url}/{path}")
        assert response is not None and response.status == 503
        expect(page.get_by_text("Switchboard cannot start")).to_be_visible()
        expect(page.get_by_text("is not the key this database was encrypted with")).to_be_visible()
        expect(page.get_by_text("Who must act: a Switchboard admin")).to_be_visible()
        assert wrong_key.split(":")[1] not in page.content()


def test_deep_link_to_connections_with_a_good_keyring(console: Console, page: Page) -> None:
    sign_in(page, console, path="connections")
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    open_path(page, console, "guide#outcome-bad-credentials")
    expect(page.locator("[id='outcome-bad-credentials']")).to_be_attached()


def test_add_test_and_export(console: Console, sim: SimulatorServer, page: Page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = sim.scenario.apps[0].client_secret
    add_through_form(page, console, sim)
    expect(page.get_by_text("8x8 issued a token for these credentials")).to_be_visible()
    expect(keyed(page, "connect_client_secret").locator("input")).to_have_value("")
    assert secret not in page.content()

    open_path(page, console, "connections")
    choose(page, "conn_detail", "Reporting")
    keyed(page, "test_cloud_storage").locator("button").click()
    wait_for_app(page)
    expect(keyed(page, "product_cloud_storage")).to_contain_text("OK")
    expect(keyed(page, "product_cc_chat")).to_contain_text("Not tested yet")  # only its own row ran

    keyed(page, "detail_test_all").locator("button").click()
    wait_for_app(page)
    expect(keyed(page, "product_cc_chat")).to_contain_text("OK")

    keyed(page, "conn_test_all").locator("button").click()
    wait_for_app(page)
    expect(page.get_by_text("Tested 2 products of all connections: 2 OK, 0 failing.")).to_be_visible()

    with page.expect_download() as download:
        keyed(page, "export_csv").locator("button").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.startswith("switchboard-status-") and path.suffix == ".csv"
    frame = pd.read_csv(path)
    assert {"connection", "product", "outcome", "who_must_act"} <= set(frame.columns)
    chat = frame[(frame["connection"] == "Reporting") & (frame["product"] == "Contact Center Chat")]
    assert list(chat["outcome_key"]) == ["ok"] and list(chat["status"]) == ["ok"]
    assert secret not in path.read_text()
    assert secret not in page.content()

    def exported(fmt: str = "csv") -> pd.DataFrame:
        with page.expect_download() as download:
            keyed(page, f"export_{fmt}").locator("button").click()
        target = tmp_path / f"{len(list(tmp_path.iterdir()))}-{download.value.suggested_filename}"
        download.value.save_as(target)
        return pd.read_csv(target)

    search = keyed(page, "conn_search").locator("input")
    search.fill("no such connection")
    search.press("Enter")
    wait_for_app(page)
    assert exported().empty  # what is shown: nothing
    keyed(page, "export_scope").get_by_text("Everything").click()
    wait_for_app(page)
    assert set(exported()["connection"]) == {"Reporting"}


def test_refused_credentials_save_nothing(console: Console, sim: SimulatorServer, page: Page) -> None:
    add_through_form(page, console, sim, name="Wrong", secret="not-the-real-secret")
    expect(page.get_by_text("8x8 refused these credentials, so nothing was saved")).to_be_visible()
    assert console.cli("connections", "list", "--json").stdout.strip() == "[]"


def test_the_secret_never_reaches_any_page(console: Console, sim: SimulatorServer, page: Page) -> None:
    app = sim.scenario.apps[0]
    frames: list[bytes] = []  # every websocket message the server sends (Streamlit's deltas)
    page.on(
        "websocket",
        lambda socket: socket.on(
            "framereceived", lambda payload: frames.append(payload if isinstance(payload, bytes) else payload.encode())
        ),
    )
    add_through_form(page, console, sim)
    pages = {}
    for path in ("guide", "connect", "connections"):
        open_path(page, console, path)
        pages[path] = page.content()
    choose(page, "conn_detail", "Reporting")
    keyed(page, "detail_edit").locator("button").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Edit Reporting")).to_be_visible()
    expect(keyed(page, "connect_client_secret").locator("input")).to_have_value("")
    pages["edit"] = page.content()
    for path, html in pages.items():
        assert app.client_secret not in html, path
        assert app.client_id not in html, path
    assert frames  # the watch really saw the traffic
    for frame in frames:
        assert app.client_secret.encode() not in frame and app.client_id.encode() not in frame


def shown_heading(page: Page, starting: str) -> str:
    """A heading's text as a person reads it."""
    heading = page.get_by_role("heading").filter(has_text=starting).first
    expect(heading).to_be_visible()
    return heading.inner_text().strip()


def test_names_people_typed_are_text_not_links(console: Console, sim: SimulatorServer, page: Page) -> None:
    """A connection named like a Markdown link, shown to every role, must not be one."""
    phish = "[Session expired - sign in again](https://evil.example/phish)"
    app = sim.scenario.apps[0]
    added = console.cli(
        "connections",
        "add",
        "--name",
        phish,
        "--environment",
        "**prod** https://evil.example/x",
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
    sign_in(page, console, path="connections")
    choose(page, "conn_detail", phish)
    keyed(page, "detail_test_all").locator("button").click()
    wait_for_app(page)
    assert shown_heading(page, "Session expired") == phish
    keyed(page, "detail_edit").locator("button").click()
    wait_for_app(page)
    assert shown_heading(page, "Edit") == f"Edit {phish}"
    for path in ("connect", "connections", "audit"):
        if path != "connect":
            open_path(page, console, path)
        links = page.locator("a[href*='evil.example']")
        assert links.count() == 0, (
            path,
            [links.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(links.count())],
        )
        assert page.locator("strong", has_text="prod").count() == 0, path


def test_an_anonymous_clear_cache_cannot_stop_tests_in_flight(
    console: Console, sim: SimulatorServer, page: Page
) -> None:
    """Any page could open an anonymous socket and send clear_cache, which emptied every cache
    and closed the shared Prober under the runs in flight: they hung for good."""
    app = sim.scenario.apps[0]
    added = console.cli(
        "connections",
        "add",
        "--name",
        "Everything",
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
    sign_in(page, console, path="connections")
    control(sim, "PUT", "knobs", {"latency_ms": 1500})
    keyed(page, "conn_test_all").locator("button").click()
    eventually(lambda: control(sim, "GET", "stats")["in_flight"], what="the run to be talking to 8x8")
    clear = BackMsg()
    clear.clear_cache = True
    with connect(
        console.url.replace("http://", "ws://") + "/_stcore/stream",
        additional_headers={"Origin": console.url},
        subprotocols=[Subprotocol("streamlit")],
        open_timeout=10,
    ) as anonymous:
        anonymous.send(clear.SerializeToString())
    wait_for_app(page)
    expect(page.get_by_text("Tested 1 product of all connections: 1 OK, 0 failing.")).to_be_visible()
    control(sim, "PUT", "knobs", {"latency_ms": 0})
    keyed(page, "conn_test_all").locator("button").click()  # and the next run works as well
    wait_for_app(page)
    expect(page.get_by_text("Tested 1 product of all connections: 1 OK, 0 failing.")).to_be_visible()
