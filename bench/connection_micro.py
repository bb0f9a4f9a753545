"""The server's hot path in-process: ``Connection.data_received`` of PUT and GET lines.

No sockets: a recording transport stands in for the socket, so what is measured
is the connection, the codec, the memory backend and the engine, per request.
``--work single`` feeds one line per read (a client that waits for each reply),
``--work pipe`` 64 lines per read. Wall-clock figures on a shared machine are
noisy; for a before/after comparison count instructions instead, e.g.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/connection_micro.py --work single -n 6464 --rounds 1

minus the same with ``-n 64``, divided by 2 x 6400 requests. Another checkout
is measured by running this file with ``PYTHONPATH=<its root>`` from outside
this one (``-m`` is not used, so the working directory does not come first).
``--no-turns`` makes a turn endless: under callgrind 5 ms of wall time is a
handful of requests, so turns would be measured instead of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from broker.config import Config
from broker.server import connection as connection_module
from broker.server.connection import Connection
from broker.server.server import Server

PUT = b'{"op":"PUT","queue":"q","body":"' + b"x" * 56 + b'"}\n'
GET = b'{"op":"GET","queue":"q"}\n'


class RecordingTransport:
    """Counts what would be written; reading can be paused and resumed."""

    def __init__(self) -> None:
        self.written = 0
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0  # written at once

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def run(work: str, n: int, rounds: int, config: Config) -> dict[str, float]:
    server = Server(config)
    await server.start()
    transport = RecordingTransport()
    conn = Connection(server, server.backend)
    conn.connection_made(transport)

    async def feed(data: bytes) -> None:
        conn.data_received(data)
        if not transport.reading:  # the connection yielded its turn: let the loop run
            await asyncio.sleep(0)

    lines, per_read = (PUT, GET), (1 if work == "single" else 64)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for line in lines:
            t0 = time.perf_counter()
            for _ in range(n // per_read):
                await feed(line * per_read)
            us = (time.perf_counter() - t0) / (n // per_read * per_read) * 1e6
            name = f"{line[7:10].decode()} x{per_read}"
            best[name] = min(best.get(name, us), us)
    conn.connection_lost(None)
    await server.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", choices=("single", "pipe"), default="single")
    parser.add_argument("-n", type=int, default=20_000, help="requests of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-timeout", type=float, default=None, help="the server's")
    parser.add_argument("--no-turns", action="store_true", help="an endless turn (callgrind)")
    args = parser.parse_args()
    if args.no_turns:  # where TURN_S is read: batches.py, or connection.py in older trees
        turns = getattr(connection_module, "Batches", None)
        module = sys.modules[turns.__module__] if turns is not None else connection_module
        if hasattr(module, "TURN_S"):
            module.TURN_S = 1e9  # type: ignore[attr-defined]
    extra = {} if args.idle_timeout is None else {"idle_timeout_s": args.idle_timeout}
    config = Config(host="127.0.0.1", port=0, **extra)
    best = asyncio.run(run(args.work, args.n, args.rounds, config))
    print("  ".join(f"{name}: {us:.2f} us" for name, us in best.items()))


if __name__ == "__main__":
    main()
