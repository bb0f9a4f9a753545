"""Fixtures of the console's browser tests: one Chromium for the package, a fresh
browser context (its own sessionStorage) and page per test, and a shared broker.

Playwright's blocking API runs its own event loop while the browser is open, so
no asyncio test may run in this package: they are in ``tests/console``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.console.support import Broker, launch, running

TIMEOUT_MS = 10_000


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="package")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker the tests share: each test uses queues of its own."""
    with running(tmp_path_factory.mktemp("console")) as shared:
        yield shared


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"the page's script failed: {errors}"


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name of the test's own."""
    name: str = request.node.name
    return name.replace("[", "-").replace("]", "").replace("_", "-")[:100]
