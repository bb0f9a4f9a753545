"""Three nodes over one Redis, and over a Redis Cluster, keep every cross-node promise
of issue 14's contract.

Each test runs twice: over one redis-server (module-scoped) and over the
session's 3-master + 3-replica Redis Cluster on loopback, with three ``wonderq
serve --backend redis://...`` (or ``redis-cluster://...``) processes; each test
uses its own queue names, so none sees another's state, and the queues of one
test land on several shards of the cluster. Clients talk to the nodes over TCP
as any client would. "The GET now
waits" is known without sleeping: a connection's requests run in order, so the
reply to a PING sent after a waiting GET means the GET reached Redis.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.backend.redis import wire
from broker.bench.cluster import LocalCluster
from broker.bench.resp import cpu_s
from tests.durability.broker_process import BrokerProcess
from tests.redis.nodes import redis_info, running_nodes
from tests.redis.servers import RedisServer
from tests.support import LineClient

_names = itertools.count()


def fresh(prefix: str = "q") -> str:
    """A queue name no other test of the module uses."""
    return f"{prefix}{next(_names)}"


@dataclass(frozen=True)
class Store:
    """Where the nodes keep their queues: a URL, and every Redis server behind it."""

    url: str
    ports: list[int]


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = RedisServer(tmp_path_factory.mktemp("redis-nodes")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["redis", "cluster"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("module_redis")
        return Store(server.url, [server.port])
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    return Store(cluster.url, cluster.ports)


@pytest.fixture
async def nodes(store: Store, tmp_path: Path) -> AsyncIterator[list[BrokerProcess]]:
    async with running_nodes(store.url, tmp_path, 3) as started:
        yield started


async def connect(node: BrokerProcess) -> LineClient:
    return await LineClient.connect(node.port)


async def waiting(c: LineClient, queue: str, rid: str, wait: float = 30, **extra: Any) -> None:
    """Send a waiting GET and return once it waits in Redis."""
    await c.send(op="GET", queue=queue, wait=wait, rid=rid, **extra)
    assert (await c.call(op="PING", rid=f"after-{rid}"))["rid"] == f"after-{rid}"


async def test_a_lease_is_held_by_one_connection_and_only_it_settles_it(
    nodes: list[BrokerProcess],
) -> None:
    q = fresh()
    a, b, c = [await connect(n) for n in nodes]
    async with a, b, c:
        put = await a.call(op="PUT", queue=q, messages=[{"body": i} for i in range(4)])
        got_b = (await b.call(op="GET", queue=q, max=2))["messages"]
        got_c = (await c.call(op="GET", queue=q, max=10))["messages"]
        ids_b = {m["id"] for m in got_b}
        ids_c = {m["id"] for m in got_c}
        assert ids_b.isdisjoint(ids_c) and ids_b | ids_c == set(put["ids"])
        mine = got_b[0]["id"]
        for op in ("ACK", "NACK", "TOUCH"):
            reply = await c.call(op=op, id=mine)
            assert reply["error"] == "not_leased", (op, reply)
        assert await b.call(op="TOUCH", id=mine, lease=60) == {"ok": True}
        assert await b.call(op="ACK", id=mine) == {"ok": True}
        assert (await a.call(op="INFO", id=mine))["message"]["state"] == "acked"


async def test_a_closed_connection_releases_its_leases_to_a_get_waiting_on_another_node(
    nodes: list[BrokerProcess],
) -> None:
    q = fresh()
    a, b = await connect(nodes[0]), await connect(nodes[1])
    async with a, b:
        [msg_id] = (await a.call(op="PUT", queue=q, messages=[{"body": "x"}]))["ids"]
        holder = await connect(nodes[2])
        assert (await holder.call(op="GET", queue=q))["messages"][0]["id"] == msg_id
        await waiting(b, q, "w")
        await holder.close()
        woke = await b.reply(timeout=5)
        assert woke["rid"] == "w" and woke["messages"][0]["id"] == msg_id
        assert woke["messages"][0]["attempts"] == 2
        stats = (await a.call(op="STATS", queue=q))["queues"][q]
        assert stats["released_on_disconnect"] == 1 and stats["leased"] == 1


async def test_waiting_gets_are_served_in_the_order_they_reached_redis_across_nodes(
    nodes: list[BrokerProcess],
) -> None:
    q = fresh()
    clients = [await connect(n) for n in (*nodes, nodes[0])]  # four waiters, two on node0
    producer = await connect(nodes[1])
    try:
        for i, c in enumerate(clients):
            await waiting(c, q, f"w{i}")
        stats = await producer.call(op="STATS", queue=q)
        assert stats["error"] == "not_found"  # waiting creates no queue
        for i in range(len(clients)):
            await producer.call(op="PUT", queue=q, body=i)
            woke = await clients[i].reply(timeout=5)
            assert woke["rid"] == f"w{i}" and woke["messages"][0]["body"] == i
    finally:
        for c in (*clients, producer):
            await c.close()


async def test_keys_priorities_delays_dead_letters_and_redrive_hold_across_nodes(
    nodes: list[BrokerProcess],
) -> None:
    q = fresh()
    a, b, c = [await connect(n) for n in nodes]
    async with a, b, c:
        await a.call(
            op="PUT",
            queue=q,
            messages=[
                {"body": "k1-first", "key": "k1"},
                {"body": "k1-second", "key": "k1"},
                {"body": "urgent", "priority": -5},
                {"body": "poison", "max_attempts": 1},
            ],
        )
        first = (await b.call(op="GET", queue=q, max=10))["messages"]
        assert [m["body"] for m in first] == ["urgent", "k1-first", "poison"]
        assert (await c.call(op="GET", queue=q, max=10))["messages"] == []  # k1 held back
        poison = first[2]["id"]
        assert await b.call(op="NACK", id=poison) == {"ok": True, "dead": True}
        k1 = first[1]["id"]
        assert await b.call(op="ACK", id=k1) == {"ok": True}
        assert [m["body"] for m in (await c.call(op="GET", queue=q))["messages"]] == ["k1-second"]
        dead = (await c.call(op="PEEK", queue=q, state="dead"))["messages"]
        assert [m["id"] for m in dead] == [poison]
        assert await a.call(op="REDRIVE", queue=q) == {"ok": True, "redriven": 1}
        again = (await c.call(op="GET", queue=q))["messages"]
        assert again[0]["id"] == poison and again[0]["attempts"] == 1
        await a.call(op="PUT", queue=q, body="later", delay=0.3)
        await waiting(b, q, "delayed", wait=10)
        woke = await b.reply(timeout=5)
        assert woke["rid"] == "delayed" and woke["messages"][0]["body"] == "later"


async def test_stats_figures_are_cluster_wide_with_a_cluster_section(
    nodes: list[BrokerProcess],
) -> None:
    q = fresh()
    clients = [await connect(n) for n in nodes]
    try:
        await clients[0].call(op="PUT", queue=q, messages=[{"body": 1}, {"body": 2}])
        await clients[1].call(op="GET", queue=q)
        await clients[2].call(op="PUT", queue=q, body=3)
        replies = [await c.call(op="STATS", queue=q) for c in clients]
        figures = [r["queues"][q] for r in replies]
        for f in figures:
            assert f.pop("oldest_ready_age") is not None  # (read at slightly different times)
        assert all(f == figures[0] for f in figures)
        assert figures[0]["put"] == 3 and figures[0]["leased"] == 1 and figures[0]["ready"] == 2
        cluster = replies[0]["server"]["cluster"]
        assert sorted(n["id"] for n in cluster["nodes"]) == ["node0", "node1", "node2"]
        assert [r["server"]["cluster"]["node"] for r in replies] == ["node0", "node1", "node2"]
        for r in replies:  # each node's own entry is live (the others' as of their heartbeat)
            own = r["server"]["cluster"]["node"]
            assert [
                n["connections"] for n in r["server"]["cluster"]["nodes"] if n["id"] == own
            ] == [1]
        names = [(await c.call(op="QUEUES"))["queues"] for c in clients]
        assert all(q in n for n in names) and names[0] == names[1] == names[2]
    finally:
        for c in clients:
            await c.close()


async def test_fifty_idle_waiting_gets_cost_redis_only_heartbeats(
    nodes: list[BrokerProcess], store: Store
) -> None:
    """Waiting GETs are woken by events: while 50 wait on idle queues, Redis runs only
    the nodes' heartbeats and channel checks (a poll every 0.5 ms would be thousands)."""
    clients = [await connect(nodes[i % 3]) for i in range(50)]
    try:
        for i, c in enumerate(clients):
            await waiting(c, fresh("idle"), f"w{i}", wait=60)
        before = _calls_and_cpu(store.ports)
        await asyncio.sleep(2.0)  # real time: idle on purpose, what does Redis do meanwhile?
        after = _calls_and_cpu(store.ports)
        calls, cpu_s = after[0] - before[0], after[1] - before[1]
        # 3 nodes x a heartbeat every 0.6 s ~ 10 calls, and channel PINGs; a poll: thousands
        assert calls < 40, calls
        assert cpu_s < 0.02 * 2.0, f"redis used {cpu_s:.3f} s of CPU in 2 s"
    finally:
        for c in clients:
            await c.close()


def _calls_and_cpu(ports: list[int]) -> tuple[int, float]:
    """Calls of the library and PINGs (what nodes send when idle), and CPU seconds Redis
    used, over every server (commandstats also counts the commands a function runs
    inside, so those are left out)."""
    calls, cpu = 0, 0.0
    for port in ports:
        stats = redis_info(port, "commandstats")
        calls += sum(
            int(stats[k].split("calls=")[1].split(",")[0])
            for k in ("cmdstat_fcall", "cmdstat_ping")
            if k in stats
        )
        cpu += cpu_s(port)
    return calls, cpu


async def test_a_queue_whose_slot_moves_to_another_master_is_followed(
    redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    """A reshard moves a queue's slot while a node holds the old map: its next call is
    answered MOVED, and the node sends it again to the new master (nothing fails)."""
    q = fresh("moved")
    key = wire.tag_key(wire.tag_of(q))
    async with (
        running_nodes(redis_cluster.url, tmp_path, 1) as (node,),
        await connect(node) as c,
    ):
        put = await c.call(op="PUT", queue=q, messages=[{"body": 1}, {"body": 2}])
        before = redis_cluster.master_of(key)
        target = next(p for p in redis_cluster.masters() if p != before)
        redis_cluster.move_slot(key, target)
        got = (await c.call(op="GET", queue=q, max=5))["messages"]
        assert [m["id"] for m in got] == put["ids"]
        assert (await c.call(op="ACK", ids=put["ids"]))["acked"] == 2
        assert (await c.call(op="STATS", queue=q))["queues"][q]["acked"] == 2
        assert redis_cluster.master_of(key) == target
