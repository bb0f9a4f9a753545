"""Ordering, pipelining, flow control and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import msgspec
import pytest

from broker.server import Server
from tests.conftest import ServerFactory, one_backend, one_loop
from tests.support import (
    BrokerProcess,
    LineClient,
    closed_by_server,
    offer_until_unread,
    run_python,
)


async def test_pipelined_requests_answer_in_order_with_rid(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        n = 500
        await c.send_raw(
            b"".join(
                msgspec.json.encode({"op": "PUT", "queue": "p", "body": i, "rid": i}) + b"\n"
                for i in range(n)
            )
        )
        rids = [(await c.reply())["rid"] for _ in range(n)]
        assert rids == list(range(n))


async def test_waiting_get_does_not_block_ack_on_its_connection(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        mid = (await c.call(op="PUT", queue="a", body=1))["id"]
        await c.call(op="GET", queue="a")
        await c.send(op="GET", queue="empty", wait=30, rid="wait")
        # the ACK sent after the waiting GET is answered first
        assert await c.call(op="ACK", id=mid, rid="ack") == {"ok": True, "rid": "ack"}
        await c.send(op="PUT", queue="empty", body="wake", rid="put")
        first, second = await c.reply(), await c.reply()
        by_rid = {first["rid"]: first, second["rid"]: second}
        assert by_rid["wait"]["messages"][0]["body"] == "wake"
        assert by_rid["put"]["ok"] is True


async def test_client_that_never_reads_is_paused_not_buffered(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(write_high_water=64 * 1024, write_low_water=16 * 1024) as srv:
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            await _flood_without_reading(srv, writer)
        finally:
            writer.transport.abort()


async def _flood_without_reading(srv: Server, writer: asyncio.StreamWriter) -> None:
    for i in range(20):  # 20 queues, so each QUEUES reply is ~300 bytes for a 16-byte request
        writer.write(b'{"op":"PUT","queue":"queue-number-%d","body":1}\n' % i)
    # bounded: at most 2000 x 16 kB offered
    await offer_until_unread(writer, b'{"op":"QUEUES"}\n' * 1000, max_chunks=2000)
    conn = next(iter(srv.connections))
    assert conn.transport is not None
    assert not conn.transport.is_reading()
    # bounded by the high-water mark plus one batch of replies, not by what was offered
    assert conn.transport.get_write_buffer_size() < 8 * 1024 * 1024
    # another client is unaffected
    async with await LineClient.connect(srv.port) as other:
        assert await other.call(op="PING") == {"ok": True}


@pytest.mark.usefixtures("quick_stop")  # its peer never closes
async def test_shutdown_answers_waiting_get_and_closes(server_factory: ServerFactory) -> None:
    async with server_factory() as srv:
        c = await LineClient.connect(srv.port)
        await c.send(op="GET", queue="q", wait=60, rid="w")
        assert (await c.call(op="PING", rid=1))["rid"] == 1
        await srv.close()
        assert await c.reply() == {"ok": True, "messages": [], "rid": "w"}
        assert await closed_by_server(c)
        await c.close()


async def test_quit_closes_the_connection_and_releases_leases(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as c,
        await LineClient.connect(server.port) as other,
    ):
        await c.call(op="PUT", queue="q", body=1)
        await c.call(op="GET", queue="q", lease=600)
        assert await c.line("QUIT") == {"ok": True}
        assert await closed_by_server(c)
        got = await other.call(op="GET", queue="q", wait=5)
        assert got["messages"][0]["attempts"] == 2


@one_backend  # its brokers are processes
@one_loop
async def test_cli_serve_prints_ready_line_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    async with await BrokerProcess.start_with(tmp_path / "broker.log") as broker:
        assert broker.host == "127.0.0.1"
        async with await LineClient.connect(broker.port) as c:
            await c.send(op="GET", queue="q", wait=60, rid="w")
            assert await c.call(op="PING", rid=1) == {"ok": True, "rid": 1}
            os.kill(broker.pid, signal.SIGTERM)
            assert await c.reply() == {"ok": True, "messages": [], "rid": "w"}
        assert await broker.wait() == 0


@one_backend  # its brokers are processes
@one_loop
async def test_cli_version_and_bad_flags() -> None:
    code, out, _ = await run_python("-m", "broker", "--version")
    assert code == 0 and out.startswith("wonderq ")
    code, _, err = await run_python("-m", "broker", "serve", "--lease", "-1")
    assert code == 2 and "lease" in err


async def test_cancel_ends_only_the_named_waiting_get(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as c,
        await LineClient.connect(server.port) as other,
    ):
        await c.call(op="CONFIG", queue="q", lease=60)  # STATS shows it (a GET makes no queue)
        await c.send(op="GET", queue="q", wait=60, rid="keep")
        await c.send(op="GET", queue="q", wait=60, rid="stop")
        await other.send(op="GET", queue="q", wait=60, rid="stop")  # same rid, other connection
        assert (await other.call(op="PING", rid="p"))["rid"] == "p"
        await c.send(op="CANCEL", get="stop", rid="c")
        assert await c.reply() == {"ok": True, "messages": [], "rid": "stop"}
        assert await c.reply() == {"ok": True, "cancelled": 1, "rid": "c"}
        stats = (await c.call(op="STATS", queue="q"))["queues"]["q"]
        assert stats["waiting_consumers"] == 2  # c's "keep" and other's "stop"
        await c.send(op="PUT", queue="q", body=1, rid="put")
        delivered = await c.reply()
        assert delivered["rid"] == "keep" and delivered["messages"][0]["body"] == 1
        assert (await c.reply())["rid"] == "put"


async def test_cancel_reply_order(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.send(op="GET", queue="q", wait=60, rid=1)
        await c.send(op="CANCEL", get=1, rid=2)
        assert await c.reply() == {"ok": True, "messages": [], "rid": 1}
        assert await c.reply() == {"ok": True, "cancelled": 1, "rid": 2}
        # a message put now is not taken by the cancelled GET
        await c.call(op="PUT", queue="q", body="x")
        info = await c.call(op="STATS", queue="q")
        assert info["queues"]["q"]["ready"] == 1 and info["queues"]["q"]["waiting_consumers"] == 0


async def test_a_message_nacked_right_after_a_cancel_is_not_served_to_the_cancelled_get(
    server: Server,
) -> None:
    """What a stopping worker sends: CANCEL of its waiting GET, then NACK of the message
    in hand, in one write. The NACK comes after the CANCEL, so the released message
    waits for another consumer, its attempt not counted again (on Redis the CANCEL's
    op once reached Redis after the NACK: the GET took the message, attempts 2)."""
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="q", body="held")
        held = (await c.call(op="GET", queue="q"))["messages"][0]
        await c.send(op="GET", queue="q", wait=60, rid="w")
        assert (await c.call(op="PING", rid="p"))["rid"] == "p"  # the GET waits
        await c.send_raw(
            msgspec.json.encode({"op": "CANCEL", "get": "w", "rid": "c"})
            + b"\n"
            + msgspec.json.encode({"op": "NACK", "id": held["id"], "rid": "n"})
            + b"\n"
        )
        assert await c.reply() == {"ok": True, "messages": [], "rid": "w"}
        assert await c.reply() == {"ok": True, "cancelled": 1, "rid": "c"}
        assert (await c.reply())["rid"] == "n"
        info = (await c.call(op="INFO", id=held["id"]))["message"]
        assert (info["state"], info["attempts"]) == ("ready", 1)


async def test_nothing_after_quit_in_the_same_read_is_applied(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as c,
        await LineClient.connect(server.port) as other,
    ):
        await c.send_raw(b'QUIT\n{"op":"PUT","queue":"q","body":1}\n')
        assert await c.reply() == {"ok": True}
        assert await closed_by_server(c)
        assert await other.call(op="QUEUES") == {"ok": True, "queues": []}
