"""The graceful stop, in process: refusals, owed replies, half-close, bounded time."""

from __future__ import annotations

import asyncio

import pytest

from broker.config import Config
from broker.server import Server
from tests.conftest import one_backend
from tests.support import LineClient

#: every test builds its own in-memory Server: the backend parameter reaches none of them
pytestmark = one_backend

STOP_LIMIT_S = 10.0  # a hang guard: a stop takes about QUIET_S, or DRAIN_MAX_S + CLOSE_S at worst


async def _started(**overrides: object) -> Server:
    server = Server(Config(host="127.0.0.1", port=0, **overrides))  # type: ignore[arg-type]
    await server.start()
    return server


async def test_a_stop_answers_waiting_gets_refuses_new_requests_then_sends_eof() -> None:
    server = await _started()
    async with (
        await LineClient.connect(server.port) as waiter,
        await LineClient.connect(server.port) as other,
    ):
        await waiter.send(op="GET", queue="q", wait=60, rid="w")
        assert await other.call(op="PING") == {"ok": True}  # the GET is waiting by now
        stopping = asyncio.create_task(server.close())
        assert await waiter.reply() == {"ok": True, "messages": [], "rid": "w"}
        refused = await other.call(op="PUT", queue="q", body=1, rid=1)
        assert refused["error"] == "shutting_down" and refused["rid"] == 1
        assert "not applied" in refused["message"]
        # quiet now: each connection is half-closed (EOF), its replies all sent
        assert await other.reader.readline() == b""
        assert await waiter.reader.readline() == b""
    async with asyncio.timeout(STOP_LIMIT_S):
        await stopping
    assert server.connections == set()


async def test_replies_to_a_pipelined_burst_all_arrive_before_the_eof() -> None:
    server = await _started()
    async with await LineClient.connect(server.port) as c:
        burst = b"".join(
            b'{"op":"PUT","queue":"q","body":%d,"rid":%d}\n' % (i, i) for i in range(2000)
        )
        await c.send_raw(burst)
        stopping = asyncio.create_task(server.close())
        replies = []
        while line := await c.reader.readline():
            replies.append(line)
        # every line the server read got a reply; applied ones first, refusals after
        codes = [b'"ok":true' in r for r in replies]
        assert codes == sorted(codes, reverse=True)
        assert len(replies) == 2000
    async with asyncio.timeout(STOP_LIMIT_S):
        await stopping


@pytest.mark.usefixtures("quick_stop")  # its peer never closes
async def test_a_peer_that_never_closes_is_aborted_and_the_stop_ends() -> None:
    server = await _started()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"PING\n")
    assert await reader.readline() == b'{"ok":true}\n'
    async with asyncio.timeout(STOP_LIMIT_S):
        await server.close()  # the peer reads its EOF but keeps its socket open
    assert await reader.read() == b""
    writer.close()


async def test_a_second_close_is_a_no_op() -> None:
    server = await _started()
    await server.close()
    await server.close()
