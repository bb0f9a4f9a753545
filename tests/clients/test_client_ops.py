"""Every operation of AsyncClient against a real broker, with its options and typed results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wonderq
from broker.server import Server
from wonderq import Envelope, MessageState


async def test_put_options_reach_the_broker(client: wonderq.AsyncClient) -> None:
    msg_id = await client.put("jobs", {"n": 1}, key="k1", priority=-5, max_attempts=2)
    info = await client.info(msg_id)
    assert (info.id, info.queue, info.state) == (msg_id, "jobs", MessageState.READY)
    assert (info.key, info.priority, info.max_attempts, info.attempts) == ("k1", -5, 2, 0)
    assert info.body == {"n": 1}
    assert info.age is not None and info.age >= 0

    delayed = await client.put("jobs", "later", delay=60)
    info = await client.info(delayed)
    assert info.state == MessageState.DELAYED
    assert info.delay_left is not None and 0 < info.delay_left <= 60


async def test_bodies_of_any_json_type_round_trip(client: wonderq.AsyncClient) -> None:
    bodies: list[Any] = [None, True, 0, -1.5, "text ✓ \n", [1, [2]], {"a": {"b": None}}]
    ids = [await client.put("types", body) for body in bodies]
    messages = await client.get("types", max=len(bodies))
    assert [m.id for m in messages] == ids
    assert [m.body for m in messages] == bodies


async def test_put_many_returns_ids_in_order_and_applies_envelope_options(
    client: wonderq.AsyncClient,
) -> None:
    ids = await client.put_many(
        "batch",
        [{"plain": "dict body"}, Envelope("first", priority=-1), Envelope("keyed", key="k")],
    )
    assert len(ids) == 3
    messages = await client.get("batch", max=10)
    assert [m.body for m in messages] == ["first", {"plain": "dict body"}, "keyed"]
    assert [m.id for m in messages] == [ids[1], ids[0], ids[2]]
    assert messages[2].key == "k" and messages[0].key is None


async def test_put_many_is_all_or_nothing(client: wonderq.AsyncClient) -> None:
    with pytest.raises(wonderq.TooLarge):
        await client.put_many("batch", ["fine", "x" * 300_000])  # over the 256 KiB max-body
    with pytest.raises(wonderq.BadRequest):
        await client.put_many("batch", ["fine", Envelope("bad", priority=2**40)])
    await client.put("batch", "marker")
    assert [m.body for m in await client.get("batch", max=10)] == ["marker"]


async def test_get_lease_and_attempts_and_ack(client: wonderq.AsyncClient) -> None:
    await client.put("jobs", "a")
    [message] = await client.get("jobs", lease=60)
    assert (message.queue, message.body, message.attempts, message.key) == ("jobs", "a", 1, None)
    assert message.lease_s == 60 and message.expires_at is not None
    info = await client.info(message.id)
    assert info.state == MessageState.LEASED
    assert info.lease_left is not None and 55 < info.lease_left <= 60
    await message.ack()
    assert message.settled
    assert (await client.info(message.id)).state == MessageState.ACKED


async def test_ack_of_an_acked_message_is_not_leased(client: wonderq.AsyncClient) -> None:
    await client.put("jobs", "a")
    [message] = await client.get("jobs")
    await message.ack()
    assert (await client.info(message.id)).state == MessageState.ACKED
    with pytest.raises(wonderq.NotLeased):
        await message.ack()


async def test_nack_redelivers_and_counts_attempts(client: wonderq.AsyncClient) -> None:
    await client.put("jobs", "a", max_attempts=2)
    [first] = await client.get("jobs")
    assert await first.nack() is False
    [second] = await client.get("jobs")
    assert (second.id, second.attempts) == (first.id, 2)
    assert await second.nack() is True  # its last attempt: dead-lettered
    assert (await client.info(first.id)).state == MessageState.DEAD
    [dead] = await client.get("jobs.dead")
    assert dead.id == first.id


async def test_nack_with_delay_hides_the_message(client: wonderq.AsyncClient) -> None:
    await client.put("jobs", "a")
    [message] = await client.get("jobs")
    await message.nack(delay=30)
    info = await client.info(message.id)
    assert info.state == MessageState.DELAYED
    assert info.delay_left is not None and 25 < info.delay_left <= 30
    assert await client.get("jobs") == []


async def test_touch_extends_the_lease(client: wonderq.AsyncClient) -> None:
    await client.put("jobs", "a")
    [message] = await client.get("jobs", lease=1)
    await message.touch()  # the GET's lease again
    await message.touch(lease=120)
    info = await client.info(message.id)
    assert info.lease_left is not None and 110 < info.lease_left <= 120
    await client.touch(message.id, lease=200)
    info = await client.info(message.id)
    assert info.lease_left is not None and 190 < info.lease_left <= 200


async def test_client_level_ack_nack_and_ack_many_by_id(client: wonderq.AsyncClient) -> None:
    await client.put_many("jobs", [1, 2, 3, 4])
    messages = await client.get("jobs", max=4)
    await client.ack(messages[0].id)
    assert await client.nack(messages[1].id) is False
    result = await client.ack_many([messages[2].id, messages[3].id, messages[1].id, "nope"])
    assert result.acked == 2
    assert result.not_leased == [messages[1].id]
    assert result.not_found == ["nope"]


async def test_stats_queues_purge_redrive_ping(client: wonderq.AsyncClient) -> None:
    await client.ping()
    await client.put_many("a", [1, 2, 3])
    await client.put("b", 1, max_attempts=1)
    [poison] = await client.get("b")
    await poison.nack()
    assert await client.queues() == ["a", "b", "b.dead"]

    stats = await client.stats()
    assert stats.server.queues == 3 and stats.server.connections >= 1
    assert stats.server.messages == 4
    assert stats.queues["a"].ready == 3 and stats.queues["a"].put == 3
    assert stats.queues["b"].dead == 1 and stats.queues["b"].dead_lettered == 1

    only_a = await client.stats("a")
    assert list(only_a.queues) == ["a"]

    assert await client.purge("a") == 3
    assert (await client.stats("a")).queues["a"].purged == 3
    assert await client.redrive("b") == 1
    [back] = await client.get("b")
    assert (back.id, back.attempts) == (poison.id, 1)


async def test_message_of_a_lost_connection_says_so_even_after_reconnect(
    make_broker: Any,
) -> None:
    async with make_broker() as server:
        port = server.port
        client = await wonderq.connect("127.0.0.1", port, reconnect=True, reconnect_timeout=5)
        try:
            await client.put("jobs", "a")
            [message] = await client.get("jobs")
            conn = client._conn
            assert conn is not None
            await conn.close()  # the connection drops; the client will reconnect
            await client.ping()
            assert client.connected
            with pytest.raises(wonderq.ConnectionLost):
                await message.ack()
            assert message.settled
            # the broker released it when its connection went: deliverable now
            async with asyncio.timeout(5):
                [again] = await client.get("jobs", wait=5)
            assert (again.id, again.attempts) == (message.id, 2)
        finally:
            await client.close()


async def test_both_clients_peek_without_leasing(
    client: wonderq.AsyncClient, broker: Server
) -> None:
    ids = await client.put_many("jobs", [{"n": 1}, wonderq.Envelope("b", key="k")])
    (held,) = await client.get("jobs", lease=60)
    result = await client.peek("jobs")
    assert result.total == 2 and [m.id for m in result.messages] == ids
    first, second = result.messages
    assert first.state == wonderq.MessageState.LEASED and first.holder is not None
    assert first.lease_left is not None and 59 < first.lease_left <= 60
    assert second.key == "k" and second.body == "b" and second.holder is None
    ready = await client.peek("jobs", state="ready", limit=1)
    assert [m.id for m in ready.messages] == [ids[1]]
    await held.ack()

    def blocking() -> Any:
        with wonderq.connect_sync("127.0.0.1", broker.port) as sync:
            return sync.peek("jobs", state="ready")

    async with asyncio.timeout(10):
        same = await asyncio.to_thread(blocking)
    assert [m.id for m in same.messages] == [ids[1]] and same.messages[0].attempts == 0
    with pytest.raises(wonderq.NotFound):
        await client.peek("nope")
