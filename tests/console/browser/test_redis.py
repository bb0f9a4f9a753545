"""The console of a broker whose queues are kept in Redis: the same pages, the same
figures (the console learns nothing of the backend; its API is the same)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser.pages import cell, table_with
from tests.console.support import Broker, put_many, running


@pytest.fixture
def redis_broker(redis_url: str, tmp_path: Path) -> Iterator[Broker]:
    with running(tmp_path, "--backend", redis_url) as broker:
        yield broker


def test_the_overview_shows_a_redis_backed_queues_ready_count(
    page: Page, redis_broker: Broker
) -> None:
    put_many(redis_broker, "orders", [1, 2, 3])
    page.goto(redis_broker.base + "/")
    table = table_with(page, "ready")
    expect(cell(table, "orders", "ready")).to_have_text("3")
    put_many(redis_broker, "orders", [4, 5])
    expect(cell(table, "orders", "ready")).to_have_text("5")  # the next refresh shows it
