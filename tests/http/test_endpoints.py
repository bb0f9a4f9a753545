"""Every endpoint of the HTTP API against a real broker, each response validated
against the broker's /openapi.json (``Client.check``)."""

from __future__ import annotations

import pytest

from tests.http.support import Broker, Client, client_for, running_broker
from tests.support import LineClient

DEEP: object = 1
for _ in range(70):
    DEEP = [DEEP]


async def test_put_one_message_is_201_with_its_location_and_info_shows_it(api: Client) -> None:
    put = await api.post("/v1/queues/jobs/messages", {"body": {"task": "resize"}, "key": "k"})
    assert put.status == 201
    msg_id = put.json["id"]
    assert put.json == {"ok": True, "id": msg_id}
    assert put.headers["Location"] == f"/v1/messages/{msg_id}"
    info = await api.get(put.headers["Location"])
    assert info.status == 200
    message = info.json["message"]
    assert (message["queue"], message["state"], message["body"], message["key"]) == (
        "jobs",
        "ready",
        {"task": "resize"},
        "k",
    )


async def test_a_batch_put_is_all_or_nothing(api: Client) -> None:
    put = await api.post("/v1/queues/jobs/messages", {"messages": [{"body": 1}, {"body": 2}]})
    assert put.status == 201
    assert len(put.json["ids"]) == 2 and put.json["duplicates"] == []
    bad = await api.post(
        "/v1/queues/jobs/messages", {"messages": [{"body": 3}, {"body": 4, "delay": -1}]}
    )
    assert bad.status == 400
    assert bad.json["error"] == "bad_request" and "messages[1].delay" in bad.json["message"]
    assert (await api.get("/v1/queues/jobs")).json["queue"]["ready"] == 2


@pytest.mark.parametrize(
    ("body", "error", "names"),
    [
        ({"body": 1, "messages": [{"body": 2}]}, "bad_request", "exactly one of"),
        ({}, "bad_request", "exactly one of"),
        ({"body": 1, "dealy": 5}, "bad_request", "`dealy`"),
        ({"body": 1, "queue": "other"}, "bad_request", "`queue`"),
        ({"body": 1, "priority": "high"}, "bad_request", "$.priority"),
        ({"body": DEEP}, "bad_request", "64 levels"),
    ],
)
async def test_a_bad_put_is_a_400_naming_the_field(
    api: Client, body: object, error: str, names: str
) -> None:
    got = await api.post("/v1/queues/jobs/messages", body)
    assert got.status == 400
    assert got.json["ok"] is False and got.json["error"] == error
    assert names in got.json["message"]


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_bad_json(
    api: Client, data: bytes, names: str
) -> None:
    got = await api.post("/v1/queues/jobs/messages", data=data)
    assert got.status == 400
    assert got.json["error"] == "bad_json" and names in got.json["message"]


async def test_a_queue_name_in_the_path_is_checked_as_over_tcp(api: Client) -> None:
    got = await api.post("/v1/queues/no%20spaces/messages", {"body": 1})
    assert got.status == 400 and "queue names are" in got.json["message"]
    got = await api.get("/v1/queues/" + "q" * 201)
    assert got.status == 400 and "$.queue" in got.json["message"]


async def test_limits_of_the_broker_have_their_statuses() -> None:
    async with (
        running_broker(max_body=8, max_queue_length=1) as broker,
        client_for(broker.base) as api,
    ):
        too_large = await api.post("/v1/queues/q/messages", {"body": "0123456789"})
        assert (too_large.status, too_large.json["error"]) == (413, "too_large")
        assert (await api.post("/v1/queues/q/messages", {"body": "12345"})).status == 201
        full = await api.post("/v1/queues/q/messages", {"body": 1})
        assert (full.status, full.json["error"]) == (429, "queue_full")
        assert full.headers["Retry-After"] == "1"


@pytest.mark.memory_only(
    "--max-memory (Redis has maxmemory instead: a full Redis's memory_limit is "
    "tests/redis/test_full_redis.py's)"
)
async def test_the_memory_limit_is_503_with_retry_after() -> None:
    # room for one queue of one small message, not two (engine/footprint.py)
    async with running_broker(max_memory=4400) as broker, client_for(broker.base) as api:
        assert (await api.post("/v1/queues/q/messages", {"body": "12345"})).status == 201
        memory = await api.post("/v1/queues/other/messages", {"body": "12345"})
        assert (memory.status, memory.json["error"]) == (503, "memory_limit")
        assert memory.headers["Retry-After"] == "1"


async def test_queues_are_listed_with_their_figures_a_page_at_a_time(api: Client) -> None:
    for name in ("a.1", "a.2", "a.3", "b.1"):
        await api.post(f"/v1/queues/{name}/messages", {"body": name})
    everything = await api.get("/v1/queues")
    assert list(everything.json["queues"]) == ["a.1", "a.2", "a.3", "b.1"]
    assert "next" not in everything.json
    assert everything.json["queues"]["b.1"]["ready"] == 1
    first = await api.get("/v1/queues", params={"prefix": "a.", "limit": "2"})
    assert list(first.json["queues"]) == ["a.1", "a.2"] and first.json["next"] == "a.2"
    rest = await api.get(
        "/v1/queues", params={"prefix": "a.", "limit": "2", "after": first.json["next"]}
    )
    assert list(rest.json["queues"]) == ["a.3"] and "next" not in rest.json
    bad = await api.get("/v1/queues", params={"limit": "0"})
    assert bad.status == 400 and "$.limit" in bad.json["message"]
    unknown = await api.get("/v1/queues", params={"order": "depth"})
    assert unknown.status == 400 and "`order`" in unknown.json["message"]


async def test_one_queue_and_an_unknown_one(api: Client) -> None:
    await api.post("/v1/queues/jobs/messages", {"body": 1, "delay": 60})
    got = await api.get("/v1/queues/jobs")
    assert got.status == 200
    assert (got.json["queue"]["ready"], got.json["queue"]["delayed"]) == (0, 1)
    missing = await api.get("/v1/queues/nope")
    assert (missing.status, missing.json["error"]) == (404, "not_found")


async def test_peek_lists_messages_by_state_without_leasing_them(api: Client) -> None:
    await api.post(
        "/v1/queues/jobs/messages", {"messages": [{"body": "a"}, {"body": "b", "delay": 60}]}
    )
    ready = await api.get("/v1/queues/jobs/messages", params={"state": "ready"})
    assert [m["body"] for m in ready.json["messages"]] == ["a"] and ready.json["total"] == 1
    everything = await api.get("/v1/queues/jobs/messages", params={"limit": "1"})
    assert len(everything.json["messages"]) == 1 and everything.json["total"] == 2
    assert (await api.get("/v1/queues/jobs")).json["queue"]["leased"] == 0
    bad = await api.get("/v1/queues/jobs/messages", params={"limit": "5000"})
    assert bad.status == 400 and "<= 1000" in bad.json["message"]
    assert "query" in bad.json["message"]
    state = await api.get("/v1/queues/jobs/messages", params={"state": "gone"})
    assert state.status == 400 and "$.state" in state.json["message"]
    missing = await api.get("/v1/queues/nope/messages")
    assert missing.status == 404


async def test_purge_and_redrive(broker: Broker, api: Client) -> None:
    await api.post("/v1/queues/jobs/messages", {"messages": [{"body": 1}, {"body": 2}]})
    purged = await api.post("/v1/queues/jobs/purge")
    assert purged.json == {"ok": True, "purged": 2}
    await api.post("/v1/queues/jobs/messages", {"body": "poison", "max_attempts": 1})
    async with await LineClient.connect(broker.tcp_port) as tcp:
        (msg,) = (await tcp.call(op="GET", queue="jobs"))["messages"]
        assert (await tcp.call(op="NACK", id=msg["id"]))["dead"] is True
    assert (await api.get("/v1/queues/jobs")).json["queue"]["dead"] == 1
    redriven = await api.post("/v1/queues/jobs/redrive")
    assert redriven.status == 200 and redriven.json["redriven"] == 1
    assert (await api.get("/v1/queues/jobs")).json["queue"]["ready"] == 1
    takes_no_body = await api.post("/v1/queues/jobs/purge", {"all": True})
    assert takes_no_body.status == 400 and "no body" in takes_no_body.json["message"]


async def test_stats_with_connections(broker: Broker, api: Client) -> None:
    await api.post("/v1/queues/jobs/messages", {"body": 1})
    async with await LineClient.connect(broker.tcp_port) as tcp:
        await tcp.call(op="PING")
        plain = await api.get("/v1/stats")
        assert "connections" not in plain.json
        assert plain.json["queues"]["jobs"]["ready"] == 1
        assert plain.json["server"]["connections"] == 1
        listed = await api.get("/v1/stats", params={"connections": "true"})
        addresses = [c["address"] for c in listed.json["connections"]]
        assert "http" in addresses and len(addresses) == 2


async def test_unknown_paths_and_methods(api: Client) -> None:
    nope = await api.get("/v2/queues")
    assert (nope.status, nope.json["error"]) == (404, "not_found")
    wrong = await api.request("DELETE", "/v1/queues/jobs/purge")
    assert (wrong.status, wrong.json["error"]) == (405, "bad_request")
    assert wrong.headers["Allow"] == "POST"
    assert api.validated >= 2
