"""A client that never reads its replies cannot grow the server's memory, even
when each tiny request has a large reply (STATS with many queues)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from broker.server import Server
from broker.server.connection import BATCH_LINES
from tests.conftest import ServerFactory
from tests.support import LineClient, offer_until_unread

HIGH_WATER = 64 * 1024


async def _make_queues(port: int, n: int) -> int:
    """Create n queues; return the size of one STATS reply."""
    async with await LineClient.connect(port) as c:
        await c.send_raw(
            b"".join(b'{"op":"PUT","queue":"queue-number-%d","body":1}\n' % i for i in range(n))
        )
        for _ in range(n):
            await c.reply()
        await c.send_raw(b"STATS\n")
        line = await c.reader.readline()
        return len(line)


@pytest.mark.load  # thousands of STATS of 200 queues: a call per queue on Redis
async def test_tiny_requests_with_huge_replies_stay_bounded(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(write_high_water=HIGH_WATER, write_low_water=16 * 1024) as srv:
        reply_size = await _make_queues(srv.port, 200)
        assert reply_size > 30_000  # each 6-byte request asks for that much
        _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            # bounded: at most 500 x 60 kB offered
            offered = await offer_until_unread(writer, b"STATS\n" * 10_000, max_chunks=500)
            conn = next(c for c in srv.connections if c.requests_served > 0)
            assert conn.transport is not None and not conn.transport.is_reading()
            buffered = conn.transport.get_write_buffer_size()
            # the high-water mark plus one batch, not offered/6 replies of reply_size each
            assert buffered <= HIGH_WATER + (BATCH_LINES + 1) * reply_size, buffered
            assert offered // 6 * reply_size > 100 * buffered
            async with await LineClient.connect(srv.port) as other:
                assert await other.call(op="PING") == {"ok": True}
        finally:
            writer.transport.abort()


@pytest.mark.load  # 1,500 STATS of 50 queues
async def test_slow_reader_gets_every_reply_in_order(server_factory: ServerFactory) -> None:
    """Pausing mid-read keeps the unread lines and runs them, in order, once drained."""
    async with server_factory(write_high_water=HIGH_WATER, write_low_water=16 * 1024) as srv:
        await _make_queues(srv.port, 50)
        async with await LineClient.connect(srv.port) as c:
            n = 1500
            await c.send_raw(
                b"".join(b'STATS\n{"op":"PING","rid":%d}\n' % i for i in range(n)) + b"QUIT\nPING\n"
            )
            for i in range(n):
                stats = await c.reply()
                assert stats["ok"] is True and len(stats["queues"]) == 50
                assert await c.reply() == {"ok": True, "rid": i}
            assert await c.reply() == {"ok": True}  # QUIT; the PING after it never runs
            assert await c.reader.read() == b""


async def test_pending_lines_survive_a_waiting_get(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.send_raw(
            b'{"op":"GET","queue":"w","wait":30,"rid":"w"}\n'
            + b"".join(
                b'{"op":"PUT","queue":"x","body":%d,"rid":%d}\n' % (i, i) for i in range(200)
            )
            + b'{"op":"PUT","queue":"w","body":"wake","rid":"p"}\n'
        )
        replies = [await c.reply() for _ in range(202)]
        # the waiting GET's reply may come as soon as it completes; the rest keep order
        assert [r["rid"] for r in replies if r["rid"] != "w"] == [*range(200), "p"]
        (woken,) = [r for r in replies if r["rid"] == "w"]
        assert woken["messages"][0]["body"] == "wake"


@pytest.mark.memory_only("Redis serves waiting GETs in its calls; a node does not hold them back")
async def test_waiting_gets_of_a_client_that_does_not_read_leave_messages_to_others(
    server_factory: ServerFactory,
) -> None:
    body = "x" * 10_000
    async with server_factory(write_high_water=HIGH_WATER, write_low_water=16 * 1024) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.sendall(
                b"".join(
                    b'{"op":"GET","queue":"q","max":100,"wait":60,"lease":600,"rid":%d}\n' % i
                    for i in range(200)
                )
            )
            async with await LineClient.connect(srv.port) as producer:
                for _ in range(1000):  # until its 200 GETs wait (they are in its first read)
                    stats = await producer.call(op="STATS", connections=True)
                    if sum(c["waiting"] for c in stats["connections"]) == 200:
                        break
                for _ in range(40):  # 40 x 50 x 10 kB: 20 MB, far past any socket buffer
                    reply = await producer.call(op="PUT", queue="q", messages=[{"body": body}] * 50)
                    assert reply["ok"] is True
                figures = (await producer.call(op="STATS", queue="q"))["queues"]["q"]
                # what its waiting GETs took fits its buffers, not 20 MB; the rest is ready
                assert figures["leased"] * len(body) < 8_000_000, figures
                assert figures["ready"] >= 1000
                got = await producer.call(op="GET", queue="q", max=10)
                assert len(got["messages"]) == 10  # another consumer gets them
        finally:
            sock.close()
