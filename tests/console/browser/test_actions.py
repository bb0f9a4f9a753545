"""Actions from the console, each behind its confirmation, checked over TCP."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.console.browser.pages import cell, confirm, table_with
from tests.console.support import Broker, dead_letter, put_many


def ready(broker: Broker, queue: str) -> int:
    with broker.line() as tcp:
        n: int = tcp.call(op="STATS", queue=queue)["queues"][queue]["ready"]
    return n


def test_purge_asks_first_naming_the_count_then_empties_the_queue(
    page: Page, broker: Broker, queue: str
) -> None:
    put_many(broker, queue, list(range(7)))
    page.goto(f"{broker.base}/queues/{queue}")
    figures = table_with(page, "oldest ready")
    expect(figures.locator("tbody td").first).to_have_text("7")
    page.get_by_role("button", name="Purge", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete the 7 ready and delayed messages")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert ready(broker, queue) == 7
    confirm(page, "Purge", says="7 ready and delayed")
    expect(page.get_by_role("status")).to_have_text(f"Purged 7 messages of {queue}.")
    assert ready(broker, queue) == 0
    expect(figures.locator("tbody td").first).to_have_text("0")


def test_the_keyboard_reaches_an_action_and_escape_cancels_it(
    page: Page, broker: Broker, queue: str
) -> None:
    put_many(broker, queue, [1, 2])
    page.goto(f"{broker.base}/queues/{queue}")
    expect(page.get_by_role("button", name="Purge", exact=True)).to_be_enabled()
    for _ in range(40):  # bounded: Tab until Purge has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Purge":
            break
    else:
        raise AssertionError("Tab never reached Purge")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe default
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert ready(broker, queue) == 2


def test_a_dead_letter_is_retried_from_the_console_then_received_over_tcp(
    page: Page, broker: Broker, queue: str
) -> None:
    message_id = dead_letter(broker, queue, {"order": 17})
    page.goto(f"{broker.base}/dead-letters")
    queues = table_with(page, "dead lettered")
    expect(cell(queues, queue, "dead")).to_have_text("1")
    queues.get_by_role("link", name=queue, exact=True).click()
    expect(page).to_have_url(f"{broker.base}/dead-letters/{queue}")
    letters = table_with(page, "body")
    row = letters.locator("tbody tr").filter(has_text=message_id)
    expect(row).to_contain_text('{ "order": 17 }')
    row.get_by_role("button", name="Retry", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Move message {message_id} back to {queue}")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_have_text("Retried 1 of 1.")
    expect(letters.locator("tbody tr")).to_have_count(0)
    with broker.line() as tcp:
        got = tcp.call(op="GET", queue=queue)["messages"]
        assert [(m["id"], m["body"], m["attempts"]) for m in got] == [
            (message_id, {"order": 17}, 1)
        ]
        assert tcp.call(op="ACK", id=message_id) == {"ok": True}


def test_dead_letters_are_retried_and_deleted_a_selection_at_a_time(
    page: Page, broker: Broker, queue: str
) -> None:
    ids = [dead_letter(broker, queue, n) for n in range(4)]
    page.goto(f"{broker.base}/dead-letters/{queue}")
    letters = table_with(page, "body")
    expect(letters.locator("tbody tr")).to_have_count(4)
    expect(page.get_by_role("button", name="Delete selected")).to_be_disabled()
    for message_id in ids[:2]:
        page.get_by_role("checkbox", name=f"Select {message_id}").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    confirm(page, "Delete selected", says="Delete the 2 selected messages")
    expect(page.get_by_role("status")).to_have_text("Deleted 2 of 2.")
    expect(letters.locator("tbody tr")).to_have_count(2)
    page.get_by_role("checkbox", name="Select every message of this page").check()
    confirm(page, "Retry selected", says="Move the 2 selected messages back")
    expect(page.get_by_role("status")).to_have_text("Retried 2 of 2.")
    with broker.line() as tcp:
        dead = tcp.call(op="PEEK", queue=queue, state="dead")
        assert dead["total"] == 0
        back = tcp.call(op="PEEK", queue=queue, state="ready")["messages"]
        assert sorted(m["id"] for m in back) == sorted(ids[2:])
        for deleted in ids[:2]:
            assert tcp.call(op="INFO", id=deleted)["ok"] is False


def test_redrive_and_pause_and_resume_and_settings(page: Page, broker: Broker, queue: str) -> None:
    dead_letter(broker, queue, "a")
    dead_letter(broker, queue, "b")
    page.goto(f"{broker.base}/queues/{queue}")
    confirm(page, "Redrive", says="Move the 2 dead letters")
    expect(page.get_by_role("status")).to_have_text(f"Redriven 2 dead letters to {queue}.")
    assert ready(broker, queue) == 2
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    with broker.line() as tcp:
        assert tcp.call(op="STATS", queue=queue)["queues"][queue]["paused"] is True
        assert tcp.call(op="GET", queue=queue)["messages"] == []
    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    rate = page.get_by_label(re.compile(r"^rate limit"))
    expect(rate).to_have_value("")
    rate.fill("0.5")
    page.get_by_label("max attempts").fill("9")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Saved max_attempts, rate of {queue}.")
    with broker.line() as tcp:
        settings = tcp.call(op="CONFIG", queue=queue)["settings"]
        assert (settings["rate"], settings["max_attempts"]) == (0.5, 9)
        assert tcp.call(op="STATS", queue=queue)["queues"][queue]["paused"] is False
    figures = table_with(page, "oldest ready")
    expect(figures.locator("tbody td").last).to_have_text("0.5/s")


def test_delete_queue_asks_first_then_the_queue_is_gone(
    page: Page, broker: Broker, queue: str
) -> None:
    put_many(broker, queue, [1, 2])
    page.goto(f"{broker.base}/queues/{queue}")
    confirm(page, "Delete queue", says=f"Delete {queue} with its 2 messages")
    expect(page.get_by_role("status")).to_have_text(f"Deleted {queue} and 2 messages.")
    expect(page.get_by_text(f"No queue named {queue}")).to_be_visible()
    with broker.line() as tcp:
        assert tcp.call(op="STATS", queue=queue)["error"] == "not_found"
