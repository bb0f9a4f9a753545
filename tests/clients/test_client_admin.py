"""The issue-13 calls of both Python clients against a real broker: idempotent PUT and its
duplicate flag, headers (on messages, in INFO and PEEK, in workers), DELETE, PAUSE/RESUME,
CONFIG, REMOVE, REDRIVE of chosen ids, and QUEUES read page by page."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import wonderq
from broker.server import Server
from tests.clients.conftest import FakeConnection, FakeServerFactory
from wonderq import Envelope

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


async def test_a_put_retried_with_its_dedup_id_is_stored_once(client: wonderq.AsyncClient) -> None:
    first = await client.put_result("mail", {"to": "ann"}, dedup="order-981", headers=TRACE)
    assert first.duplicate is False
    again = await client.put_result("mail", {"to": "ann"}, dedup="order-981")
    assert (again.id, again.duplicate) == (first.id, True)
    assert await client.put("mail", "other", dedup="order-981") == first.id  # put: the id only
    batch = await client.put_many_result(
        "mail",
        [
            Envelope(1, dedup="order-981"),
            Envelope(2, dedup="order-982"),
            Envelope(3, dedup="order-982"),
        ],
    )
    assert batch.ids[0] == first.id and batch.ids[1] == batch.ids[2] != first.id
    assert batch.duplicates == [0, 2]
    plain = await client.put_many_result("mail", ["no dedup"])
    assert plain.duplicates == []
    messages = await client.get("mail", max=10)
    assert [m.body for m in messages] == [{"to": "ann"}, 2, "no dedup"]
    assert messages[0].headers == TRACE and messages[1].headers == {}


async def test_headers_come_back_in_get_info_and_peek(client: wonderq.AsyncClient) -> None:
    msg_id = await client.put("jobs", "x", headers={"content-type": "text/plain", **TRACE})
    info = await client.info(msg_id)
    assert info.headers == {"content-type": "text/plain", **TRACE}
    (peeked,) = (await client.peek("jobs")).messages
    assert peeked.headers == info.headers
    (message,) = await client.get("jobs")
    assert message.headers == info.headers
    with pytest.raises(wonderq.BadRequest, match="headers"):
        await client.put("jobs", "x", headers={f"h{i}": "v" for i in range(65)})
    with pytest.raises(TypeError, match="headers"):
        await client.put("jobs", "x", headers={"h": b"bytes"})  # type: ignore[dict-item]


async def test_delete_a_queue_and_optionally_its_dead_letters(client: wonderq.AsyncClient) -> None:
    await client.put_many("old", [1, 2])
    (held,) = await client.get("old")
    await client.put("old.dead", "a dead letter")
    assert await client.delete("old") == 2  # the leased one too
    with pytest.raises(wonderq.NotFound):
        await held.ack()
    assert await client.queues() == ["old.dead"]
    await client.put("old", 3)
    assert await client.delete("old", dead=True) == 2
    assert await client.queues() == []
    with pytest.raises(wonderq.NotFound):
        await client.delete("old")


async def test_pause_stops_deliveries_and_resume_serves_the_waiting_get(
    client: wonderq.AsyncClient,
) -> None:
    await client.pause("jobs")
    await client.put("jobs", "waits")
    assert await client.get("jobs") == []
    stats = (await client.stats("jobs")).queues["jobs"]
    assert stats.paused is True and stats.ready == 1
    waiting = asyncio.create_task(client.get("jobs", wait=30))
    async with await wonderq.connect("127.0.0.1", client.port) as other:
        await other.ping()  # the waiting GET reached the broker before this
        await other.resume("jobs")
    async with asyncio.timeout(10):
        (message,) = await waiting
    assert message.body == "waits"
    assert (await client.stats("jobs")).queues["jobs"].paused is False
    with pytest.raises(wonderq.NotFound):
        await client.resume("nope")


async def test_config_reads_sets_and_resets_a_queue_s_settings(
    client: wonderq.AsyncClient,
) -> None:
    with pytest.raises(wonderq.NotFound):
        await client.config("jobs")  # reading does not create the queue
    settings = await client.config("jobs", lease=120, rate=0.5)
    assert settings == wonderq.QueueSettings(
        lease=120.0, max_attempts=5, max_length=None, rate=0.5, dedup_window=300.0
    )
    assert await client.config("jobs") == settings
    assert (await client.stats("jobs")).queues["jobs"].settings == {"lease": 120.0, "rate": 0.5}
    await client.put_many("jobs", [1, 2])
    assert len(await client.get("jobs", max=10)) == 1  # the bucket holds one token
    settings = await client.config("jobs", rate=None, max_length=2)
    assert (settings.rate, settings.max_length, settings.lease) == (None, 2, 120.0)
    with pytest.raises(wonderq.QueueFull):
        await client.put("jobs", 3)
    assert (await client.stats("jobs")).queues["jobs"].settings == {"lease": 120.0, "max_length": 2}


async def test_remove_and_redrive_chosen_ids(client: wonderq.AsyncClient) -> None:
    a, b, c = await client.put_many("jobs", ["a", "b", Envelope("c", delay=60)])
    (held,) = await client.get("jobs")
    result = await client.remove("jobs", [a, b, c, "ffff"])
    assert result == wonderq.RemoveResult(removed=2, leased=[held.id], not_found=["ffff"])
    poison = await client.put("jobs", "poison", max_attempts=1)
    (message,) = await client.get("jobs")
    assert message.id == poison and await message.nack() is True
    moved = await client.redrive("jobs", [poison, "ffff"])
    assert moved == wonderq.RedriveResult(redriven=1, leased=[], not_found=["ffff"])
    assert (await client.info(poison)).state == wonderq.MessageState.READY
    assert (await client.redrive("jobs")).redriven == 0  # every dead letter: none left


async def test_queues_reads_every_page(client: wonderq.AsyncClient) -> None:
    names = [f"q{i:04d}" for i in range(1001)]  # more than one page (1000)
    await asyncio.gather(*(client.put(name, 1) for name in names))
    await client.put("other", 1)
    assert await client.queues() == ["other", *names]
    assert await client.queues("q100") == ["q1000"]


async def test_a_queues_page_that_does_not_move_on_is_a_protocol_violation(
    fake_server: FakeServerFactory,
) -> None:
    async def stuck(conn: FakeConnection) -> None:
        first = await conn.request()
        assert first["op"] == "QUEUES" and "cursor" not in first
        conn.reply(first, queues=["a"], next="a")
        second = await conn.request()
        assert second["cursor"] == "a"
        conn.reply(second, queues=["b"], next="a")  # the same cursor again: no progress
        await conn.reader.read()

    async with fake_server(stuck) as port, await wonderq.connect("127.0.0.1", port) as client:
        with pytest.raises(wonderq.ProtocolViolation, match="bad next page"):
            await client.queues()


async def test_workers_see_the_headers(client: wonderq.AsyncClient, broker: Server) -> None:
    await client.put("jobs", "async", headers=TRACE)
    seen: list[dict[str, str]] = []
    stop = asyncio.Event()

    async def handle(message: wonderq.Message) -> None:
        seen.append(message.headers)
        stop.set()

    async with asyncio.timeout(10):
        await client.run_worker("jobs", handle, stop=stop, stop_signals=())
    await client.put("jobs", "threaded", headers={"k": "v"})
    threaded: list[dict[str, str]] = []
    done = threading.Event()

    def handle_sync(message: wonderq.SyncMessage) -> None:
        threaded.append(message.headers)
        done.set()

    def run() -> None:
        with wonderq.connect_sync("127.0.0.1", broker.port) as sync:
            sync.run_worker("jobs", handle_sync, stop=done, stop_signals=())

    async with asyncio.timeout(10):
        await asyncio.to_thread(run)
    assert seen == [TRACE] and threaded == [{"k": "v"}]


async def test_the_blocking_client_makes_every_new_call(broker: Server) -> None:
    def script() -> dict[str, Any]:
        with wonderq.connect_sync("127.0.0.1", broker.port) as c:
            first = c.put_result("jobs", 1, dedup="d", headers={"h": "v"})
            again = c.put_result("jobs", 1, dedup="d")
            batch = c.put_many_result("jobs", [Envelope(2, dedup="d"), 3])
            c.pause("jobs")
            paused = c.get("jobs")
            c.resume("jobs")
            settings = c.config("jobs", max_attempts=1)
            (message,) = c.get("jobs")
            dead = message.nack()
            redriven = c.redrive("jobs", [message.id])
            removed = c.remove("jobs", [message.id])
            return {
                "dup": (again.id == first.id, again.duplicate, batch.duplicates),
                "paused": paused,
                "max_attempts": settings.max_attempts,
                "headers": message.headers,
                "dead": dead,
                "redriven": redriven.redriven,
                "removed": removed.removed,
                "deleted": c.delete("jobs"),
                "queues": c.queues(),
            }

    async with asyncio.timeout(10):
        got = await asyncio.to_thread(script)
    assert got == {
        "dup": (True, True, [0]),
        "paused": [],
        "max_attempts": 1,
        "headers": {"h": "v"},
        "dead": False,  # put before max_attempts changed: it keeps the default 5
        "redriven": 0,
        "removed": 1,
        "deleted": 1,
        "queues": [],
    }
