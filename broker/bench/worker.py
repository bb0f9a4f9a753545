"""A load process: runs one ``Share`` of a bench run, told what to do by the parent.

Owns: the frames the parent (``fleet``) and a load process exchange over the
process's stdin and stdout (length-prefixed msgpack), and the load process's
life: read a ``Job``, open its connections (one adapter per producer and
consumer), say ``Ready``; on ``Go`` start its producers and/or consumers;
say ``PutDone`` when its producers are done and ``Done`` (with its ``Tally``)
when everything it was given is acked, or at once on ``Abort``, on an error, or
when the parent goes away (end of stdin). Run: ``python -P -m broker.bench.worker``.
Must never: outlive its parent's pipe, talk to anything but loopback, or write
anything but frames to stdout.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from typing import Any, Final

import msgspec
import uvloop

from broker.bench.adapters import ADAPTERS, Adapter
from broker.bench.http import Http
from broker.bench.where import Where, connect
from broker.bench.workloads import Consumer, Load, Plan, Producer, Share, Tally, producers_of


class Job(msgspec.Struct, tag=True):
    adapter: str
    where: Where
    plan: Plan
    share: Share


class Go(msgspec.Struct, tag=True):
    phase: str  # "put": producers only; "get": consumers only; "all": both


class Abort(msgspec.Struct, tag=True):
    pass


class Ready(msgspec.Struct, tag=True):
    pass


class PutDone(msgspec.Struct, tag=True):
    pass


class Done(msgspec.Struct, tag=True):
    tally: Tally


Frame = Job | Go | Abort | Ready | PutDone | Done

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Frame)
_HEAD: Final = struct.Struct(">I")


def encode(frame: Frame) -> bytes:
    body = _encoder.encode(frame)
    return _HEAD.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None at the end of the stream."""
    try:
        head = await reader.readexactly(_HEAD.size)
        return _decoder.decode(await reader.readexactly(_HEAD.unpack(head)[0]))
    except asyncio.IncompleteReadError:
        return None


def _say(frame: Frame) -> None:
    sys.stdout.buffer.write(encode(frame))
    sys.stdout.buffer.flush()


async def _connect(adapter: str, where: Where, plan: Plan, sink: Any, slot: int) -> Adapter:
    cls = Http if adapter == Http.name else ADAPTERS[adapter]
    queue = plan.queue_of(slot)
    node = where.node(plan.node_of(slot, max(1, len(where.ports))))
    conn = await connect(node, lambda: cls(sink, queue, slot))
    sink.conn = conn
    return conn


async def _obey(
    reader: asyncio.StreamReader,
    producers: list[Producer],
    consumers: list[Consumer],
    stop: asyncio.Future[None],
) -> None:
    """Start what each ``Go`` names; resolve ``stop`` on ``Abort`` or the end of stdin."""
    while True:
        frame = await read_frame(reader)
        if not isinstance(frame, Go):
            stop.set_result(None)
            return
        group: list[Any] = []
        if frame.phase in ("put", "all"):
            group += producers
        if frame.phase in ("get", "all"):
            group += consumers
        for member in group:
            member.begin()


async def _first(*futures: asyncio.Future[None]) -> None:
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)


async def run_job(job: Job, reader: asyncio.StreamReader) -> None:
    """Run one share from ``Ready`` to ``Done``."""
    loop = asyncio.get_running_loop()
    load = Load(job.plan, job.share, loop)
    producers = producers_of(load, job.share)
    consumers = [Consumer(load, quota) for quota, _ in job.share.consumers]
    slots = [slot for *_, slot in job.share.producers] + [slot for _, slot in job.share.consumers]
    conns: list[Adapter] = []
    stop: asyncio.Future[None] = loop.create_future()
    commands: asyncio.Task[None] | None = None
    try:
        for sink, slot in zip([*producers, *consumers], slots, strict=True):
            conns.append(await _connect(job.adapter, job.where, job.plan, sink, slot))
        _say(Ready())
        cpu0 = time.process_time()
        commands = asyncio.create_task(_obey(reader, producers, consumers, stop))
        await _first(load.all_put, stop)
        if not stop.done() and not load.errors:
            _say(PutDone())
            await _first(load.all_acked, stop)
        if stop.done() and not load.errors:
            load.fail("aborted by the bench before every message was acked")
        tally = load.tally(time.process_time() - cpu0)
    finally:
        if commands is not None:
            commands.cancel()
        for prod in producers:
            prod.cancel()
        for conn in conns:
            conn.close()
    _say(Done(tally))


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    job = await read_frame(reader)
    if isinstance(job, Job):
        await run_job(job, reader)


if __name__ == "__main__":
    uvloop.run(_main())
