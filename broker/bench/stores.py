"""WonderQ over Redis for the bench: a store (one redis-server, or a loopback Redis
Cluster) and N ``wonderq serve --backend ...`` nodes over it.

Owns: what such a run is (``Scaled``: nodes, store, queues, and its label in the
report), starting the store and the nodes on free loopback ports and stopping
all of them by PID, and its figures: the nodes' CPU and memory together (the
``srv`` columns), and the store's CPU (the ``redis`` column) from each Redis's own
count in ``INFO cpu``, so a cluster's six servers are summed.
Must never: leave a server running after ``stop()``, or bind anything but loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Final

from broker.bench import resp
from broker.bench.cluster import ClusterError, LocalCluster
from broker.bench.fleet import Result, run_plan
from broker.bench.procs import HOST, WONDERQ, BenchError, BrokerProcess, Measured, free_port, spawn
from broker.bench.procs import start as start_server
from broker.bench.where import Where
from broker.bench.workloads import Plan

NODES_DEFAULT: Final = (1, 2, 4)
CLUSTER_QUEUES: Final = 12  # the cluster rows spread the load over this many queues


@dataclass(frozen=True)
class Scaled:
    """One way to run WonderQ on Redis: ``nodes`` nodes, over one Redis or a cluster,
    the load spread over ``queues`` queues."""

    nodes: int
    cluster: bool = False
    queues: int = 1

    @property
    def label(self) -> str:
        store = "cluster" if self.cluster else "redis"
        return f"wq+{store}:{self.nodes}n" + (f":{self.queues}q" if self.queues > 1 else "")


def plan_rows(nodes: list[int]) -> list[Scaled]:
    """The rows of ``--backend redis``: each node count over one Redis on one queue; then
    the most nodes over one Redis and over a cluster, both on 12 queues (one shard's
    throughput next to three shards')."""
    most = max(nodes)
    return [
        *(Scaled(n) for n in nodes),
        Scaled(most, queues=CLUSTER_QUEUES),
        Scaled(most, cluster=True, queues=CLUSTER_QUEUES),
    ]


@dataclass
class Running(Measured):
    """The nodes (``pid`` is the first's) and the store of one run."""

    nodes: list[BrokerProcess] = field(default_factory=list)
    store_ports: list[int] = field(default_factory=list)
    redis: BrokerProcess | None = None
    cluster: LocalCluster | None = None

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(n.port for n in self.nodes)

    def cpu_s(self) -> float:
        return sum(n.cpu_s() for n in self.nodes)

    def rss_bytes(self) -> int:
        return sum(n.rss_bytes() for n in self.nodes)

    def store_cpu_s(self) -> float | None:
        return sum(resp.cpu_s(p) for p in self.store_ports)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.cluster is not None:
            self.cluster.stop()


def start(row: Scaled) -> Running:
    """The store and the nodes of ``row``, every one accepting connections."""
    running = Running(pid=0)
    try:
        if row.cluster:
            try:
                running.cluster = LocalCluster().start()
            except ClusterError as exc:
                raise BenchError(str(exc)) from None
            url = running.cluster.url
            running.store_ports = running.cluster.ports
        else:
            running.redis = start_server("redis")
            url = f"redis://{HOST}:{running.redis.port}"
            running.store_ports = [running.redis.port]
        for i in range(row.nodes):
            port = free_port()
            cmd = [*WONDERQ, "serve", "--host", HOST, "--port", str(port), "--no-http"]
            cmd += ["--log-level", "WARNING", "--backend", url, "--node-id", f"bench{i}"]
            running.nodes.append(spawn(f"node {i}", cmd, port))
        running.pid = running.nodes[0].pid
    except BaseException:
        running.stop()
        raise
    return running


async def run(row: Scaled, plan: Plan, load_procs: int) -> Result:
    """One measured run of ``plan`` on ``row`` (its queues, and at least a producer and a
    consumer per queue); a store or node that will not start is the row's note."""
    plan = dataclasses.replace(
        plan,
        queues=row.queues,
        producers=max(plan.producers, row.queues),
        consumers=max(plan.consumers, row.queues),
    )
    result = Result(broker=row.label, mode=plan.mode, messages=plan.messages)
    running: Running | None = None
    try:
        running = await asyncio.to_thread(start, row)
        where = Where(running.ports[0], ports=running.ports)
        await run_plan("wonderq", where, plan, running, result, load_procs)
    except BenchError as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        if running is not None:
            await asyncio.to_thread(running.stop)
    return result
