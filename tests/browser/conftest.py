"""Browser tests: the real app served on a free port, driven by Debian's headless Chromium.

Playwright for Python drives the system's ``chromium`` (``executable_path``): a test run never
downloads a browser (never run ``playwright install``). Without ``chromium`` on the PATH the
browser tests skip on a developer's machine and fail in CI (CI=true; .ci/run installs it).

One browser for the test session, a fresh context (cookies, storage) per test, 1366x768 unless
a test asks for another size. ``GUICHET_SCREENSHOTS=1`` saves the screenshots the tests take
under docs/screenshots/ (the README shows them); otherwise they go to the test's tmp folder, so
a normal run leaves the tree clean.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import fakeredis
import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, sync_playwright

from state.store import get_redis
from tests.live import serve
from utility.customers import RedisCustomerBase
from utility.demo import seed_demo

LAPTOP: ViewportSize = {"width": 1366, "height": 768}
PHONE_WIDTH: ViewportSize = {"width": 375, "height": 740}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# Named operator keys, as a utility configures them (utility.operators): the audit says who acted.
OPERATOR = "alice"
OPERATOR_KEY = "alice-key-for-browser-tests"
SERVICE_CODE = "*384#"
DEMO_CUSTOMERS = 20  # the fixed accounts behind utility.demo.DEMO_PHONES and a few drawn ones

# Without these, Chromium calls home (updates, sync, field trials) from a test run, and the
# sandbox needs user namespaces a container rarely grants.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _skip_or_fail("no chromium on the PATH (Debian: apt-get install chromium chromium-driver)")
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="session")
def browser(chromium_path: str, playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, live: Live) -> Iterator[BrowserContext]:
    """A fresh browser profile for one test, its relative URLs on the served app."""
    fresh = browser.new_context(viewport=LAPTOP, base_url=live.url, locale="fr-FR")
    fresh.set_default_timeout(10_000)  # an answer slower than a USSD gateway's wait is a failure
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@dataclass(frozen=True)
class Live:
    """The served app, where it answers, and where its SMS go."""

    app: Flask
    url: str
    sms_file: Path

    def sms_to(self, phone: str) -> list[dict[str, object]]:
        """The SMS the file provider wrote for ``phone``, oldest first."""
        if not self.sms_file.exists():
            return []
        lines = self.sms_file.read_text(encoding="utf-8").splitlines()
        return [message for message in map(json.loads, lines) if message["to"] == phone]


@contextmanager
def demo_server(sms_file: Path, **config: object) -> Iterator[Live]:
    """The app as `make run` serves it for a demo, plus named admin keys: the embedded-like
    store (a fakeredis server of its own) seeded with the demo customers, the configured
    service code, SMS written whole to a JSON-lines file by the file provider."""
    with serve({
        "REDIS_CLIENT": fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True),
        "ADMIN_KEYS": {OPERATOR: OPERATOR_KEY},
        "SERVICE_CODES": [SERVICE_CODE],
        "SMS_PROVIDER": "file",
        "SMS_FILE": str(sms_file),
        "SMS_RATE_PER_SECOND": 0,
        **config,
    }) as app:
        with app.app_context():
            seed_demo(RedisCustomerBase(get_redis()), DEMO_CUSTOMERS)
        yield Live(app, str(app.config["PUBLIC_URL"]), sms_file)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    # Long enough that a page drawn at the END of a purchase cannot hold its token SMS yet:
    # a test sees the SMS list refresh itself.
    with demo_server(tmp_path / "sms.jsonl", DEMO_PAYMENT_DELAY=1.5) as served:
        yield served


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[..., Path]:
    """``screenshot(page, "phone-laptop")``: the page as the browser shows it, as a PNG under
    docs/screenshots/ with GUICHET_SCREENSHOTS=1, else in the test's tmp folder. ``full_page=False``
    keeps only the screen's worth a laptop shows (a very long page would be unreadable shrunk)."""
    folder = SCREENSHOTS if os.environ.get("GUICHET_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str, full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
