"""Fixtures of the Python client tests: a real broker per test, clients, and scripted fake servers.

The fake servers speak raw lines on loopback, so a test can make the "server"
do what a real one never would on cue (hold replies, reorder them, drop the
connection mid-call, send garbage).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import pytest
import uvloop

import wonderq
from broker.config import Config
from broker.server import Server
from tests.conftest import backend_for

# Modules whose tests also run on uvloop (what `wonderq serve` and most apps use).
_BOTH_LOOPS = ("test_client_pipelining", "test_client_connection_loss", "test_client_worker")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    if any(name in str(item.path) for name in _BOTH_LOOPS):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@asynccontextmanager
async def _running_broker(**overrides: Any) -> AsyncIterator[Server]:
    config = Config(**{"host": "127.0.0.1", "port": 0, **overrides})
    async with Server(config, backend_for(config)) as server:
        yield server


BrokerFactory = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture(autouse=True)
def _every_backend(backend_kind: str) -> str:
    """The client suite runs against every backend (memory, then Redis)."""
    return backend_kind


@pytest.fixture
def make_broker() -> BrokerFactory:
    """``async with make_broker(lease_s=0.3) as server:`` runs a broker with those settings."""
    return _running_broker


@pytest.fixture
async def broker() -> AsyncIterator[Server]:
    async with _running_broker() as server:
        yield server


@pytest.fixture
async def client(broker: Server) -> AsyncIterator[wonderq.AsyncClient]:
    async with await wonderq.connect("127.0.0.1", broker.port, request_timeout=10.0) as c:
        yield c


class FakeConnection:
    """One connection to a fake server: read the client's requests, write any bytes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            line = await self.reader.readline()
        assert line, "the client closed the connection"
        request = msgspec.json.decode(line)
        assert isinstance(request, dict)
        return request

    async def requests(self, count: int) -> list[dict[str, Any]]:
        return [await self.request() for _ in range(count)]

    def reply(self, request: dict[str, Any], **fields: Any) -> None:
        """Write a success reply (``ok`` defaults to true) carrying the request's rid."""
        self.send({"ok": True, **fields, "rid": request["rid"]})

    def send(self, obj: object) -> None:
        self.writer.write(msgspec.json.encode(obj) + b"\n")

    def close(self) -> None:
        self.writer.close()


FakeHandler = Callable[[FakeConnection], Awaitable[None]]


@asynccontextmanager
async def _fake_server(handler: FakeHandler) -> AsyncIterator[int]:
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(FakeConnection(reader, writer))
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in writers:
            writer.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()


FakeServerFactory = Callable[[FakeHandler], AbstractAsyncContextManager[int]]


@pytest.fixture
def fake_server() -> FakeServerFactory:
    """``async with fake_server(handler) as port:``; ``handler(conn)`` runs per connection."""
    return _fake_server
