"""STATS and QUEUES a page at a time (row 2 of issue 18), over TCP and over HTTP."""

from __future__ import annotations

from typing import Any

from broker.protocol.requests import LIST_LIMIT_DEFAULT
from broker.server import Server
from tests.http.support import client_for, running_broker
from tests.http.test_metrics import scrape
from tests.support import LineClient

QUEUES = 1500  # more than one page


async def _make_queues(c: LineClient, count: int = QUEUES) -> list[str]:
    names = [f"q{i:05}" for i in range(count)]
    await c.send_raw(b"".join(b'{"op":"PUT","queue":"%s","body":1}\n' % n.encode() for n in names))
    for _ in names:
        assert (await c.reply())["ok"] is True
    return names


async def _walk(c: LineClient, op: str, **fields: Any) -> list[dict[str, Any]]:
    pages = []
    cursor = None
    for _ in range(QUEUES + 2):  # bounded: every page but the last is full
        request = {"op": op, **fields} if cursor is None else {"op": op, **fields, "cursor": cursor}
        page = await c.call(**request)
        assert page["ok"] is True, page
        pages.append(page)
        cursor = page.get("next")
        if cursor is None:
            return pages
    raise AssertionError("the listing did not end")


async def test_no_reply_lists_more_than_a_page_of_queues(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        names = await _make_queues(c)
        first = await c.call(op="QUEUES")
        assert len(first["queues"]) == LIST_LIMIT_DEFAULT and first["next"] == names[999]
        pages = await _walk(c, "QUEUES")
        assert [n for p in pages for n in p["queues"]] == names
        stats = await _walk(c, "STATS", limit=700)
        assert [len(p["queues"]) for p in stats] == [700, 700, 100]
        assert [n for p in stats for n in p["queues"]] == names
        assert all(p["server"]["queues"] == QUEUES for p in stats)  # the server section is whole


async def test_a_prefix_lists_only_its_queues_and_one_queue_is_not_a_page(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await _make_queues(c, 300)
        got = await c.call(op="QUEUES", prefix="q001", limit=50)
        assert got["queues"] == [f"q001{i:02}" for i in range(50)] and got["next"] == "q00149"
        rest = await c.call(op="QUEUES", prefix="q001", limit=100, cursor=got["next"])
        assert rest == {"ok": True, "queues": [f"q001{i:02}" for i in range(50, 100)]}
        assert (await c.call(op="STATS", prefix="nothing"))["queues"] == {}
        one = await c.call(op="STATS", queue="q00007")
        assert list(one["queues"]) == ["q00007"] and "next" not in one
        both = await c.call(op="STATS", queue="q00007", prefix="q")
        assert both["error"] == "bad_request" and "not both" in both["message"]


async def test_http_lists_by_pages_and_metrics_count_every_queue() -> None:
    async with running_broker(metrics_queues=10) as broker, client_for(broker.base) as api:
        async with await LineClient.connect(broker.tcp_port) as c:
            names = await _make_queues(c)
        first = (await api.get("/v1/queues", params={"limit": "1000"})).json
        assert len(first["queues"]) == 1000 and first["next"] == names[999]
        rest = (await api.get("/v1/queues", params={"after": first["next"]})).json
        assert list(rest["queues"]) == names[1000:] and "next" not in rest
        values = await scrape(api)
        assert values[("wonderq_events_total", (("event", "put"),))] == QUEUES
        assert values[("wonderq_metrics_queues_omitted", ())] == QUEUES - 10


async def test_deleted_queues_leave_no_gap_in_the_pages(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        names = await _make_queues(c, 40)
        for name in names[:35]:
            assert (await c.call(op="DELETE", queue=name))["ok"] is True
        first = await c.call(op="QUEUES", limit=2)
        assert first["queues"] == names[35:37] and first["next"] == names[36]
        rest = await c.call(op="QUEUES", limit=3, cursor=first["next"])
        assert rest == {"ok": True, "queues": names[37:]}
        stats = await c.call(op="STATS", limit=4)
        assert list(stats["queues"]) == names[35:39] and stats["next"] == names[38]
        assert stats["server"]["queues"] == 5
