"""Nodes for multi-node tests: ``wonderq serve --backend redis://...`` processes on port 0.

``start_nodes`` starts N real broker processes over one Redis (each with its own
``--node-id``); every one is stopped by PID in ``finally``. ``redis_info``
(``broker.bench.resp.info``) reads a Redis's counters over a raw socket.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from broker.bench.resp import info as redis_info
from tests.durability.broker_process import BrokerProcess

__all__ = ["redis_info", "running_nodes", "start_node"]


async def start_node(url: str, log_dir: Path, node_id: str, *args: str) -> BrokerProcess:
    log = log_dir / f"{node_id}.log"
    return await BrokerProcess.start_with(log, "--backend", url, "--node-id", node_id, *args)


@contextlib.asynccontextmanager
async def running_nodes(
    url: str, log_dir: Path, n: int, *args: str
) -> AsyncIterator[list[BrokerProcess]]:
    nodes: list[BrokerProcess] = []
    try:
        for i in range(n):
            nodes.append(await start_node(url, log_dir, f"node{i}", *args))
        yield nodes
    finally:
        for node in nodes:  # a graceful stop leaves the registry at once
            try:
                await node.stop()
            finally:
                await node.kill()
