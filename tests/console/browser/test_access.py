"""Who may act: a read-only console, the token prompt, other sites; and a broker that
goes away and comes back."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.console.browser.pages import ACTIONS, cell, table_with
from tests.console.support import dead_letter, free_port, put_many, running

TOKEN = "console-s3cret-token"


def test_read_only_shows_no_action_and_the_server_refuses_them(page: Page, tmp_path: Path) -> None:
    data = str(tmp_path / "data")  # the durable backend: its log's figures are shown too
    with running(tmp_path, "--console-read-only", "--data-dir", data) as broker:
        dead_letter(broker, "jobs", "poison")
        put_many(broker, "jobs", [1, 2, 3])
        for url in ("/", "/queues/jobs", "/dead-letters/jobs", "/dead-letters", "/connections"):
            page.goto(broker.base + url)
            expect(page.locator("main h1")).to_be_visible()
            expect(page.get_by_text("read-only", exact=True)).to_be_visible()
            if url == "/":
                expect(page.get_by_role("heading", name="durable log")).to_be_visible()
            if url == "/queues/jobs":
                figures = table_with(page, "oldest ready")
                expect(figures.locator("tbody td").first).to_have_text("3")
                expect(page.get_by_label("max attempts")).not_to_be_editable()
            if url == "/dead-letters/jobs":
                expect(table_with(page, "body").locator("tbody tr")).to_have_count(1)
                expect(page.get_by_role("checkbox")).to_have_count(0)
            for name in ACTIONS:
                expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
            expect(page.get_by_role("button", name=re.compile("selected|Delete"))).to_have_count(0)
        refused = page.evaluate(
            """async () => {
                const r = await fetch("/v1/queues/jobs/purge", {method: "POST"});
                return [r.status, (await r.json()).error];
            }"""
        )
        assert refused == [403, "unauthorized"]
        with broker.line() as tcp:
            assert tcp.call(op="STATS", queue="jobs")["queues"]["jobs"]["ready"] == 3
            assert tcp.call(op="PURGE", queue="jobs") == {"ok": True, "purged": 3}  # a client may


def test_the_console_asks_for_the_token_once_and_keeps_it_for_the_tab(
    browser: Browser, tmp_path: Path
) -> None:
    with running(tmp_path, "--token", TOKEN) as broker:
        with broker.line() as tcp:
            assert tcp.call(op="AUTH", token=TOKEN)["ok"]
            tcp.call(op="PUT", queue="jobs", messages=[{"body": 1}, {"body": 2}])
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(broker.base + "/")
            dialog = page.get_by_role("dialog", name="Token")
            expect(dialog).to_be_visible()
            dialog.get_by_label("Token").fill("wrong-token")
            dialog.get_by_role("button", name="Use token").click()
            expect(dialog).to_contain_text("That token was refused")
            dialog.get_by_label("Token").fill(TOKEN)
            dialog.get_by_role("button", name="Use token").click()
            expect(dialog).to_be_hidden()
            table = table_with(page, "ready")
            expect(cell(table, "jobs", "ready")).to_have_text("2")
            page.goto(broker.base + "/queues/jobs")  # another page of the same tab: no prompt
            page.get_by_role("button", name="Purge", exact=True).click()
            page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
            expect(page.get_by_role("status")).to_have_text("Purged 2 messages of jobs.")
            assert not page.get_by_role("dialog", name="Token").is_visible()
            other = context.new_page()  # a new tab asks again
            other.goto(broker.base + "/")
            expect(other.get_by_role("dialog", name="Token")).to_be_visible()
        finally:
            context.close()


def test_the_page_says_disconnected_while_the_broker_is_away(page: Page, tmp_path: Path) -> None:
    with running(tmp_path) as broker:
        put_many(broker, "before", [1])
        page.goto(broker.base + "/")
        table = table_with(page, "ready")
        expect(cell(table, "before", "ready")).to_have_text("1")
        banner = page.get_by_role("alert").filter(has_text="Disconnected")
        expect(banner).to_be_hidden()
        broker.stop()
        expect(banner).to_be_visible()
        expect(cell(table, "before", "ready")).to_have_text("1")  # the last figures stay
        broker.start()  # the same ports, an empty broker
        expect(banner).to_be_hidden()
        put_many(broker, "after", [1, 2])
        expect(cell(table, "after", "ready")).to_have_text("2")
        expect(table.get_by_role("rowheader", name="before")).to_have_count(0)


def test_another_site_can_neither_act_nor_frame_the_console(page: Page, tmp_path: Path) -> None:
    with running(tmp_path) as broker:
        put_many(broker, "jobs", [1, 2])
        evil = f"http://localhost:{free_port()}/"  # another site, on this machine
        attack = f"""<!doctype html><title>evil</title>
            <iframe id="framed" src="{broker.base}/queues/jobs"></iframe>
            <form id="f" method="post" action="{broker.base}/v1/queues/jobs/purge"></form>
            <script>
              fetch("{broker.base}/v1/queues/jobs/purge", {{method: "POST", mode: "no-cors"}})
                .catch(() => null).finally(() => document.title = "fetched");
            </script>"""
        page.route(evil, lambda route: route.fulfill(content_type="text/html", body=attack))
        page.goto(evil)
        expect(page).to_have_title("fetched")
        page.wait_for_load_state("load")  # the frame has loaded, or failed to
        assert [f.url for f in page.frames[1:]] == ["chrome-error://chromewebdata/"]  # refused
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
        expect(page.locator("body")).to_contain_text("another site")
        with broker.line() as tcp:
            assert tcp.call(op="STATS", queue="jobs")["queues"]["jobs"]["ready"] == 2


def test_connections_list_each_connection_with_its_leases(page: Page, tmp_path: Path) -> None:
    with running(tmp_path) as broker:
        put_many(broker, "jobs", [1, 2])
        with broker.line() as tcp:
            tcp.call(op="GET", queue="jobs", max=2)
            page.goto(broker.base + "/connections")
            table = table_with(page, "leases")
            for header in ("address", "leases", "waiting", "requests"):
                expect(table.get_by_role("columnheader", name=header, exact=True)).to_have_count(1)
            holder = table.locator("tbody tr").filter(
                has=page.get_by_role("cell", name="2", exact=True)
            )
            expect(holder.first).to_be_visible()
            expect(holder.first.get_by_role("rowheader")).to_have_text(
                re.compile(r"127\.0\.0\.1:\d+")
            )
