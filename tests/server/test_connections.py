"""Connection limits: max-connections, the idle timeout, and many idle connections."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broker.cli.serve import raise_open_files_limit
from broker.config import Config
from broker.durability.backend import DurableBackend
from broker.server import Server
from broker.server.idle import IdleTracker
from tests.conftest import ServerFactory
from tests.support import BrokerProcess, LineClient, closed_by_server, require

# ------------------------------------------------------------ max-connections


async def test_connection_over_the_limit_gets_an_error_line_then_close(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(max_connections=3) as srv:
        clients = [await LineClient.connect(srv.port) for _ in range(3)]
        try:
            for c in clients:
                assert await c.call(op="PING") == {"ok": True}
            async with await LineClient.connect(srv.port) as extra:
                refusal = await extra.reply()
                assert refusal["ok"] is False and refusal["error"] == "unavailable"
                assert "max-connections" in refusal["message"] and "3" in refusal["message"]
                assert await closed_by_server(extra)
            assert srv.refused == 1
            assert len(srv.connections) == 3
            # the others are untouched, and a freed slot is usable again
            assert await clients[1].call(op="PUT", queue="q", body=1) != {}
            assert await clients[0].line("QUIT") == {"ok": True}
            assert await closed_by_server(clients[0])
            assert await _connect_when_admitted(srv) == {"ok": True}
        finally:
            for c in clients:
                await c.close()


async def _connect_when_admitted(srv: Server, attempts: int = 50) -> dict[str, object]:
    """PING on a new connection, retrying (bounded) while the closed slot is not yet freed."""
    for _ in range(attempts):
        async with await LineClient.connect(srv.port) as c:
            reply = await c.call(op="PING")
            if reply.get("error") != "unavailable":
                return reply
    raise AssertionError("a slot freed by QUIT never became available")


# ------------------------------------------------------------ idle timeout


def test_idle_tracker_orders_deadlines_and_expires_in_order() -> None:
    idle: IdleTracker[str] = IdleTracker(10.0)
    assert idle.next_deadline() is None and idle.expired(1e9) == []
    idle.touch("a", 0.0)
    idle.touch("b", 1.0)
    idle.touch("c", 2.0)
    assert idle.next_deadline() == 10.0
    idle.touch("a", 5.0)  # activity moves "a" behind the others
    assert idle.next_deadline() == 11.0
    assert idle.expired(10.999) == []
    assert idle.expired(12.0) == ["b", "c"]
    assert idle.next_deadline() == 15.0 and len(idle) == 1
    idle.forget("a")
    idle.forget("never-seen")
    assert idle.next_deadline() is None and len(idle) == 0


async def test_one_byte_at_a_time_is_closed_after_idle_timeout(
    server_factory: ServerFactory,
) -> None:
    timeout_s = 0.4
    async with server_factory(idle_timeout_s=timeout_s) as srv:
        started = time.monotonic()  # before the server starts this connection's idle time
        slow = await LineClient.connect(srv.port)
        closed = asyncio.ensure_future(closed_by_server(slow, timeout=10))
        payload = b'{"op":"PING","rid":"never complete", "padding":"' + b"x" * 500
        for i in range(len(payload)):  # paced like a slowloris; stops once closed
            if closed.done():
                break
            slow.writer.write(payload[i : i + 1])
            await asyncio.wait([closed], timeout=0.05)  # pacing, ends early on close
        assert await closed
        await slow.close()
        # uvloop's clock has millisecond resolution: allow for its rounding
        assert time.monotonic() - started >= timeout_s - 0.005
        async with await LineClient.connect(srv.port) as good:
            assert await good.call(op="PING") == {"ok": True}


async def test_idle_connection_holding_a_lease_or_waiting_get_is_kept(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(idle_timeout_s=0.3) as srv:
        leaser = await LineClient.connect(srv.port)
        waiter = await LineClient.connect(srv.port)
        try:
            await leaser.call(op="PUT", queue="q", body="held")
            leased = await leaser.call(op="GET", queue="q", lease=600)
            await waiter.send(op="GET", queue="empty", wait=600, rid="w")
            async with await LineClient.connect(srv.port) as idle:
                # idle's deadline is after both others': once it is closed, theirs passed
                assert await closed_by_server(idle)
            assert await leaser.call(op="PING", rid=1) == {"ok": True, "rid": 1}
            await leaser.call(op="PUT", queue="empty", body="wake")
            woken = await waiter.reply()
            assert woken["rid"] == "w" and woken["messages"][0]["body"] == "wake"
            # with no more work, both go idle and are closed; the lease comes back
            await leaser.call(op="ACK", id=leased["messages"][0]["id"])
            await waiter.call(op="ACK", id=woken["messages"][0]["id"])
            assert await closed_by_server(leaser)
            assert await closed_by_server(waiter)
            assert len(srv.connections) == 0
        finally:
            await leaser.close()
            await waiter.close()


async def test_active_connection_outlives_the_idle_timeout(
    server_factory: ServerFactory,
) -> None:
    async with (
        server_factory(idle_timeout_s=0.3) as srv,
        await LineClient.connect(srv.port) as busy,
        await LineClient.connect(srv.port) as idle,
    ):
        closed = asyncio.ensure_future(closed_by_server(idle, timeout=10))
        pings = 0
        for _ in range(200):  # bounded; a PING every 20 ms until idle is closed
            if closed.done():
                break
            assert await busy.call(op="PING") == {"ok": True}
            pings += 1
            await asyncio.wait([closed], timeout=0.02)
        assert await closed
        assert pings > 5
        assert await busy.call(op="PING") == {"ok": True}


# ---------------------------------------------------- many idle connections


async def _open_idle(port: int, n: int) -> list[asyncio.Transport]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    for start in range(0, n, 500):  # in waves below the listen backlog
        made = await asyncio.gather(
            *(
                loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
                for _ in range(start, min(n, start + 500))
            )
        )
        transports.extend(t for t, _ in made)
    return transports


async def _hold_idle_connections(port: int, n: int) -> None:
    transports = await _open_idle(port, n)
    try:
        async with await LineClient.connect(port) as c:
            stats = await c.call(op="STATS")
            assert stats["server"]["connections"] == n + 1
            await c.call(op="PUT", queue="busy", body="still fast")
            got = await c.call(op="GET", queue="busy")
            assert got["messages"][0]["body"] == "still fast"
    finally:
        for t in transports:
            t.abort()


def _need_files(n: int) -> None:
    require(raise_open_files_limit(n) >= n, f"the open-files hard limit is below {n}")


@pytest.mark.load
async def test_two_thousand_idle_connections(server_factory: ServerFactory) -> None:
    n = 2_000
    _need_files(2 * n + 200)  # both ends live in this process
    async with server_factory() as srv:
        await _hold_idle_connections(srv.port, n)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_thousand_idle_connections_on_the_cli_server(tmp_path: Path) -> None:
    n = 10_000
    _need_files(n + 200)  # this process holds the client ends; serve raises its own limit
    # the server runs on the same kind of loop as this test
    loop_flag = [] if "uvloop" in type(asyncio.get_running_loop()).__module__ else ["--no-uvloop"]
    async with await BrokerProcess.start_with(
        tmp_path / "broker.log",
        *loop_flag,
        "--max-connections", str(n + 10),
        "--log-level", "WARNING",  # not a line per connection
    ) as broker:  # fmt: skip
        await _hold_idle_connections(broker.port, n)
        assert await broker.stop() == 0, await broker.stderr()


async def test_idle_timeout_with_the_durable_backend(tmp_path: Path) -> None:
    """The durable backend answers ``holds`` too: a leaseholder is kept, an idle one closed."""
    config = Config(host="127.0.0.1", port=0, idle_timeout_s=0.3, data_dir=str(tmp_path))
    async with (
        Server(config, DurableBackend(config)) as srv,
        await LineClient.connect(srv.port) as leaser,
    ):
        await leaser.call(op="PUT", queue="q", body="held")
        await leaser.call(op="GET", queue="q", lease=600)
        async with await LineClient.connect(srv.port) as idle:
            assert await closed_by_server(idle)
        assert await leaser.call(op="PING") == {"ok": True}
