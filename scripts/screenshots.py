"""Screenshots of the pages for the README, taken in headless Chromium from `make demo`.

    make demo &            # in another terminal; create an admin with the printed setup code
    .venv/bin/python -m scripts.screenshots --user NAME [--url http://127.0.0.1:8501] [--out docs/screenshots]

The password is read from SWITCHBOARD_PASSWORD or a hidden prompt, never from an argument.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def settle(page: Page) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60000)
    page.wait_for_timeout(1500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--user", required=True, help="an admin account of the demo")
    args = parser.parse_args()
    password = os.environ.get("SWITCHBOARD_PASSWORD") or getpass.getpass(f"Password of {args.user}: ")
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{args.url}/account/sign-in")
        page.locator("#username").fill(args.user)
        page.locator("#password").fill(password)
        page.get_by_test_id("sign-in-submit").click()
        settle(page)
        page.goto(f"{args.url}/guide")
        settle(page)
        page.screenshot(path=args.out / "guide.png")
        page.goto(f"{args.url}/connect")
        settle(page)
        box = page.locator(".st-key-connect_products").get_by_role("combobox").first
        box.click()
        for name in ("Cloud Storage Service", "Contact Center Chat"):
            page.get_by_role("option", name=name, exact=True).click()
            settle(page)
        page.locator("h1").first.click()
        page.screenshot(path=args.out / "connect.png")
        page.set_viewport_size({"width": 1400, "height": 2300})  # the app scrolls inside; show it all
        page.goto(f"{args.url}/connections")
        settle(page)
        box = page.locator(".st-key-conn_detail").get_by_role("combobox").first
        box.scroll_into_view_if_needed()
        box.click()
        page.get_by_role("option", name="Storage archive", exact=True).click()
        settle(page)
        page.screenshot(path=args.out / "connections.png")
        browser.close()
    print(f"Saved guide.png, connect.png and connections.png in {args.out}")


if __name__ == "__main__":
    main()
