"""The console in Debian's Chromium against a real broker: what it shows, live."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.console.browser.pages import cell, table_with
from tests.console.support import Broker, put_many

QUEUE_HEADERS = (
    "queue",
    "ready",
    "delayed",
    "leased",
    "dead",
    "waiting",
    "put/s",
    "ack/s",
    "oldest ready",
    "paused",
    "rate limit",
)


def test_the_overview_shows_a_queue_and_its_ready_count_changes_live(
    page: Page, broker: Broker, queue: str
) -> None:
    put_many(broker, queue, [1, 2, 3])
    page.goto(broker.base + "/")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    table = table_with(page, "ready")
    for header in QUEUE_HEADERS:
        expect(table.get_by_role("columnheader", name=header, exact=True)).to_have_count(1)
    expect(cell(table, queue, "ready")).to_have_text("3")
    put_many(broker, queue, [4, 5])
    expect(cell(table, queue, "ready")).to_have_text("5")  # the next refresh shows it
    expect(page.get_by_text("live, every second")).to_be_visible()
    link = table.get_by_role("link", name=queue, exact=True)
    link.click()
    expect(page).to_have_url(f"{broker.base}/queues/{queue}")
    expect(page.get_by_role("heading", name=queue, level=1)).to_be_visible()


def test_the_queue_table_is_sorted_filtered_and_paged_and_its_url_says_so(
    page: Page, broker: Broker, queue: str
) -> None:
    names = [f"{queue}.{i:02d}" for i in range(30)]
    for i, name in enumerate(names):
        put_many(broker, name, list(range(i % 7)) or [0])
    page.goto(broker.base + "/?size=25")
    search = page.get_by_role("searchbox", name="Filter by name")
    search.fill(queue)
    table = table_with(page, "ready")
    expect(page.get_by_text(re.compile("1\u201325 of 30 queues matching"))).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text(re.compile("26\u201330 of 30 queues matching"))).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(5)
    table.get_by_role("button", name="ready", exact=True).click()  # the most first
    expect(page.get_by_text(re.compile("1\u201325 of 30"))).to_be_visible()
    expect(table.get_by_role("columnheader", name="ready", exact=True)).to_have_attribute(
        "aria-sort", "descending"
    )
    first = table.locator("tbody tr").first.get_by_role("rowheader")
    expect(first).to_have_text(names[6])  # 6 messages; ties in name order
    expect(page).to_have_url(re.compile(r"sort=ready&desc=1"))
    page.reload()  # the URL keeps the view
    expect(page.get_by_role("searchbox", name="Filter by name")).to_have_value(queue)
    expect(table.locator("tbody tr").first.get_by_role("rowheader")).to_have_text(names[6])


def snapshot(broker: Broker, queue: str, ids: list[str]) -> object:
    """What PEEK must never change, read over TCP: the figures and each message's state."""
    with broker.line() as tcp:
        figures = tcp.call(op="STATS", queue=queue)["queues"][queue]
        infos = [tcp.call(op="INFO", id=i)["message"] for i in ids]
    for info in infos:
        info.pop("age", None)
        info.pop("lease_left", None)
        info.pop("delay_left", None)
    figures.pop("oldest_ready_age")
    return figures, infos


def test_the_message_browser_lists_messages_without_changing_them(
    page: Page, broker: Broker, queue: str
) -> None:
    big = {"rows": [{"n": i, "text": "x" * 40} for i in range(60)]}
    ids = put_many(broker, queue, ["first", big])
    with broker.line() as tcp:
        keyed = tcp.call(
            op="PUT", queue=queue, body={"k": 1}, key="acct-7", headers={"traceparent": "00-ab"}
        )["id"]
        delayed = tcp.call(op="PUT", queue=queue, body="later", delay=600)["id"]
        leased = tcp.call(op="GET", queue=queue)["messages"][0]["id"]  # held while we look
        assert leased == ids[0]
        before = snapshot(broker, queue, [*ids, keyed, delayed])
        page.goto(f"{broker.base}/queues/{queue}")
        browser = table_with(page, "body")
        expect(browser.locator("tbody tr")).to_have_count(2)  # ready: big and keyed
        expect(cell(browser, ids[1], "attempts")).to_have_text("0 of 5")
        keyed_row = browser.locator(f'tr[data-id="{keyed}"]')
        expect(keyed_row).to_contain_text("acct-7")
        big_row = browser.locator(f'tr[data-id="{ids[1]}"]')
        expect(big_row.locator("pre").last).not_to_contain_text('"n": 59')  # cut
        big_row.get_by_role("button", name="Show all").click()
        expect(big_row.locator("pre").last).to_contain_text('"n": 59')
        page.get_by_role("button", name=re.compile(r"^leased")).click()
        expect(browser.locator("tbody tr")).to_have_count(1)
        expect(cell(browser, leased, "holder")).to_have_text(re.compile(r"127\.0\.0\.1:\d+"))
        expect(cell(browser, leased, "attempts")).to_have_text("1 of 5")
        page.get_by_role("button", name=re.compile(r"^delayed")).click()
        expect(cell(browser, delayed, "time left")).to_have_text(re.compile(r"^9m"))
        page.get_by_role("button", name="Refresh").click()
        expect(browser.locator("tbody tr")).to_have_count(1)
        assert snapshot(broker, queue, [*ids, keyed, delayed]) == before
        assert tcp.call(op="ACK", id=leased) == {"ok": True}  # still this connection's lease


def test_the_message_browser_shows_a_messages_headers(
    page: Page, broker: Broker, queue: str
) -> None:
    put_many(broker, queue, [{"k": 1}], headers={"traceparent": "00-ab", "type": "order"})
    page.goto(f"{broker.base}/queues/{queue}")
    row = table_with(page, "body").locator("tbody tr")
    expect(row).to_contain_text("traceparent: 00-ab")
    expect(row).to_contain_text("type: order")
