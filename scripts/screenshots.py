"""Screenshots of the pages for the README at 1,400 and 400 px, taken in headless Chromium from `make demo`.

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

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def settle(page: Page) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60000)
    page.wait_for_timeout(1500)


WIDTHS = {"": 1400, "-narrow": 400}  # a laptop, and a phone held upright


def shoot(page: Page, url: str, out: Path, suffix: str, width: int) -> list[str]:
    """The guide, Connect with two products ticked, and Connections with one connection open."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(f"{url}/guide")
    settle(page)
    page.screenshot(path=out / f"guide{suffix}.png")
    page.goto(f"{url}/connect")
    settle(page)
    box = page.locator(".st-key-connect_products").get_by_role("combobox").first
    box.click()
    for name in ("Cloud Storage Service", "Contact Center Chat"):
        page.get_by_role("option", name=name, exact=True).click()
        settle(page)
    page.keyboard.press("Escape")  # close the product list, and let it fade out
    page.locator("h1").first.click()
    page.wait_for_timeout(1000)
    page.screenshot(path=out / f"connect{suffix}.png")
    page.set_viewport_size({"width": width, "height": 2600})  # the app scrolls inside; show it all
    page.goto(f"{url}/connections?connection=Storage%20archive")
    settle(page)
    page.screenshot(path=out / f"connections{suffix}.png")
    return [f"{name}{suffix}.png" for name in ("guide", "connect", "connections")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--user", required=True, help="an admin account of the demo")
    args = parser.parse_args()
    password = os.environ.get("SWITCHBOARD_PASSWORD") or getpass.getpass(f"Password of {args.user}: ")
    args.out.mkdir(parents=True, exist_ok=True)
    saved: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{args.url}/account/sign-in")
        page.locator("#username").fill(args.user)
        page.locator("#password").fill(password)
        page.get_by_test_id("sign-in-submit").click()
        settle(page)
        for suffix, width in WIDTHS.items():
            saved += shoot(page, args.url, args.out, suffix, width)
        browser.close()
    print(f"Saved {', '.join(saved)} in {args.out}")


if __name__ == "__main__":
    main()
