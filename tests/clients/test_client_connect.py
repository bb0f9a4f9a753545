"""connect(): both ``await connect()`` and ``async with connect()``; a refused connection says
that no broker runs there and how to start one, and is a ConnectionError."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import wonderq


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_async_with_connect_without_await(broker: Any) -> None:
    async with wonderq.connect("127.0.0.1", broker.port) as client:
        assert isinstance(client, wonderq.AsyncClient) and client.connected
        await client.put("jobs", "hello")
        [message] = await client.get("jobs")
        await message.ack()
    assert not client.connected  # closed at the end of the block


async def test_await_connect_and_async_with_await_connect(broker: Any) -> None:
    client = await wonderq.connect("127.0.0.1", broker.port)
    try:
        assert client.connected
        await client.ping()
    finally:
        await client.close()
    async with await wonderq.connect("127.0.0.1", broker.port) as again:
        await again.ping()
    assert not again.connected


async def test_a_refused_connection_says_no_broker_runs_there_and_how_to_start_one() -> None:
    port = free_port()
    for attempt in (
        lambda: wonderq.connect("127.0.0.1", port, connect_timeout=5),
        lambda: wonderq.AsyncClient("127.0.0.1", port).open(),
    ):
        with pytest.raises(wonderq.ConnectFailed) as caught:
            await attempt()
        error = caught.value
        assert isinstance(error, ConnectionError)  # the builtin: `except ConnectionError` works
        assert isinstance(error, wonderq.ConnectionLost)  # what older code catches
        assert isinstance(error, wonderq.WonderQError)
        assert isinstance(error.__cause__, ConnectionRefusedError)
        assert str(error) == (
            f"cannot connect to 127.0.0.1:{port}: connection refused: no broker is running at "
            f"that address (start one with `wonderq serve --port {port}`)"
        )


async def test_async_with_connect_raises_the_same_when_refused() -> None:
    port = free_port()
    with pytest.raises(ConnectionError, match="no broker is running at that address"):
        async with wonderq.connect("127.0.0.1", port):
            pytest.fail("entered the block without a connection")


async def test_the_blocking_client_says_the_same() -> None:
    port = free_port()

    def attempt() -> None:
        wonderq.connect_sync("127.0.0.1", port, connect_timeout=5)

    with pytest.raises(wonderq.ConnectFailed, match=rf"wonderq serve --port {port}`\)$") as caught:
        async with asyncio.timeout(10):
            await asyncio.to_thread(attempt)
    assert isinstance(caught.value, ConnectionError)


def test_a_lost_connection_is_a_connection_error_too() -> None:
    assert issubclass(wonderq.ConnectionLost, ConnectionError)
    assert issubclass(wonderq.ConnectFailed, wonderq.ConnectionLost)
    assert not issubclass(wonderq.NotFound, ConnectionError)  # only the connection's own failures


def test_the_hint_names_the_host_when_it_is_not_this_machine() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    error = wonderq.errors.connect_failed("queue.internal", 7878, refused, 10.0)
    assert str(error).endswith(
        "(start one with `wonderq serve --host queue.internal --port 7878` on that machine)"
    )
    # asyncio's report when every address of a name (::1 and 127.0.0.1) refused
    several = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 7878, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 7878)"
    )
    assert "no broker is running" in str(
        wonderq.errors.connect_failed("localhost", 7878, several, 1)
    )
    timeout = wonderq.errors.connect_failed("10.1.2.3", 7878, TimeoutError(), 10.0)
    assert str(timeout) == (
        "cannot connect to 10.1.2.3:7878: no answer within 10 s; is that address reachable "
        "and is a WonderQ broker listening there?"
    )
