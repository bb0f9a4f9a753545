"""One connection, many concurrent calls: pipelined requests, rid matching, coalesced writes, flow control."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

import wonderq
from wonderq.connection import Connection

N = 1000


class _WriteSpy:
    """Stands in for a transport, recording each write."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_concurrent_puts_are_pipelined_not_serialised(fake_server: Any) -> None:
    # This server answers nothing until it has read all N requests: a client
    # that waited for each reply before sending the next request would hang.
    async def handler(conn: Any) -> None:
        requests = await conn.requests(N)
        for request in reversed(requests):  # and answers them backwards
            conn.reply(request, id=f"id-{request['body']}")
        await conn.reader.read()

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        async with asyncio.timeout(10):
            ids = await asyncio.gather(*(c.put("jobs", n) for n in range(N)))
    assert ids == [f"id-{n}" for n in range(N)]


async def test_many_concurrent_calls_on_a_real_server_get_their_own_replies(
    client: wonderq.AsyncClient,
) -> None:
    async with asyncio.timeout(20):
        ids = await asyncio.gather(*(client.put("jobs", {"n": n}) for n in range(N)))
        assert len(set(ids)) == N
        infos = await asyncio.gather(*(client.info(i) for i in ids))
    assert [info.body for info in infos] == [{"n": n} for n in range(N)]
    assert [info.id for info in infos] == ids


async def test_calls_made_in_one_loop_iteration_go_out_in_one_write(
    client: wonderq.AsyncClient,
) -> None:
    conn = client._conn
    assert isinstance(conn, Connection) and conn._transport is not None
    real = conn._transport
    spy = _WriteSpy(real)
    conn._transport = spy  # type: ignore[assignment]
    try:
        await asyncio.gather(*(client.ping() for _ in range(100)))
    finally:
        conn._transport = real
    writes = spy.writes
    assert len(writes) == 1
    assert writes[0].count(b"\n") == 100


async def test_a_waiting_get_does_not_hold_up_acks_on_the_same_connection(
    client: wonderq.AsyncClient,
) -> None:
    await client.put("work", "a")
    [message] = await client.get("work", lease=30)
    waiting = asyncio.create_task(client.get("empty", wait=30))
    try:
        async with asyncio.timeout(5):  # far less than the GET's wait
            await message.ack()
            await client.ping()
            assert (await client.info(message.id)).state == wonderq.MessageState.ACKED
        assert not waiting.done()
        await client.put("empty", "wake up")
        async with asyncio.timeout(5):
            [woken] = await waiting
        assert woken.body == "wake up"
    finally:
        waiting.cancel()


async def test_a_paused_transport_holds_new_calls_until_it_resumes(fake_server: Any) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handler(conn: Any) -> None:
        while True:
            request = await conn.request()
            received.put_nowait(request)
            conn.reply(request)

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        conn = c._conn
        assert isinstance(conn, Connection)
        conn.pause_writing()
        held = asyncio.create_task(c.ping())
        await asyncio.sleep(0)  # one step: it runs up to where it parks
        assert not held.done()
        assert conn._core.unanswered == 0  # parked before queueing anything
        conn.resume_writing()
        async with asyncio.timeout(5):
            await held
            assert (await received.get())["op"] == "PING"


async def test_cancelled_call_leaves_the_connection_usable(fake_server: Any) -> None:
    release = asyncio.Event()
    seen: list[tuple[str, object]] = []
    all_seen = asyncio.Event()

    async def handler(conn: Any) -> None:
        two = {r["op"]: r for r in await conn.requests(2)}
        seen.append(("GET", two["GET"]["rid"]))
        conn.reply(two["PING"])  # a waiting GET may be answered late, out of order
        await release.wait()
        late = [{"id": "m1", "queue": "q", "body": 1, "attempts": 1}]
        conn.reply(two["GET"], messages=late)  # as if it got m1 just before the CANCEL
        for request in await conn.requests(3):  # the CANCEL, the second PING, the NACK
            conn.reply(request, **({"cancelled": 0} if request["op"] == "CANCEL" else {}))
            seen.append((request["op"], request.get("id", request.get("get"))))
        all_seen.set()
        await conn.reader.read()

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        first = asyncio.create_task(c.get("q", wait=60))
        await c.ping()
        first.cancel()
        release.set()  # its late reply must be dropped, not matched to the next call
        async with asyncio.timeout(5):
            await c.ping()
            await all_seen.wait()
        assert first.cancelled()
        # the GET is cancelled on the server, and the message that reached
        # the GET nobody waited for is given back
        (_, get_rid), *rest = seen
        assert sorted(rest, key=str) == [("CANCEL", get_rid), ("NACK", "m1"), ("PING", None)]


async def test_a_get_cancelled_after_its_reply_came_releases_what_it_got(
    fake_server: Any,
) -> None:
    loop = asyncio.get_running_loop()
    got_get: asyncio.Future[dict[str, Any]] = loop.create_future()
    requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handler(conn: Any) -> None:
        got_get.set_result(await conn.request())  # never answered over the socket
        while True:
            request = await conn.request()
            await requests.put(request)
            conn.reply(request)

    async with fake_server(handler) as port, await wonderq.connect("127.0.0.1", port) as c:
        assert c._conn is not None
        first = asyncio.create_task(c.get("q", wait=60))
        async with asyncio.timeout(5):
            get = await got_get
            # Its reply arrives, and in the same loop step, before the call reads
            # it, the caller gives up: what the reply leased must not be lost.
            wire = {"id": "m1", "queue": "q", "body": 1, "attempts": 1}
            c._conn.data_received(
                msgspec.json.encode({"ok": True, "messages": [wire], "rid": get["rid"]}) + b"\n"
            )
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            nack = await requests.get()
        assert first.cancelled()
        assert (nack["op"], nack["id"]) == ("NACK", "m1")  # no CANCEL: the GET had ended
