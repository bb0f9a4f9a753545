"""The server under hostile input: a corpus of nasty lines, random garbage and floods.
Every line gets an answer (or the one connection is closed) and a well-behaved
second client sees no change.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from broker.protocol.framing import LineFramer
from tests.conftest import ServerFactory
from tests.protocol.hostile import CODES, nasty_lines, random_garbage, wrong_type_lines
from tests.support import LineClient


async def _replies_until(c: LineClient, rid: str, bound: int) -> list[dict[str, Any]]:
    """Read replies until the one with ``rid`` (at most ``bound`` replies)."""
    out: list[dict[str, Any]] = []
    for _ in range(bound):
        reply = await c.reply(timeout=20)
        out.append(reply)
        if reply.get("rid") == rid:
            return out
    raise AssertionError(f"no reply with rid {rid!r} within {bound} replies")


def _assert_well_formed(reply: dict[str, Any]) -> None:
    assert isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        assert reply["error"] in CODES, reply
        assert isinstance(reply["message"], str) and reply["message"], reply


async def _hostile_session(port: int, lines: list[bytes], chunk: int, max_line: int) -> None:
    async with (
        await LineClient.connect(port) as bad,
        await LineClient.connect(port) as good,
    ):
        assert (await good.call(op="PUT", queue="calm", body="kept"))["ok"] is True
        data = b"\n".join(lines) + b'\n{"op":"PING","rid":"sentinel"}\n'
        sender = asyncio.ensure_future(_send_in_chunks(bad, data, chunk))
        replies = await _replies_until(bad, "sentinel", bound=len(data))
        await sender
        for reply in replies:
            _assert_well_formed(reply)
        # exactly one reply per line (blank lines get none)
        assert len(replies) == len(LineFramer(max_line).feed(data))
        assert replies[-1] == {"ok": True, "rid": "sentinel"}
        # the bystander sees no change
        got = await good.call(op="GET", queue="calm")
        assert [m["body"] for m in got["messages"]] == ["kept"]
        assert await good.call(op="PING", rid=1) == {"ok": True, "rid": 1}


async def _send_in_chunks(c: LineClient, data: bytes, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        c.writer.write(data[i : i + chunk])
        await c.writer.drain()


@pytest.mark.parametrize("chunk", [1 << 20, 4096, 7])
async def test_server_answers_every_hostile_line(server_factory: ServerFactory, chunk: int) -> None:
    max_line = 8192
    lines = nasty_lines(max_line) + wrong_type_lines() + random_garbage(seed=chunk, n=300)
    if chunk < 100:  # byte-trickling the 100k-deep lines is slow and adds nothing
        lines = [line for line in lines if len(line) < 2 * max_line]
    async with server_factory(max_line=max_line) as srv:
        await _hostile_session(srv.port, lines, chunk, max_line)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(20))
async def test_server_hostile_long_run(server_factory: ServerFactory, seed: int) -> None:
    async with server_factory(max_line=8192) as srv:
        lines = random_garbage(seed=1000 + seed, n=5000) + nasty_lines(8192)
        random.Random(seed).shuffle(lines)
        await _hostile_session(srv.port, lines, random.Random(seed).randrange(1, 9000), 8192)


@pytest.mark.load
async def test_flood_of_tiny_requests_leaves_others_served(server_factory: ServerFactory) -> None:
    n = 50_000
    async with (
        server_factory() as srv,
        await LineClient.connect(srv.port) as flood,
        await LineClient.connect(srv.port) as good,
    ):
        flood.writer.write(b"\n" * 100_000 + b"PING\n" * n)
        sender = asyncio.ensure_future(flood.writer.drain())
        # while the flood is being served, the other client is answered
        for i in range(20):
            assert (await good.call(op="PUT", queue="g", body=i, rid=i))["rid"] == i
        for _ in range(n):
            assert await flood.reply(timeout=20) == {"ok": True}
        await sender
        assert (await good.call(op="STATS", queue="g"))["queues"]["g"]["put"] == 20
