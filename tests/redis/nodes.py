"""Nodes for multi-node tests: ``wonderq serve --backend redis://...`` processes on port 0.

``start_nodes`` starts N real broker processes over one Redis (each with its own
``--node-id``); every one is stopped by PID in ``finally``. ``redis_info``
reads a Redis's counters over a raw socket (no client library).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from tests.durability.broker_process import BrokerProcess


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


def redis_info(port: int, section: str = "stats") -> dict[str, str]:
    """``INFO section`` of the Redis on ``port``, as a dict of its ``key:value`` lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"INFO {section}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            data += chunk
            if not chunk or (data.startswith(b"$") and len(data) >= _bulk_len(data)):
                break
    out: dict[str, str] = {}
    for line in data.decode().splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def _bulk_len(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n")
    return len(head) + 2 + int(head[1:]) + 2
