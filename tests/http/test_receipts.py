"""Receiving over HTTP: receipts across redelivery, ACK/NACK/TOUCH/DELETE by receipt,
long polls woken by a PUT and ended by their client leaving, and HTTP and TCP
consumers sharing one queue without ever holding the same message at once."""

from __future__ import annotations

import asyncio
from typing import Any

from broker.http.longpoll import Poll
from broker.protocol.replies import ReceiveReply
from broker.protocol.requests import Receive
from tests.http.support import TIMEOUT_S, Broker, Client
from tests.support import LineClient


async def put(api: Client, queue: str, *bodies: Any, **fields: Any) -> list[str]:
    got = await api.post(f"/v1/queues/{queue}/messages", {"messages": [{"body": b, **fields} for b in bodies]})  # fmt: skip
    assert got.status == 201, got.json
    ids: list[str] = got.json["ids"]
    return ids


async def receive(api: Client, queue: str, **fields: Any) -> list[dict[str, Any]]:
    got = await api.post(f"/v1/queues/{queue}/receive", fields)
    assert got.status == 200, got.json
    messages: list[dict[str, Any]] = got.json["messages"]
    return messages


async def info(api: Client, msg_id: str) -> dict[str, Any]:
    message: dict[str, Any] = (await api.get(f"/v1/messages/{msg_id}")).json["message"]
    return message


async def test_receive_ack_nack_touch_by_receipt(api: Client) -> None:
    a, b, c = await put(api, "jobs", "a", "b", "c")
    got = await receive(api, "jobs", max=3, lease=60)
    assert [m["id"] for m in got] == [a, b, c]
    assert all(m["attempts"] == 1 and 0 < m["lease_left"] <= 60 for m in got)
    receipts = [m["receipt"] for m in got]
    assert len(set(receipts)) == 3
    touched = await api.post("/v1/touch", {"receipts": receipts[:1], "lease": 600})
    assert touched.json == {"ok": True, "touched": 1, "not_leased": [], "not_found": []}
    assert (await info(api, a))["lease_left"] > 500
    nacked = await api.post("/v1/nack", {"receipts": [receipts[1]]})
    assert nacked.json == {"ok": True, "nacked": 1, "not_leased": [], "not_found": [], "dead": []}
    acked = await api.post("/v1/ack", {"receipts": [receipts[0], receipts[1], "ffff.1", "x"]})
    assert acked.json == {
        "ok": True,
        "acked": 1,
        "not_leased": [receipts[1]],  # given back by the NACK
        "not_found": ["ffff.1", "x"],
    }
    gone = await api.request("DELETE", f"/v1/messages/{c}", params={"receipt": receipts[2]})
    assert (gone.status, gone.body) == (204, b"")
    assert (await info(api, c))["state"] == "acked"
    again = await api.request("DELETE", f"/v1/messages/{c}", params={"receipt": receipts[2]})
    assert (again.status, again.json["error"]) == (409, "not_leased")
    missing = await api.request("DELETE", "/v1/messages/ffff", params={"receipt": "ffff.1"})
    assert (missing.status, missing.json["error"]) == (404, "not_found")
    other = await api.request("DELETE", f"/v1/messages/{a}", params={"receipt": receipts[1]})
    assert other.status == 400 and "not a receipt of message" in other.json["message"]


async def test_a_receipt_from_an_earlier_delivery_is_stale(api: Client) -> None:
    (msg_id,) = await put(api, "jobs", "m")
    (first,) = await receive(api, "jobs", lease=0.05)
    # the lease expires and the message comes again: the long poll is woken by it
    (second,) = await receive(api, "jobs", wait=10)
    assert second["id"] == msg_id and second["attempts"] == 2
    assert second["receipt"] != first["receipt"]
    stale = await api.request("DELETE", f"/v1/messages/{msg_id}", params={"receipt": first["receipt"]})  # fmt: skip
    assert (stale.status, stale.json["error"]) == (409, "not_leased")
    for path in ("/v1/ack", "/v1/nack", "/v1/touch"):
        got = await api.post(path, {"receipts": [first["receipt"]]})
        assert got.json["not_leased"] == [first["receipt"]], path
    assert (await info(api, msg_id))["state"] == "leased"
    assert (await api.post("/v1/ack", {"receipts": [second["receipt"]]})).json["acked"] == 1


async def test_a_nack_that_uses_the_last_attempt_lists_the_receipt_as_dead(api: Client) -> None:
    await put(api, "jobs", "poison", max_attempts=1)
    (msg,) = await receive(api, "jobs")
    got = await api.post("/v1/nack", {"receipts": [msg["receipt"]]})
    assert got.json["dead"] == [msg["receipt"]] and got.json["nacked"] == 1
    assert (await api.get("/v1/queues/jobs")).json["queue"]["dead"] == 1


async def test_tcp_and_http_cannot_settle_each_others_leases(broker: Broker, api: Client) -> None:
    http_id, tcp_id = await put(api, "jobs", "h", "t")
    (msg,) = await receive(api, "jobs")
    async with await LineClient.connect(broker.tcp_port) as tcp:
        (leased,) = (await tcp.call(op="GET", queue="jobs"))["messages"]
        assert leased["id"] == tcp_id
        refused = await tcp.call(op="ACK", id=http_id)
        assert refused["error"] == "not_leased"
        forged = f"{tcp_id}.{msg['receipt'].split('.')[1]}"
        assert (await api.post("/v1/ack", {"receipts": [forged]})).json["not_leased"] == [forged]
        peeked = await api.get("/v1/queues/jobs/messages", params={"state": "leased"})
        holders = {m["id"]: m["holder"] for m in peeked.json["messages"]}
    assert holders[http_id].startswith("127.0.0.1:") and holders[tcp_id].startswith("127.0.0.1:")
    assert (await info(api, http_id))["state"] == "leased"


async def created(api: Client, queue: str) -> None:
    """Make ``queue`` exist, empty (a waiting receive creates no queue: protocol.md, and
    the Redis backend; the in-memory engine does)."""
    await put(api, queue, "seed")
    (seed,) = await receive(api, queue)
    assert (await api.post("/v1/ack", {"receipts": [seed["receipt"]]})).json["acked"] == 1


async def test_a_long_poll_is_woken_by_a_put(broker: Broker, api: Client) -> None:
    waiting = asyncio.create_task(receive(api, "mail", wait=20, max=5))
    async with asyncio.timeout(TIMEOUT_S):
        await broker.spy.waiting.wait()
    listed = (await api.get("/v1/stats", params={"connections": "true"})).json
    assert "mail" not in listed["queues"]  # it waits on the name: a receive makes no queue
    assert any(c["waiting"] == 1 and c["address"] != "http" for c in listed["connections"])
    (msg_id,) = await put(api, "mail", "hi")
    async with asyncio.timeout(TIMEOUT_S):
        (got,) = await waiting
    assert (got["id"], got["body"], got["attempts"]) == (msg_id, "hi", 1)


async def test_a_long_poll_whose_client_leaves_leases_nothing(broker: Broker, api: Client) -> None:
    await created(api, "mail")
    broker.spy.closed.clear()  # (the seed's receive closed its owner)
    _reader, writer = await asyncio.open_connection("127.0.0.1", broker.http_port)
    body = b'{"wait": 20}'
    writer.write(
        b"POST /v1/queues/mail/receive HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    async with asyncio.timeout(TIMEOUT_S):
        await broker.spy.waiting.wait()
        writer.close()  # the client goes away while it waits
        await broker.spy.closed.wait()  # ... and the server notices: the wait is dropped
    listed = (await api.get("/v1/stats", params={"connections": "true"})).json
    assert all(c["waiting"] == 0 for c in listed["connections"])
    (msg_id,) = await put(api, "mail", "for someone else")
    assert (await info(api, msg_id))["state"] == "ready"
    (got,) = await receive(api, "mail")
    assert got["attempts"] == 1


async def test_messages_taken_for_a_client_that_left_are_released_unattempted(
    broker: Broker, api: Client
) -> None:
    """Both orders: the reply arrives after the client left, or before its write."""
    a, b = await put(api, "jobs", "a", "b")
    for msg_id in (a, b):
        poll = Poll(broker.api, "gone")
        owner = broker.spy.open(poll)
        request = Receive(queue="jobs")
        if msg_id == a:
            poll.abandon()  # the client left first; the reply comes after
            poll.start(broker.spy.execute(owner, [request]))
        else:
            poll.start(broker.spy.execute(owner, [request]))
            async with asyncio.timeout(TIMEOUT_S):  # (on Redis the reply comes later)
                assert isinstance(await poll.future, ReceiveReply)
            poll.abandon()  # the reply came, but was never written
        broker.spy.close(owner)
        async with asyncio.timeout(TIMEOUT_S):  # (on Redis the release comes after the reply)
            await broker.spy.released.wait()
        broker.spy.released.clear()
        message = await info(api, msg_id)
        assert (message["state"], message["attempts"]) == ("ready", 0), msg_id
    assert (await api.get("/v1/queues/jobs")).json["queue"]["released_on_disconnect"] == 2


async def test_http_and_tcp_consumers_never_hold_the_same_message(
    broker: Broker, api: Client
) -> None:
    ids = set(await put(api, "work", *range(300)))
    seen_http: list[str] = []
    seen_tcp: list[str] = []

    async def http_consumer() -> None:
        for _ in range(200):
            got = await receive(api, "work", max=7)
            if not got:
                return
            seen_http.extend(m["id"] for m in got)
            await api.post("/v1/ack", {"receipts": [m["receipt"] for m in got]})

    async def tcp_consumer() -> None:
        async with await LineClient.connect(broker.tcp_port) as tcp:
            for _ in range(200):
                got = (await tcp.call(op="GET", queue="work", max=5))["messages"]
                if not got:
                    return
                seen_tcp.extend(m["id"] for m in got)
                await tcp.call(op="ACK", ids=[m["id"] for m in got])

    async with asyncio.timeout(30):
        await asyncio.gather(http_consumer(), tcp_consumer(), http_consumer(), tcp_consumer())
    assert len(seen_http) + len(seen_tcp) == len(ids)  # each delivered exactly once
    assert set(seen_http) | set(seen_tcp) == ids
    assert seen_http and seen_tcp
