"""Losing the connection: every pending call fails with ConnectionLost, nothing hangs; reconnect; timeouts."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import wonderq


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_every_pending_call_gets_connection_lost_when_the_server_drops(
    fake_server: Any,
) -> None:
    async def handler(conn: Any) -> None:
        await conn.requests(3)  # read three requests, answer none, hang up
        conn.close()

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        calls = [
            asyncio.create_task(c.put("q", 1)),
            asyncio.create_task(c.get("q", wait=60)),
            asyncio.create_task(c.ping()),
        ]
        async with asyncio.timeout(5):
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, wonderq.ConnectionLost) for r in results), results
        assert not c.connected
        with pytest.raises(wonderq.ConnectionLost, match="reconnect=False"):
            await c.ping()


async def test_broker_shutdown_answers_a_waiting_get_then_calls_fail(make_broker: Any) -> None:
    async with make_broker() as server:
        client = await wonderq.connect("127.0.0.1", server.port)
        try:
            waiting = asyncio.create_task(client.get("q", wait=60))
            await client.ping()  # the GET is on the server by now
            await server.close()
            async with asyncio.timeout(5):
                assert await waiting == []
                with pytest.raises(wonderq.ConnectionLost):
                    await client.ping()
        finally:
            await client.close()


async def test_closing_the_client_fails_pending_calls(fake_server: Any) -> None:
    async def handler(conn: Any) -> None:
        await conn.reader.read()

    async with fake_server(handler) as port:
        c = await wonderq.connect("127.0.0.1", port)
        pending = asyncio.create_task(c.ping())
        await asyncio.sleep(0)
        await c.close()
        with pytest.raises(wonderq.ConnectionLost, match="closed by the client"):
            await pending
        with pytest.raises(wonderq.ConnectionLost, match="client is closed"):
            await c.ping()


async def test_connect_refused_is_connection_lost() -> None:
    with pytest.raises(wonderq.ConnectionLost, match="cannot connect"):
        await wonderq.connect("127.0.0.1", free_port(), connect_timeout=5)


async def test_reconnect_dials_again_and_authenticates_each_connection(fake_server: Any) -> None:
    connections: list[list[dict[str, Any]]] = []

    async def handler(conn: Any) -> None:
        seen: list[dict[str, Any]] = []
        connections.append(seen)
        while True:
            request = await conn.request()
            seen.append(request)
            if request["op"] == "PUT" and len(connections) == 1:
                conn.close()  # the first connection dies on its first PUT
                return
            conn.reply(request, id="m1") if request["op"] == "PUT" else conn.reply(request)

    async with (
        fake_server(handler) as port,
        await wonderq.connect("127.0.0.1", port, token="t0k", reconnect=True) as c,
    ):
        with pytest.raises(wonderq.ConnectionLost):
            await c.put("q", "lost?")  # in flight when the connection dropped: never retried
        assert await c.put("q", "again") == "m1"
    assert [[r["op"] for r in seen] for seen in connections] == [["AUTH", "PUT"], ["AUTH", "PUT"]]
    assert connections[1][0]["token"] == "t0k"
    assert connections[1][1]["body"] == "again"


async def test_reconnect_gives_up_after_its_timeout() -> None:
    client = wonderq.AsyncClient("127.0.0.1", free_port(), reconnect=True, reconnect_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(wonderq.ConnectionLost, match="gave up reconnecting"):
        await client.ping()
    assert loop.time() - started < 3
    await client.close()


async def test_request_timeout_abandons_the_call_and_keeps_the_connection(
    fake_server: Any,
) -> None:
    async def handler(conn: Any) -> None:
        slow = await conn.request()  # never answered in time
        fast = await conn.request()
        conn.reply(slow)  # now, late: must be dropped, not matched to the next call
        conn.reply(fast)
        await conn.reader.read()

    async with (
        fake_server(handler) as port,
        await wonderq.connect("127.0.0.1", port, request_timeout=0.2) as c,
    ):
        with pytest.raises(wonderq.RequestTimeout, match="PING"):
            await c.ping()
        async with asyncio.timeout(5):
            await c.ping()
        assert c.connected


async def test_a_server_breaking_the_protocol_fails_every_pending_call(fake_server: Any) -> None:
    async def handler(conn: Any) -> None:
        await conn.requests(2)
        conn.writer.write(b"this is not json\n")
        await conn.reader.read()

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        async with asyncio.timeout(5):
            results = await asyncio.gather(c.ping(), c.ping(), return_exceptions=True)
    assert all(isinstance(r, wonderq.ConnectionLost) for r in results), results
    assert all("broke the protocol" in str(r) for r in results)


async def test_a_reply_longer_than_max_line_fails_the_connection(fake_server: Any) -> None:
    async def handler(conn: Any) -> None:
        request = await conn.request()
        conn.reply(request, id="x" * 5000)
        await conn.reader.read()

    async with (
        fake_server(handler) as port,
        await wonderq.connect("127.0.0.1", port, max_line=1000) as c,
    ):
        with pytest.raises(wonderq.ConnectionLost, match="longer than 1000"):
            await c.put("q", 1)
