"""A graceful stop (SIGTERM, SIGINT) never loses a reply that said ``ok``.

A client keeps pipelining PUTs and ACKs while the broker is told to stop. Every
reply it gets is either ``ok`` (applied, and after a restart on the same data
directory still applied: the PUT's message is there, the ACK's message stays
gone) or ``shutting_down`` (not applied); once one request is refused, every
later one is; requests the broker never answered were not applied either (the
message count after the restart is exact). A GET waiting on another connection
gets its reply. The broker exits 0. For every fsync mode, and in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.durability.broker_process import BrokerProcess
from tests.support import LineClient

PRE = 300  # messages leased before the stop, for the ACKs to delete
WINDOW = 32  # requests in flight
REPLIES_BEFORE_STOP = 400
RUN_LIMIT_S = 30.0  # the whole exchange, a hang guard (the stop itself takes ~1 s)
EXIT_LIMIT_S = 15.0


@dataclass
class Outcome:
    put_ok: list[str] = field(default_factory=list)
    acked_ok: list[str] = field(default_factory=list)
    refused: int = 0  # replies `shutting_down`
    ok_after_refusal: list[dict[str, Any]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    replies: int = 0


def _requests(leased: list[str]) -> Iterator[tuple[str, bytes]]:
    """PUTs, with an ACK of a leased message after every other PUT (bounded)."""
    for i in range(200_000):
        yield f"p{i}", msgspec.json.encode({"op": "PUT", "queue": "q", "body": i, "rid": f"p{i}"})
        if i % 2 and leased:
            mid = leased.pop()
            yield f"a{mid}", msgspec.json.encode({"op": "ACK", "id": mid, "rid": f"a{mid}"})


async def _keep_writing(client: LineClient, leased: list[str], stop_now: asyncio.Event) -> Outcome:
    """Pipeline requests until the broker closes the connection; record every reply."""
    out = Outcome()
    in_flight = asyncio.Semaphore(WINDOW)

    async def send() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for _, line in _requests(leased):
                await in_flight.acquire()
                client.writer.write(line + b"\n")
                await client.writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            line = await client.reader.readline()
            if not line:
                break  # EOF: the broker half-closed
            reply = msgspec.json.decode(line)
            in_flight.release()
            out.replies += 1
            if out.replies == REPLIES_BEFORE_STOP:
                stop_now.set()
            rid = reply.get("rid", "")
            if reply.get("ok"):
                if out.refused:
                    out.ok_after_refusal.append(reply)
                if rid.startswith("p"):
                    out.put_ok.append(reply["id"])
                else:
                    out.acked_ok.append(rid[1:])
            elif reply.get("error") == "shutting_down":
                out.refused += 1
            else:
                out.others.append(reply)
    except ConnectionError:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return out


async def _check_restart(broker: BrokerProcess, out: Outcome) -> None:
    async with await LineClient.connect(broker.port) as c:
        for mid in out.put_ok:
            info = await c.call(op="INFO", id=mid)
            assert info["ok"] and info["message"]["state"] == "ready", (mid, info)
        for mid in out.acked_ok:
            info = await c.call(op="INFO", id=mid)
            assert info.get("error") == "not_found", f"{mid} was acked with ok and came back"
        held = (await c.call(op="STATS"))["server"]["messages"]
    # exact: nothing answered `shutting_down` (or never answered) was applied
    assert held == len(out.put_ok) + PRE - len(out.acked_ok)


@pytest.mark.parametrize(
    ("fsync", "sig"),
    [
        ("always", signal.SIGTERM),
        ("everysec", signal.SIGTERM),
        ("no", signal.SIGTERM),
        ("everysec", signal.SIGINT),
        (None, signal.SIGTERM),  # in memory
        (None, signal.SIGINT),
    ],
)
async def test_a_stop_loses_no_reply_that_said_ok(
    tmp_path: Path, fsync: str | None, sig: signal.Signals
) -> None:
    data = tmp_path / "data"
    durable = ("--data-dir", str(data), "--fsync", fsync) if fsync else ()
    broker = await BrokerProcess.start_with(tmp_path / "broker.log", *durable)
    try:
        async with asyncio.timeout(RUN_LIMIT_S):
            async with (
                await LineClient.connect(broker.port) as writer,
                await LineClient.connect(broker.port) as waiter,
            ):
                await writer.call(op="PUT", queue="q", messages=[{"body": i} for i in range(PRE)])
                got = await writer.call(op="GET", queue="q", max=PRE, lease=600)
                leased = [m["id"] for m in got["messages"]]
                assert len(leased) == PRE
                await waiter.send(op="GET", queue="idle", wait=60, rid="w")
                stop_now = asyncio.Event()
                writing = asyncio.create_task(_keep_writing(writer, leased, stop_now))
                await stop_now.wait()
                broker.proc.send_signal(sig)
                out = await writing
                woke = await waiter.reply()
                assert woke == {"ok": True, "messages": [], "rid": "w"}
                assert await waiter.reader.readline() == b""  # then EOF
        async with asyncio.timeout(EXIT_LIMIT_S):
            assert await broker.proc.wait() == 0
    finally:
        await broker.kill()
    log = (tmp_path / "broker.log").read_text()
    assert "Traceback" not in log, log
    assert out.others == [], out.others
    assert out.ok_after_refusal == [], "a request was applied after another was refused"
    assert out.refused > 0, "the client kept writing, so some requests met the stop"
    assert len(out.put_ok) + len(out.acked_ok) >= REPLIES_BEFORE_STOP - 2
    if fsync is None:
        return
    again = await BrokerProcess.start(data)
    try:
        await _check_restart(again, out)
    finally:
        await again.stop()
