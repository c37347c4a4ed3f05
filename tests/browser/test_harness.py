"""The harness itself: Debian's Chromium reaches the app served beside its background worker."""
from __future__ import annotations

from playwright.sync_api import Page


def test_the_browser_reads_the_served_app_ready_with_its_background_worker(page: Page) -> None:
    answer = page.goto("/readyz")
    assert answer is not None and answer.status == 200
    assert page.locator("body").inner_text().startswith("ready")
