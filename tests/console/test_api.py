"""What the console needs from the HTTP server, over HTTP (every response validated
against the server's /openapi.json): its pages and files, the read-only rule, and the
API's additions for it (a sorted, filtered page of queues with totals; PEEK by pages)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.console.site import HEADERS, PAGE_PATHS, Site
from tests.http.support import Client, client_for, running_broker

TOKEN = "s3cret-s3cret-s3cret"


@pytest.fixture
async def api() -> AsyncIterator[Client]:
    async with running_broker() as broker, client_for(broker.base) as client:
        yield client


PAGES = ("/", "/queues/jobs", "/dead-letters", "/dead-letters/jobs", "/connections")


async def test_every_page_url_serves_the_page_without_the_token() -> None:
    assert len(PAGES) == len(PAGE_PATHS)
    async with running_broker(token=TOKEN) as broker, client_for(broker.base, token=TOKEN) as api:
        anonymous = api.session.__class__()
        async with anonymous:
            for url in PAGES:
                async with anonymous.get(broker.base + url) as got:
                    assert got.status == 200, url
                    assert got.headers["Content-Type"] == "text/html; charset=utf-8"
                    for name, value in HEADERS.items():
                        assert got.headers[name] == value, (url, name)
                    page = await got.read()
                    assert b'data-read-only="false"' in page
                    assert b'<script type="module" src="/console/console.js">' in page
            async with anonymous.get(broker.base + "/console/console.js") as got:
                assert got.status == 200
                assert got.headers["Content-Type"] == "text/javascript; charset=utf-8"
                assert got.headers["X-Frame-Options"] == "DENY"
            async with anonymous.get(broker.base + "/console/console.css") as got:
                assert got.headers["Content-Type"] == "text/css; charset=utf-8"
            for path in ("/v1/stats", "/nope", "/queues/jobs/more"):  # the API keeps its token
                async with anonymous.get(broker.base + path) as got:
                    assert got.status == 401, path
        missing = await api.get("/console/nope.js")
        assert (missing.status, missing.json["error"]) == (404, "not_found")
        assert "the console has no file 'nope.js'" in missing.json["message"]
        assert (await api.get("/console/index.html")).status == 404  # only at page URLs


async def test_a_read_only_console_refuses_a_browsers_actions_not_a_scripts() -> None:
    async with running_broker(console_read_only=True) as broker, client_for(broker.base) as api:
        host = broker.base.removeprefix("http://")
        async with api.session.get(broker.base + "/") as got:
            assert b'data-read-only="true"' in await got.read()
        assert (await api.post("/v1/queues/jobs/messages", {"body": 1})).status == 201
        for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": broker.base, "Host": host}):
            refused = await api.post("/v1/queues/jobs/purge", headers=headers)
            assert (refused.status, refused.json["error"]) == (403, "unauthorized")
            assert "read-only" in refused.json["message"]
            assert "WWW-Authenticate" not in refused.headers
            reading = await api.get("/v1/queues/jobs", headers=headers)
            assert reading.json["queue"]["ready"] == 1  # reading is not an action
        assert "read-only" in api.raw["info"]["description"]
        purge = api.raw["paths"]["/v1/queues/{queue}/purge"]["post"]["responses"]
        assert "read-only" in purge["403"]["content"]["application/json"]["example"]["message"]
        stats = api.raw["paths"]["/v1/stats"]["get"]["responses"]  # a read: only the host rule
        assert "rebinding" in stats["403"]["content"]["application/json"]["example"]["message"]


async def test_without_read_only_the_console_may_act(api: Client) -> None:
    assert (await api.post("/v1/queues/jobs/messages", {"body": 1})).status == 201
    taken = await api.post("/v1/queues/jobs/purge", headers={"Sec-Fetch-Site": "same-origin"})
    assert taken.json == {"ok": True, "purged": 1}
    purge = api.raw["paths"]["/v1/queues/{queue}/purge"]["post"]["responses"]
    assert "read-only" not in purge["403"]["content"]["application/json"]["example"]["message"]


async def put(api: Client, queue: str, n: int, **fields: object) -> list[str]:
    got = await api.post(
        f"/v1/queues/{queue}/messages", {"messages": [{"body": i, **fields} for i in range(n)]}
    )
    assert got.status == 201, got.json
    ids: list[str] = got.json["ids"]
    return ids


async def test_a_page_of_queues_sorted_filtered_with_totals_and_the_server(api: Client) -> None:
    for name, n in (("a.small", 1), ("a.big", 5), ("b.mid", 3), ("c", 3)):
        await put(api, name, n)
    await put(api, "a.small.dead", 2)  # a dead-letter queue whose queue exists
    await put(api, "gone.dead", 1)  # and one whose queue does not
    plain = (await api.get("/v1/queues")).json  # a page of STATS: no pass over every queue
    assert plain["order"] == ["a.big", "a.small", "a.small.dead", "b.mid", "c", "gone.dead"]
    assert "count" not in plain and "totals" not in plain
    assert plain["server"]["queues"] == 6 and "uptime" in plain["server"]
    everything = (await api.get("/v1/queues", params={"totals": "true"})).json
    assert everything["order"] == plain["order"]
    assert everything["count"] == 6 and everything["totals"]["ready"] == 15
    folded = (await api.get("/v1/queues", params={"dead_queues": "false"})).json
    assert folded["order"] == ["a.big", "a.small", "b.mid", "c", "gone.dead"]
    assert folded["queues"]["a.small"]["dead"] == 2
    assert (folded["totals"]["ready"], folded["totals"]["dead"]) == (13, 2)
    by_ready = {"dead_queues": "false", "sort": "ready", "desc": "true", "limit": "2"}
    first = (await api.get("/v1/queues", params=by_ready)).json
    assert first["order"] == ["a.big", "b.mid"] and "next" not in first  # ties by name
    assert first["count"] == 5 and first["totals"]["ready"] == 13  # every match, every page
    second = (await api.get("/v1/queues", params={**by_ready, "offset": "2"})).json
    assert second["order"] == ["c", "a.small", "gone.dead"][:2]
    ascending = (await api.get("/v1/queues", params={"sort": "oldest_ready_age"})).json
    assert len(ascending["order"]) == 6
    matching = (await api.get("/v1/queues", params={"contains": "small"})).json
    assert matching["order"] == ["a.small", "a.small.dead"] and matching["count"] == 2
    assert matching["totals"]["ready"] == 3
    none = (await api.get("/v1/queues", params={"contains": "zzz"})).json
    assert (none["order"], none["count"], none["totals"]["ready"]) == ([], 0, 0)
    paged = (await api.get("/v1/queues", params={"limit": "2"})).json
    assert paged["order"] == ["a.big", "a.small"] and paged["next"] == "a.small"
    for other in ({"sort": "ready"}, {"contains": "a"}, {"totals": "true"}):
        bad = await api.get("/v1/queues", params={**other, "after": "a"})
        assert bad.status == 400 and "page with `offset`" in bad.json["message"], other
    prefixed = (await api.get("/v1/queues", params={"prefix": "a.", "sort": "ready"})).json
    assert prefixed["order"] == ["a.small", "a.small.dead", "a.big"]
    unknown = await api.get("/v1/queues", params={"sort": "nope"})
    assert unknown.status == 400 and "$.sort" in unknown.json["message"]


async def test_peek_a_page_at_a_time_from_an_offset(api: Client) -> None:
    ids = await put(api, "jobs", 25)
    pages = []
    for offset in (0, 10, 20):
        got = await api.get(
            "/v1/queues/jobs/messages",
            params={"state": "ready", "limit": "10", "offset": str(offset)},
        )
        assert got.json["total"] == 25
        pages += [m["id"] for m in got.json["messages"]]
    assert pages == ids
    stats = (await api.get("/v1/queues/jobs")).json["queue"]
    assert (stats["ready"], stats["leased"]) == (25, 0)  # nothing leased
    past = await api.get("/v1/queues/jobs/messages", params={"offset": "30"})
    assert (past.status, past.json["messages"], past.json["total"]) == (200, [], 25)
    too_far = await api.get("/v1/queues/jobs/messages", params={"offset": "995", "limit": "10"})
    assert too_far.status == 400
    assert "offset + limit is 1005; at most 1000" in too_far.json["message"]
    bad_name = await api.get("/v1/queues/bad name/messages")
    assert bad_name.status == 400 and "queue names" in bad_name.json["message"]
    missing = await api.get("/v1/queues/nope/messages")
    assert missing.status == 404


def test_a_page_without_the_read_only_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>")
    with pytest.raises(ValueError, match="data-read-only"):
        Site(read_only=False, directory=tmp_path)
