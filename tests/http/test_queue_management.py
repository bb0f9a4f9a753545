"""The HTTP API's queue management (issue 13's operations) against a real broker: dedup
and headers on PUT and receive, REMOVE, PAUSE and RESUME, DELETE, the settings, and
REDRIVE with ids; every response validated against /openapi.json (``Client.check``)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.http.support import Broker, Client
from tests.support import LineClient

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


async def receive(api: Client, queue: str, **fields: Any) -> list[dict[str, Any]]:
    got = await api.post(f"/v1/queues/{queue}/receive", fields)
    assert got.status == 200, got.json
    messages: list[dict[str, Any]] = got.json["messages"]
    return messages


async def test_a_put_with_a_dedup_id_seen_before_is_200_duplicate_and_stores_nothing(
    api: Client,
) -> None:
    first = await api.post("/v1/queues/mail/messages", {"body": 1, "dedup": "order-9"})
    assert first.status == 201 and "duplicate" not in first.json
    again = await api.post("/v1/queues/mail/messages", {"body": 2, "dedup": "order-9"})
    assert again.status == 200
    assert again.json == {"ok": True, "id": first.json["id"], "duplicate": True}
    assert "Location" not in again.headers
    batch = await api.post(
        "/v1/queues/mail/messages",
        {"messages": [{"body": 3, "dedup": "order-9"}, {"body": 4, "dedup": "order-10"}]},
    )
    assert batch.status == 201 and batch.json["duplicates"] == [0]
    all_known = await api.post(
        "/v1/queues/mail/messages", {"messages": [{"body": 5, "dedup": "order-10"}]}
    )
    assert all_known.status == 200 and all_known.json["duplicates"] == [0]
    assert (await api.get("/v1/queues/mail")).json["queue"]["ready"] == 2


async def test_headers_come_back_with_received_and_peeked_messages(api: Client) -> None:
    put = await api.post("/v1/queues/jobs/messages", {"body": "x", "headers": TRACE})
    peeked = await api.get("/v1/queues/jobs/messages")
    assert peeked.json["messages"][0]["headers"] == TRACE
    (msg,) = await receive(api, "jobs")
    assert (msg["id"], msg["headers"]) == (put.json["id"], TRACE)
    acked = await api.request(
        "DELETE", f"/v1/messages/{msg['id']}", params={"receipt": msg["receipt"]}
    )
    assert acked.status == 204
    info = await api.get(f"/v1/messages/{msg['id']}")
    assert info.json["message"] == {
        "id": msg["id"],
        "queue": "jobs",
        "state": "acked",
        "attempts": 1,
    }
    too_many = {f"h{i}": "v" for i in range(65)}
    refused = await api.post("/v1/queues/jobs/messages", {"body": 1, "headers": too_many})
    assert refused.status == 400 and "headers" in refused.json["message"]


async def test_remove_deletes_ready_messages_and_lists_leased_and_unknown_ones(
    api: Client,
) -> None:
    ids = (
        await api.post("/v1/queues/jobs/messages", {"messages": [{"body": 1}, {"body": 2}]})
    ).json["ids"]
    (leased,) = await receive(api, "jobs")
    got = await api.post("/v1/queues/jobs/remove", {"ids": [*ids, "ffff"]})
    assert got.status == 200
    assert got.json == {"ok": True, "removed": 1, "leased": [leased["id"]], "not_found": ["ffff"]}
    missing = await api.post("/v1/queues/nope/remove", {"ids": ids})
    assert (missing.status, missing.json["error"]) == (404, "not_found")
    no_ids = await api.post("/v1/queues/jobs/remove", {})
    assert no_ids.status == 400 and "ids" in no_ids.json["message"]


async def test_a_paused_queue_delivers_nothing_until_it_resumes(
    broker: Broker, api: Client
) -> None:
    assert (await api.post("/v1/queues/jobs/pause")).json == {"ok": True}
    await api.post("/v1/queues/jobs/messages", {"body": "waits"})
    assert await receive(api, "jobs") == []
    figures = (await api.get("/v1/queues/jobs")).json["queue"]
    assert (figures["paused"], figures["ready"]) == (True, 1)
    waiting = asyncio.ensure_future(receive(api, "jobs", wait=10))
    await asyncio.wait_for(broker.spy.waiting.wait(), 10)  # the receive is parked
    assert (await api.post("/v1/queues/jobs/resume")).json == {"ok": True}
    (msg,) = await asyncio.wait_for(waiting, 10)
    assert msg["body"] == "waits"
    missing = await api.post("/v1/queues/nope/resume")
    assert missing.status == 404


async def test_delete_a_queue_and_its_dead_letters_on_request(broker: Broker, api: Client) -> None:
    await api.post("/v1/queues/jobs/messages", {"body": "poison", "max_attempts": 1})
    async with await LineClient.connect(broker.tcp_port) as tcp:
        (msg,) = (await tcp.call(op="GET", queue="jobs"))["messages"]
        assert (await tcp.call(op="NACK", id=msg["id"]))["dead"] is True
    await api.post("/v1/queues/jobs/messages", {"messages": [{"body": 1}, {"body": 2}]})
    (held,) = await receive(api, "jobs")
    deleted = await api.request("DELETE", "/v1/queues/jobs")
    assert deleted.status == 200 and deleted.json == {"ok": True, "deleted": 2}
    stale = await api.post("/v1/ack", {"receipts": [held["receipt"]]})
    assert stale.json["not_found"] == [held["receipt"]]
    assert (await api.get("/v1/queues/jobs.dead")).json["queue"]["ready"] == 1
    await api.post("/v1/queues/jobs/messages", {"body": 3})
    both = await api.request("DELETE", "/v1/queues/jobs", params={"dead": "true"})
    assert both.json == {"ok": True, "deleted": 2}
    assert (await api.get("/v1/queues")).json["queues"] == {}
    gone = await api.request("DELETE", "/v1/queues/jobs")
    assert (gone.status, gone.json["error"]) == (404, "not_found")
    bad = await api.request("DELETE", "/v1/queues/jobs", params={"dead": "maybe"})
    assert bad.status == 400 and "dead" in bad.json["message"]


async def test_settings_are_read_changed_reset_and_shown_with_the_queue(api: Client) -> None:
    missing = await api.get("/v1/queues/jobs/settings")
    assert (missing.status, missing.json["error"]) == (404, "not_found")
    changed = await api.request(
        "PATCH", "/v1/queues/jobs/settings", json={"lease": 120, "rate": 0.5, "max_length": 3}
    )
    assert changed.status == 200
    assert changed.json == {
        "ok": True,
        "settings": {
            "lease": 120.0,
            "max_attempts": 5,
            "max_length": 3,
            "rate": 0.5,
            "dedup_window": 300.0,
        },
    }
    read = await api.get("/v1/queues/jobs/settings")
    assert read.json == changed.json
    figures = (await api.get("/v1/queues/jobs")).json["queue"]
    assert figures["settings"] == {"lease": 120.0, "max_length": 3, "rate": 0.5}
    reset = await api.request("PATCH", "/v1/queues/jobs/settings", json={"rate": None})
    assert reset.json["settings"]["rate"] is None
    bad = await api.request("PATCH", "/v1/queues/jobs/settings", json={"rate": 0})
    assert bad.status == 400 and "$.rate" in bad.json["message"]
    unknown = await api.request("PATCH", "/v1/queues/jobs/settings", json={"speed": 1})
    assert unknown.status == 400 and "`speed`" in unknown.json["message"]
    puts = [{"body": i} for i in range(4)]
    full = await api.post("/v1/queues/jobs/messages", {"messages": puts})
    assert (full.status, full.json["error"]) == (429, "queue_full")


async def test_redrive_with_ids_moves_only_those(broker: Broker, api: Client) -> None:
    ids = []
    async with await LineClient.connect(broker.tcp_port) as tcp:
        for body in ("a", "b"):
            ids.append((await tcp.call(op="PUT", queue="jobs", body=body, max_attempts=1))["id"])
            (msg,) = (await tcp.call(op="GET", queue="jobs"))["messages"]
            await tcp.call(op="NACK", id=msg["id"])
    got = await api.post("/v1/queues/jobs/redrive", {"ids": [ids[1], "ffff"]})
    assert got.json == {"ok": True, "redriven": 1, "leased": [], "not_found": ["ffff"]}
    figures = (await api.get("/v1/queues/jobs")).json["queue"]
    assert (figures["ready"], figures["dead"]) == (1, 1)
