"""A connection's pipelined batches under ``--fsync always``: several in flight, one fsync.

A read of more lines than one batch (``BATCH_LINES``) runs batch after batch
while the earlier ones wait for their fsync (the durable backend's ``Commit``
says its batch is applied: ``backend.base.applied``), so one fsync covers the
whole read, and the replies still go out in request order, none before that
fsync. A batch whose job goes on in slices (a long PURGE) still holds the later
batches back until it ends. Driven in process: a recording transport stands in
for the socket, so each read is exactly the lines given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.backend.memory import slices as slices_module
from broker.durability.backend import DurableBackend
from broker.server.batches import BATCH_LINES, MAX_FLIGHTS
from broker.server.connection import Connection
from broker.server.server import Server
from tests.durability.test_durable_server import durable_server

BOUND_S = 10.0


class Transport:
    """Records what is written; ``lines(n)`` waits (bounded) until ``n`` lines are in."""

    def __init__(self) -> None:
        self.data = b""
        self.reading = True
        self._grew = asyncio.Event()

    async def lines(self, n: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(BOUND_S):
            while self.data.count(b"\n") < n:
                self._grew.clear()
                await self._grew.wait()
        return [msgspec.json.decode(line) for line in self.data.splitlines()]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.data += data
        self._grew.set()

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with durable_server(tmp_path, fsync="always") as started:
        yield started


@pytest.fixture
def connect(server: Server) -> Iterator[Callable[[], tuple[Connection, Transport]]]:
    """Opens connections to ``server`` over recording transports; all lost at the end."""
    opened: list[Connection] = []

    def open_one() -> tuple[Connection, Transport]:
        conn = Connection(server, server.backend)
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        opened.append(conn)
        return conn, transport

    yield open_one
    for conn in opened:
        conn.connection_lost(None)


def log_of(server: Server) -> Any:
    backend = server.backend
    assert isinstance(backend, DurableBackend)
    return backend.log


async def test_one_read_of_several_batches_waits_for_one_fsync_and_keeps_its_order(
    server: Server, connect: Callable[[], tuple[Connection, Transport]]
) -> None:
    conn, transport = connect()
    n = BATCH_LINES * 2  # the bench's window of 64 requests, say: two batches
    assert MAX_FLIGHTS >= 2
    lines = b"".join(b'{"op":"PUT","queue":"q","body":%d,"rid":%d}\n' % (i, i) for i in range(n))
    log = log_of(server)
    fsyncs = log.fsyncs
    conn.data_received(lines)
    assert transport.data == b""  # nothing is answered before its fsync
    replies = await transport.lines(n)
    assert log.fsyncs == fsyncs + 1
    assert [r["rid"] for r in replies] == list(range(n))
    assert all(r["ok"] for r in replies)


async def test_past_the_flights_allowed_the_next_batches_wait_for_the_next_fsync(
    server: Server, connect: Callable[[], tuple[Connection, Transport]]
) -> None:
    conn, transport = connect()
    n = BATCH_LINES * (MAX_FLIGHTS + 1)
    lines = b"".join(b'{"op":"PUT","queue":"q","body":%d,"rid":%d}\n' % (i, i) for i in range(n))
    log = log_of(server)
    fsyncs = log.fsyncs
    conn.data_received(lines)
    replies = await transport.lines(n)
    assert log.fsyncs == fsyncs + 2
    assert [r["rid"] for r in replies] == list(range(n))


async def test_a_batch_whose_purge_goes_on_in_slices_holds_the_later_batches_back(
    server: Server,
    connect: Callable[[], tuple[Connection, Transport]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices_module, "SLICE_S", 0.0)  # one step of 100 per slice
    monkeypatch.setattr(slices_module, "STEP", 100)
    conn, transport = connect()
    fill = b'{"op":"PUT","queue":"q","messages":[' + b",".join([b'{"body":1}'] * 1000) + b"]}\n"
    conn.data_received(fill * 5)
    await transport.lines(5)
    transport.data = b""
    first = [b'{"op":"PURGE","queue":"q"}\n'] + [b'{"op":"PING"}\n'] * (BATCH_LINES - 1)
    conn.data_received(b"".join(first) + b'{"op":"STATS","queue":"q"}\n')
    replies = await transport.lines(BATCH_LINES + 1)
    assert replies[0] == {"ok": True, "purged": 5000}
    stats = replies[-1]["queues"]["q"]
    assert stats["ready"] == 0 and stats["purged"] == 5000  # it ran after the whole PURGE
