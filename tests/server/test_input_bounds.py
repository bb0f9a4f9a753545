"""Input bounded before it is trusted, and connections taking turns (over real TCP).

Rows 15, 16 and 8 of issue 18: the line limit before AUTH, the budget of
unfinished lines over all connections, and one busy connection yielding to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import pytest

from broker.server import Server
from broker.server import batches as batches_module
from tests.conftest import ServerFactory
from tests.support import LineClient, closed_by_server

TOKEN = "input-bounds-token-0123"
KIB = 1024


async def _until(check: Callable[[], bool], probe: LineClient, rounds: int = 50) -> None:
    """Round trips on ``probe`` (each lets the server run its callbacks) until ``check``."""
    for _ in range(rounds):
        if check():
            return
        assert await probe.call(op="PING") == {"ok": True}
    raise AssertionError("the server never got there")


# ------------------------------------------------------- before AUTH (row 16)


async def test_a_line_past_the_limit_before_auth_is_refused_unread(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(token=TOKEN) as srv, await LineClient.connect(srv.port) as c:
        limit = srv.config.max_line_unauthenticated
        long_put = msgspec.json.encode({"op": "PUT", "queue": "q", "body": "x" * limit, "rid": 1})
        first = await c.line(long_put + b"\n" + msgspec.json.encode({"op": "AUTH", "token": TOKEN}))
        assert first["error"] == "line_too_long" and "rid" not in first  # never decoded
        assert f"before AUTH ({limit} bytes)" in first["message"]
        assert "closing the connection" in first["message"]
        # closed at once: the AUTH sent behind it is not read
        assert await closed_by_server(c)
    async with server_factory(token=TOKEN) as srv, await LineClient.connect(srv.port) as c:
        first = await c.line(b"x" * (limit + 1))  # one byte past it, not JSON
        assert first["error"] == "line_too_long" and "closing" in first["message"]
        assert await closed_by_server(c)


async def test_a_line_at_the_limit_before_auth_is_read(server_factory: ServerFactory) -> None:
    async with server_factory(token=TOKEN) as srv, await LineClient.connect(srv.port) as c:
        limit = srv.config.max_line_unauthenticated
        auth = msgspec.json.encode({"op": "AUTH", "token": TOKEN, "rid": "r"})
        padded = auth[:-1] + b" " * (limit - len(auth)) + b"}"  # exactly the limit
        assert len(padded) == limit
        assert await c.line(padded) == {"ok": True, "rid": "r"}
        assert await c.call(op="PING") == {"ok": True}


async def test_an_unfinished_line_before_auth_is_dropped_at_the_limit(
    server_factory: ServerFactory,
) -> None:
    """Half a line never sent in full: dropped as soon as it passes the limit, not held,
    and the connection closed (the rest of it is never read)."""
    async with server_factory(token=TOKEN) as srv, await LineClient.connect(srv.port) as c:
        limit = srv.config.max_line_unauthenticated
        await c.send_raw(b"y" * (limit + KIB))  # no newline
        refusal = await c.reply()
        assert refusal["error"] == "line_too_long" and "before AUTH" in refusal["message"]
        assert await closed_by_server(c)
        assert srv.buffered == 0


async def test_after_auth_in_the_same_write_long_lines_are_allowed(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(token=TOKEN) as srv, await LineClient.connect(srv.port) as c:
        body = "z" * (100 * KIB)
        await c.send_raw(
            msgspec.json.encode({"op": "AUTH", "token": TOKEN})
            + b"\n"
            + msgspec.json.encode({"op": "PUT", "queue": "big", "body": body})
            + b"\nPING\n"
        )
        assert await c.reply() == {"ok": True}
        assert (await c.reply())["ok"] is True
        assert await c.reply() == {"ok": True}
        got = await c.call(op="GET", queue="big")
        assert got["messages"][0]["body"] == body


# ------------------------------------------- the budget of unfinished lines (row 15)


async def test_the_connection_that_would_pass_max_buffered_is_closed_not_the_others(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(max_buffered=64 * KIB) as srv:
        holder = await LineClient.connect(srv.port)
        late = await LineClient.connect(srv.port)
        probe = await LineClient.connect(srv.port)
        try:
            # PING first: its reply says the read that holds the partial line was handled
            await holder.send_raw(b"PING\n" + b"[" * (40 * KIB))
            assert await holder.reply() == {"ok": True}
            assert srv.buffered == 40 * KIB
            await late.send_raw(b"PING\n" + b"[" * (30 * KIB))
            assert await late.reply() == {"ok": True}
            refusal = await late.reply()
            assert refusal["error"] == "unavailable"
            assert "max-buffered" in refusal["message"] and str(64 * KIB) in refusal["message"]
            assert await closed_by_server(late)
            assert srv.buffer_refusals == 1 and srv.buffered == 40 * KIB
            # the holder goes on: its line ends (not JSON), then it is an ordinary client
            assert (await holder.line(b"]"))["error"] == "bad_json"
            assert await holder.call(op="PING") == {"ok": True}
            assert srv.buffered == 0
            # what a closed connection held is given back
            await holder.send_raw(b"PING\n" + b"[" * (50 * KIB))
            assert await holder.reply() == {"ok": True}
            assert srv.buffered == 50 * KIB
            await holder.close()
            await _until(lambda: srv.buffered == 0, probe)
        finally:
            for c in (holder, late, probe):
                await c.close()


# ------------------------------------------------------------- turns (row 8)


@pytest.fixture
def every_batch_ends_a_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn of no time: a connection yields after each batch (the mechanism, untimed)."""
    monkeypatch.setattr(batches_module, "TURN_S", 0.0)


@pytest.mark.usefixtures("every_batch_ends_a_turn")
async def test_a_flooding_connection_lets_another_in_between_its_batches(server: Server) -> None:
    """The flood's lines all arrive before the other client's one PUT; taking turns, that
    PUT lands after a few of the flood's batches, not after all of them."""
    flood_lines = 2000
    async with (
        await LineClient.connect(server.port) as flood,
        await LineClient.connect(server.port) as other,
    ):
        line = b'{"op":"PUT","queue":"turns","body":"f"}\n'
        await flood.send_raw(line * flood_lines)
        await other.send_raw(b'{"op":"PUT","queue":"turns","body":"other"}\n')
        assert (await other.reply())["ok"] is True
        for _ in range(flood_lines):
            assert (await flood.reply())["ok"] is True
        bodies: list[str] = []
        while len(bodies) < flood_lines + 1:
            got = await other.call(op="GET", queue="turns", max=1000, lease=60)
            bodies += [m["body"] for m in got["messages"]]
        position = bodies.index("other")
        assert position < flood_lines // 2, f"the other client waited for {position} lines"


@pytest.mark.usefixtures("every_batch_ends_a_turn")
async def test_taking_turns_keeps_replies_in_order(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.send_raw(b"".join(b'{"op":"PING","rid":%d}\n' % i for i in range(500)))
        for i in range(500):
            assert await c.reply() == {"ok": True, "rid": i}


async def test_a_batch_of_big_lines_is_cut_by_bytes() -> None:
    frames = [b"x" * 20_000] * 10
    assert batches_module._lines_within(frames, batches_module.BATCH_BYTES) == 3
    assert batches_module._lines_within([b"x" * 100_000], 64 * KIB) == 1  # at least one


async def test_a_waiting_get_survives_a_turn(server: Server) -> None:
    """A yield between batches leaves a waiting GET waiting, served by a later PUT."""
    async with (
        await LineClient.connect(server.port) as consumer,
        await LineClient.connect(server.port) as producer,
    ):
        await consumer.send_raw(
            b'{"op":"GET","queue":"w","wait":30,"rid":"g"}\n'
            + b"".join(b'{"op":"PING","rid":%d}\n' % i for i in range(100))
        )
        for i in range(100):
            assert await consumer.reply() == {"ok": True, "rid": i}
        assert (await producer.call(op="PUT", queue="w", body="late"))["ok"] is True
        delivered = await consumer.reply()
        assert delivered["rid"] == "g" and delivered["messages"][0]["body"] == "late"
        assert asyncio.get_running_loop().is_running()
