"""Fixtures of the Python client tests: a real broker per test, clients, and scripted fake servers.

The fake servers speak raw lines on loopback, so a test can make the "server"
do what a real one never would on cue (hold replies, reorder them, drop the
connection mid-call, send garbage). A ``Proxy`` relays to a real broker and
can cut every connection at once; ``LogWatch`` awaits the client's log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from ssl import SSLContext
from typing import Any

import msgspec
import pytest
import uvloop

import wonderq
from broker.server import Server
from tests.conftest import ServerFactory

# Modules whose tests also run on uvloop (what `wonderq serve` and most apps use).
_BOTH_LOOPS = ("test_client_pipelining", "test_client_connection_loss", "test_client_worker")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    if any(name in str(item.path) for name in _BOTH_LOOPS):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(autouse=True)
def _every_backend(backend_kind: str) -> str:
    """The client suite runs against every backend (memory, then Redis)."""
    return backend_kind


@pytest.fixture
def make_broker(server_factory: ServerFactory) -> ServerFactory:
    """``async with make_broker(lease_s=0.3) as server:`` runs a broker with those settings."""
    return server_factory


@pytest.fixture
def broker(server: Server) -> Server:
    """A broker with the default settings (tests/conftest.py's ``server``)."""
    return server


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
async def _fake_server(handler: FakeHandler, ssl: SSLContext | None = None) -> AsyncIterator[int]:
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

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl)
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


FakeServerFactory = Callable[..., AbstractAsyncContextManager[int]]


@pytest.fixture
def fake_server() -> FakeServerFactory:
    """``async with fake_server(handler) as port:``; ``handler(conn)`` runs per connection.

    ``fake_server(handler, ssl=context)`` serves TLS."""
    return _fake_server


class LogWatch(logging.Handler):
    """Every record of the ``wonderq`` logger, and a way to await one (from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._loop = loop
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._changed.set)

    def messages(self, text: str = "") -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]

    async def wait_for(self, text: str, timeout: float = 10.0) -> logging.LogRecord:
        """The first record whose message contains ``text``, once there is one."""
        async with asyncio.timeout(timeout):
            while True:  # bounded by the timeout; wakes on every new record
                self._changed.clear()
                for record in list(self.records):
                    if text in record.getMessage():
                        return record
                await self._changed.wait()


@pytest.fixture
async def log_watch() -> AsyncIterator[LogWatch]:
    watch = LogWatch(asyncio.get_running_loop())
    logger = logging.getLogger("wonderq")
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)


class Proxy:
    """A TCP relay on loopback in front of a real broker; ``cut()`` drops every relayed
    connection at once (both sides reset), as a network failure would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        for client_side, broker_side in self._pairs:
            for writer in (client_side, broker_side):
                writer.transport.abort()
        self._pairs.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._pairs.append((writer, broker_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, broker_writer)),
            asyncio.create_task(self._pump(broker_reader, writer)),
        ]
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):  # until EOF or a reset
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


ProxyFactory = Callable[[int], AbstractAsyncContextManager[Proxy]]


@asynccontextmanager
async def _proxy(target_port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
def make_proxy() -> ProxyFactory:
    """``async with make_proxy(broker.port) as proxy:``: clients connect to ``proxy.port``."""
    return _proxy
