"""The server's hot path in-process, next to the floor's: PUT, GET and ACK as the bench sends them.

No sockets: one recording transport per connection stands in for the socket, so
what is measured is the Python work between a read and its write, WonderQ's
(connection, codec, auth gate, memory backend, engine, reply encoding) and the
floor's (``broker/bench/floor.py``), on the very same bytes. Each round feeds
``-n`` messages as the bench's modes do: ``rr`` one line per read (a PUT, then
a waiting GET, then the ACK of the id its reply named), ``pipe`` 64 lines per
read (64 PUTs, 64 waiting GETs, 64 ACKs). The two servers take turns, round
after round, and each prints its best round in microseconds per message (the
three requests together) and WonderQ's ratio to the floor. ``batch`` sends one
PUT of 64 messages, a waiting ``GET`` of ``max`` 64 and one ``ACK`` of their 64 ids
per read, as the bench's ``batch`` mode does. The cyclic collector
runs as ``wonderq serve`` sets it (``broker/server/collector.py``). Syscalls and the
event loop's own work are not in these figures: ``wonderq bench --compare floor``
has them, and both servers pay them alike.

Compare two trees (the machine is shared: compare ratios), from a directory that
is not a tree: ``PYTHONPATH=TREE .venv/bin/python bench/hot_path.py [-n N] [--rounds R]``.
``--profile MODE`` runs WonderQ alone under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import time
from collections.abc import Callable

from connection_micro import RecordingTransport  # this script's directory

from broker.bench.floor import Floor, _State
from broker.config import Config
from broker.server import collector, loop
from broker.server.connection import Connection
from broker.server.server import Server

BODY = b'"' + b"x" * 98 + b'"'  # 100 bytes, as the bench's default
PUT = b'{"op":"PUT","queue":"bench","body":' + BODY + b"}\n"
GET = b'{"op":"GET","queue":"bench","max":1,"wait":1}\n'
K = 64  # messages per request in the batch mode
PUT_MANY = (
    b'{"op":"PUT","queue":"bench","messages":[{"body":' + b'},{"body":'.join([BODY] * K) + b"}]}\n"
)
GET_MANY = b'{"op":"GET","queue":"bench","max":%d,"wait":1}\n' % K
_ID = re.compile(rb'"id":"([^"]+)"')


class Recorder(RecordingTransport):
    """connection_micro's transport, keeping what is written (to read the ids back)."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def take(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data


Feed = Callable[[bytes, Recorder], None]


def drive(feed: Feed, n: int, per_read: int) -> float:
    """CPU seconds to put, get and ack ``n`` messages, ``per_read`` lines per read, or
    (``per_read`` 0) ``K`` messages per request (this process's CPU time: time the
    machine gave other processes is not counted)."""
    if per_read == 0:
        return drive_batch(feed, n)
    producer, consumer = Recorder(), Recorder()
    t0 = time.process_time()
    for _ in range(n // per_read):
        feed(PUT * per_read, producer)
        producer.take()
        feed(GET * per_read, consumer)
        ids = _ID.findall(consumer.take())
        assert len(ids) == per_read, ids
        feed(b"".join(b'{"op":"ACK","id":"' + i + b'"}\n' for i in ids), consumer)
        assert consumer.take().count(b'"ok":true') == per_read
    return time.process_time() - t0


def drive_batch(feed: Feed, n: int) -> float:
    """``drive`` with one PUT, one GET and one ACK of ``K`` messages each per read."""
    producer, consumer = Recorder(), Recorder()
    t0 = time.process_time()
    for _ in range(n // K):
        feed(PUT_MANY, producer)
        producer.take()
        feed(GET_MANY, consumer)
        ids = _ID.findall(consumer.take())
        assert len(ids) == K, ids
        feed(b'{"op":"ACK","ids":["' + b'","'.join(ids) + b'"]}\n', consumer)
        assert consumer.take().startswith(b'{"ok":true,"acked":%d,' % K)
    return time.process_time() - t0


def _floor() -> Feed:
    state = _State()
    conns: dict[int, Floor] = {}

    def feed(data: bytes, transport: Recorder) -> None:
        conn = conns.get(id(transport))
        if conn is None:
            conn = conns[id(transport)] = Floor(state)
            conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(data)

    return feed


def _wonderq(server: Server, conns: dict[int, Connection]) -> Feed:

    def feed(data: bytes, transport: Recorder) -> None:
        conn = conns.get(id(transport))
        if conn is None:
            conn = conns[id(transport)] = Connection(server, server.backend)
            conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(data)
        while not transport.reading:  # it yielded its turn (5 ms): end the turn now
            conn._end_turn()

    return feed


async def run(n: int, rounds: int, profile: str | None) -> None:
    server = Server(Config(host="127.0.0.1", port=0))
    await server.start()
    modes = {"rr": 1, "pipe": 64, "batch": 0}
    best: dict[tuple[str, str], float] = {}
    conns: dict[int, Connection] = {}
    collector.freeze_survivors()  # the collector's policy of ``wonderq serve``
    collector.space_young_collections()
    try:
        if profile is not None:
            prof = cProfile.Profile()
            prof.runcall(drive, _wonderq(server, conns), n, modes[profile])
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return
        for _ in range(rounds):
            for mode, per_read in modes.items():
                for name in ("wonderq", "floor"):
                    feed = _wonderq(server, conns) if name == "wonderq" else _floor()
                    us = drive(feed, n, per_read) / n * 1e6
                    best[mode, name] = min(best.get((mode, name), us), us)
                    for conn in conns.values():
                        conn.connection_lost(None)
                    conns.clear()
    finally:
        for conn in conns.values():
            conn.connection_lost(None)
        await server.close()
    for mode in modes:
        wq, fl = best[mode, "wonderq"], best[mode, "floor"]
        print(f"{mode:5} wonderq {wq:6.2f} us/msg  floor {fl:6.2f} us/msg  x floor {wq / fl:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=6400, help="messages per round and mode")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=("rr", "pipe", "batch"), default=None)
    args = parser.parse_args()
    loop.run(run(args.n, args.rounds, args.profile))  # uvloop, as the server runs


if __name__ == "__main__":
    main()
