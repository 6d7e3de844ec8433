"""The interactive API docs at /api/docs, served with no CDN, render the OpenAPI 3.1 document in Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.servers import RunningServer

CHROMIUM = "/usr/bin/chromium"
BROWSER_REQUIRED = os.environ.get("TRACKLANE_TEST_BROWSER") == "required"  # read before the environment is cleaned
SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_docs_render_every_operation_offline(server: RunningServer) -> None:
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        assert not BROWSER_REQUIRED, f"{CHROMIUM} is required"
        pytest.skip(f"the docs page is checked in the system Chromium; install it at {CHROMIUM}")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(server.base_url) else outside.append(r.url))
        page.goto(f"{server.base_url}/api/docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        assert page.locator("text=Unable to render this definition").count() == 0
        assert page.locator(".opblock").count() >= 50
        page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
        page.locator(".opblock-summary-path", has_text="/api/v1/offers/{offer_id}").first.click()
        page.wait_for_selector(".responses-wrapper", timeout=10_000)
        responses = page.locator(".opblock.is-open .response-col_status").all_inner_texts()
        assert {"200", "401", "403", "404"} <= {text.strip() for text in responses}
        page.screenshot(path=str(SCREENSHOTS / "api-docs-offer.png"), full_page=False)
        browser.close()
    assert outside == []
