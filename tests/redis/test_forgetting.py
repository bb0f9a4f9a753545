"""Idle queues on Redis: what the library arms for Redis's key expiry, and what it spares.

The black-box rule (an idle queue is forgotten, a busy one kept) is
tests/server/test_queue_lifetime.py's, on both backends. Here the keys themselves
are looked at, with a forget time far in the future: an idle queue's keys carry a
time to live (so Redis drops them), its acked history and its tag's id counter
carry none (they outlive it), and a queue that holds something again carries none
at all. Redis's expiry itself is done by hand (the keys with a time to live are
deleted), so no test waits for a clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis

from broker.backend.redis import wire
from broker.backend.redis.backend import RedisBackend
from broker.backend.redis.target import parse
from broker.bench import resp
from broker.bench.cluster import LocalCluster
from broker.config import Config
from broker.server import Server
from tests.conftest import running_server
from tests.redis.servers import REDIS_URL_ENV, RedisServer
from tests.support import LineClient

FORGET_S = 600.0
DEDUP_S = 100.0
SURVIVORS = (":al", ":ack", ":seq")  # the acked history and the id counter


@pytest.fixture
async def store(
    redis_server: RedisServer, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    client = aredis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def ttls(store: Any, queue: str) -> dict[str, int]:
    """Every key of ``queue``'s tag (its prefix cut off) and its PTTL (-1: none)."""
    prefix = wire.tag_key(wire.tag_of(queue))
    keys = [k async for k in store.scan_iter(match=prefix + "*")]
    return {k.removeprefix(prefix): await store.pttl(k) for k in keys}


def armed(found: dict[str, int]) -> bool:
    """Every key of the queue's that is not a survivor will expire (and there is one: its
    hash); the survivors will not. (A connection's set of owners, ``:os:``, goes when it
    closes.)"""
    doomed = {k: t for k, t in found.items() if k.startswith(":q:") and not k.endswith(SURVIVORS)}
    kept = {k: t for k, t in found.items() if k.endswith(SURVIVORS)}
    return (
        bool(doomed) and all(t > 0 for t in doomed.values()) and all(t == -1 for t in kept.values())
    )


async def expire_now(store: Any, queue: str) -> None:
    """What Redis does when the time to live runs out: the keys that carry one go."""
    prefix = wire.tag_key(wire.tag_of(queue))
    for key, ttl in (await ttls(store, queue)).items():
        if ttl > 0:
            await store.delete(prefix + key)


async def test_an_emptied_queue_is_armed_and_a_busy_one_is_not(store: Any) -> None:
    async with (
        running_server(forget_after_s=FORGET_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="q", messages=[{"body": 1}, {"body": 2, "delay": 60}])
        assert all(t == -1 for t in (await ttls(store, "q")).values())  # it holds messages
        got = await c.call(op="GET", queue="q", lease=60)
        assert all(t == -1 for t in (await ttls(store, "q")).values())  # one delayed
        delayed = (await c.call(op="PEEK", queue="q", state="delayed"))["messages"]
        await c.call(op="REMOVE", queue="q", ids=[m["id"] for m in delayed])
        assert all(t == -1 for t in (await ttls(store, "q")).values())  # one leased
        await c.call(op="ACK", id=got["messages"][0]["id"])
        found = await ttls(store, "q")
        assert armed(found), sorted(found.items())
        assert 0 < found[":q:q:h"] <= FORGET_S * 1000
        assert ":q:q:l" not in found and ":q:q:d" not in found  # emptied: deleted at once
        await c.call(op="PUT", queue="q", body=3)  # busy again: nothing expires
        assert all(t == -1 for t in (await ttls(store, "q")).values())
        await c.call(op="PURGE", queue="q")
        assert armed(await ttls(store, "q"))


@pytest.mark.parametrize(
    ("change", "undo"),
    [
        ({"op": "CONFIG", "max_attempts": 2}, {"op": "CONFIG", "max_attempts": None}),
        ({"op": "CONFIG", "rate": 5}, {"op": "CONFIG", "rate": None}),
        ({"op": "CONFIG", "lease": 30.0}, {"op": "CONFIG", "lease": None}),  # the server's value
        ({"op": "PAUSE"}, {"op": "RESUME"}),
    ],
)
async def test_a_setting_or_a_pause_keeps_an_empty_queue(
    store: Any, change: dict[str, Any], undo: dict[str, Any]
) -> None:
    async with (
        running_server(forget_after_s=FORGET_S, lease_s=30.0) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="s", body=1)
        await c.call(op="PURGE", queue="s")
        assert armed(await ttls(store, "s"))
        assert (await c.call(queue="s", **change))["ok"] is True
        assert all(t == -1 for t in (await ttls(store, "s")).values())  # kept, as in memory
        assert (await c.call(queue="s", **undo))["ok"] is True
        assert armed(await ttls(store, "s"))  # nothing of its own: it goes


async def test_a_live_dedup_id_holds_the_queue_until_its_window_ends(store: Any) -> None:
    async with (
        running_server(forget_after_s=FORGET_S, dedup_window_s=DEDUP_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="d", body=1, dedup="once")
        await c.call(op="PURGE", queue="d")
        found = await ttls(store, "d")
        assert armed(found), found
        for key in (":q:d:h", ":q:d:x", ":q:d:X"):  # forget time counted from the window's end
            assert FORGET_S * 1000 < found[key] <= (FORGET_S + DEDUP_S) * 1000, (key, found)
        dup = await c.call(op="PUT", queue="d", body=2, dedup="once")
        assert dup["duplicate"] is True  # the id still answers while the queue is armed


async def test_a_forgotten_queue_leaves_its_acked_history_and_is_named_again(
    store: Any,
) -> None:
    async with (
        running_server(forget_after_s=FORGET_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="f", body=1)
        await c.call(op="PUT", queue="other", body=1)
        msg = (await c.call(op="GET", queue="f"))["messages"][0]
        await c.call(op="ACK", id=msg["id"])
        await expire_now(store, "f")
        left = {k for k in await ttls(store, "f") if not k.startswith(":os:")}
        assert left == {":q:f:al", ":ack", ":seq"}
        assert (await c.call(op="INFO", id=msg["id"]))["message"]["state"] == "acked"
        assert (await c.call(op="QUEUES"))["queues"] == ["other"]
        # that listing found "f" gone and took its name out of the registry (in the
        # background, ahead of this second listing's read of the registry)
        assert (await c.call(op="QUEUES"))["queues"] == ["other"]
        assert await store.zscore(wire.NODES_KEY + ":names", "f") is None
        await c.call(op="PUT", queue="f", body=2)  # made again: named again
        assert (await c.call(op="QUEUES"))["queues"] == ["f", "other"]
        stats = (await c.call(op="STATS", queue="f"))["queues"]["f"]
        assert (stats["put"], stats["acked"]) == (1, 0)


async def test_a_waiting_get_on_a_name_with_no_queue_leaves_no_key(store: Any) -> None:
    async with (
        running_server(forget_after_s=FORGET_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.send(op="GET", queue="nobody", wait=30, rid=1)
        assert (await c.call(op="PING", rid="p"))["rid"] == "p"
        assert await ttls(store, "nobody") != {}  # the wait is in Redis
        assert (await c.call(op="CANCEL", get=1))["rid"] == 1  # the GET's reply comes first
        assert (await c.reply())["cancelled"] == 1
        assert await ttls(store, "nobody") == {}


async def test_a_name_unregistered_while_its_queue_is_made_again_is_named_again(
    store: Any,
) -> None:
    """A listing found "r" gone, and a node made it again before the listing's removal
    reached the registry: the removal looks again, and puts the name back."""
    async with (
        running_server(forget_after_s=FORGET_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="r", body=1)
        assert isinstance(srv.backend, RedisBackend)
        await srv.backend.handlers.stats.unname(["r", "never"])
        assert await store.zscore(wire.NODES_KEY + ":names", "r") == 0
        assert (await c.call(op="QUEUES"))["queues"] == ["r"]


async def test_a_queue_whose_naming_was_lost_is_found_by_name_and_named_again(
    store: Any,
) -> None:
    """The registry lost a name (a Redis that restarted with everysec, a registration
    that failed): STATS of the queue by name still answers, and names it again."""
    async with (
        running_server(forget_after_s=FORGET_S) as srv,
        await LineClient.connect(srv.port) as c,
    ):
        await c.call(op="PUT", queue="lost", body=1)
        await store.zrem(wire.NODES_KEY + ":names", "lost")
        assert (await c.call(op="QUEUES"))["queues"] == []
        assert (await c.call(op="STATS", queue="lost"))["queues"]["lost"]["ready"] == 1
        assert (await c.call(op="PING"))["ok"]  # the naming went ahead of it
        assert (await c.call(op="QUEUES"))["queues"] == ["lost"]
        missing = await c.call(op="STATS", queue="never")
        assert missing["error"] == "not_found" and "'never'" in missing["message"]


async def test_on_a_redis_cluster_queues_on_several_masters_are_forgotten_and_unnamed(
    redis_cluster: LocalCluster,
) -> None:
    """A queue's keys and the name registry live on different masters: each queue is
    armed on its own master, and the listing unnames them in the registry's."""
    config = Config(host="127.0.0.1", port=0, forget_after_s=FORGET_S)
    server = Server(config, RedisBackend(config, parse(redis_cluster.url)))
    await server.start()
    queues: list[str] = []
    masters: set[int] = set()
    try:
        for i in range(64):  # names on at least two masters (each lands on one of three)
            queues.append(f"forget-{i}-{server.port}")
            masters.add(redis_cluster.master_of(wire.tag_key(wire.tag_of(queues[-1]))))
            if len(queues) >= 4 and len(masters) > 1:
                break
        async with await LineClient.connect(server.port) as c:
            for q in queues:
                await c.call(op="PUT", queue=q, body=1)
                await c.call(op="PURGE", queue=q)
            for q in queues:
                port = redis_cluster.master_of(wire.tag_key(wire.tag_of(q)))
                hash_key = f"{wire.tag_key(wire.tag_of(q))}:q:{q}:h"
                ttl = int(resp.command(port, "PTTL", hash_key))
                assert 0 < ttl <= FORGET_S * 1000, (q, ttl)
                resp.command(port, "DEL", hash_key)  # Redis's expiry, now
            listed = (await c.call(op="QUEUES", prefix="forget-"))["queues"]
            assert not set(listed) & set(queues)
            await c.call(op="PUT", queue=queues[0], body=2)
            listed = (await c.call(op="QUEUES", prefix="forget-"))["queues"]
            assert queues[0] in listed and not set(listed) & set(queues[1:])
    finally:
        await server.close()
