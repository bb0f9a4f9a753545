"""docs/console.md's screenshots of the console (``make screenshots``), taken with real traffic.

A broker runs producers and consumers over TCP for about a minute (several queues at
different rates, a worker that fails some webhooks until they are dead letters, a
paused queue, a rate-limited one) while the overview is open, so its charts and rates
are real; then the overview and a dead-letter page are saved as PNG files in ``docs/``.
Marked slow: ``make screenshots`` runs it.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.console.browser.pages import table_with
from tests.console.support import Broker, Line, running

DOCS = Path(__file__).resolve().parents[3] / "docs"
TRAFFIC_S = 50.0
#: queue -> messages put per tick (0.25 s), messages taken per tick
QUEUES = {
    "emails.welcome": (6, 5),
    "thumbnails.resize": (9, 10),
    "billing.invoices": (2, 2),
    "search.reindex": (5, 4),
    "webhooks.deliver": (3, 3),
}


def traffic(broker: Broker, stop: threading.Event) -> None:
    """Producers and workers over TCP until ``stop`` (bounded by TRAFFIC_S in any case)."""
    rng = random.Random(7)
    with Line(broker.tcp_port) as tcp:
        tcp.call(op="CONFIG", queue="reports.nightly", rate=0.5)
        tcp.call(
            op="PUT", queue="reports.nightly", messages=[{"body": {"day": d}} for d in range(40)]
        )
        tcp.call(op="PAUSE", queue="exports.csv")
        tcp.call(op="PUT", queue="exports.csv", messages=[{"body": {"n": n}} for n in range(12)])
        deadline = time.monotonic() + TRAFFIC_S
        tick = 0
        while not stop.is_set() and time.monotonic() < deadline:
            tick += 1
            for queue, (put, take) in QUEUES.items():
                burst = put * (4 if queue == "search.reindex" and 60 < tick < 120 else 1)
                messages = [_message(queue, rng, tick, i) for i in range(burst)]
                tcp.call(op="PUT", queue=queue, messages=messages)
                got = tcp.call(op="GET", queue=queue, max=take)["messages"]
                for m in got:
                    failed = queue == "webhooks.deliver" and m["body"]["url"].endswith("/down")
                    tcp.call(op="NACK" if failed else "ACK", id=m["id"])
            tcp.call(op="GET", queue="reports.nightly", max=5)  # held: leased
            stop.wait(0.25)


def _message(queue: str, rng: random.Random, tick: int, i: int) -> dict[str, object]:
    if queue == "webhooks.deliver":
        host = rng.choice(["shop.example", "crm.example", "legacy.example"])
        path = "/down" if host == "legacy.example" else "/hooks"
        return {
            "body": {"url": f"https://{host}{path}", "event": "order.paid", "order": tick * 10 + i},
            "max_attempts": 3,
            "headers": {
                "traceparent": f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"
            },
        }
    return {
        "body": {"job": queue.split(".")[1], "id": tick * 100 + i},
        "key": f"acct-{rng.randrange(40)}",
    }


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_screenshots_of_the_overview_and_a_dead_letter_page(
    browser: Browser, tmp_path: Path
) -> None:
    with running(tmp_path) as broker:
        stop = threading.Event()
        worker = threading.Thread(target=traffic, args=(broker, stop))
        worker.start()
        context = browser.new_context(
            viewport={"width": 1280, "height": 1000}, color_scheme="light"
        )
        try:
            page = context.new_page()
            page.goto(broker.base + "/")
            table = table_with(page, "ready")
            expect(table.get_by_role("rowheader", name="webhooks.deliver")).to_be_visible()
            page.wait_for_timeout((TRAFFIC_S - 10) * 1000)  # real traffic, while it runs
            assert worker.is_alive()
            DOCS.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS / "console-overview.png"), full_page=True)
            page.goto(broker.base + "/dead-letters/webhooks.deliver")
            letters = table_with(page, "body")
            expect(letters.locator("tbody tr").first).to_be_visible()
            page.get_by_role("checkbox").nth(1).check()
            page.get_by_role("checkbox").nth(2).check()
            page.screenshot(path=str(DOCS / "console-dead-letters.png"), full_page=False)
        finally:
            stop.set()
            worker.join(5)
            context.close()
