"""What the engine holds per object, measured with tracemalloc: the source of footprint.py.

For each kind of thing a client can make the broker hold (a plain message, a
message with an object, its key, a delay, a lease, a waiting GET, an acked id,
a queue, a dedup id), this builds a fresh engine, makes N of them with 1-byte
bodies, and prints the bytes Python allocated per one, beyond its body; then
the constants ``broker/engine/footprint.py`` uses, for comparison. The sizes of
dicts, sets and deques grow in steps, so N is large and several N are tried
(the figure per object moves within about 20%). tracemalloc counts what Python
asked for; the process's RSS also holds the allocator's slack (pymalloc arenas
and malloc), measured by tests/server/test_memory_accounting.py.

Run: ``.venv/bin/python bench/footprint.py [-n 100000]``.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Callable

from broker.config import Config
from broker.engine import Engine, NewMessage
from broker.engine import footprint as fp

Make = Callable[[Engine, int], None]


def _plain(e: Engine, n: int) -> None:
    e.put(0.0, "q", [(b"x", None, 0.0, 0, None)] * n)


def _objects(e: Engine, n: int) -> None:
    e.put(0.0, "q", [(b"x", None, 0.0, 1, None)] * n)  # priority 1: an object each


def _keyed(e: Engine, n: int) -> None:
    e.put(0.0, "q", [(b"x", f"key-{i:08d}", 0.0, 1, None) for i in range(n)])


def _delayed(e: Engine, n: int) -> None:
    e.put(0.0, "q", [(b"x", None, 3600.0, 1, None)] * n)


def _leased(e: Engine, n: int) -> None:
    e.put(0.0, "q", [(b"x", None, 0.0, 1, None)] * n)
    owner = object()
    for _ in range(n // 100):
        e.get(0.0, "q", owner, 100, 3600.0)


def _waiters(e: Engine, n: int) -> None:
    for i in range(n):
        e.get(0.0, f"w{i % 1000}", i // 500, 1, 30.0, 3600.0, token=i, cancel_key=i)


def _acked(e: Engine, n: int) -> None:
    owner = object()
    e.put(0.0, "q", [(b"x", None, 0.0, 1, None)] * n)
    msgs = []
    for _ in range(n // 100):
        msgs += e.get(0.0, "q", owner, 100, 3600.0) or []
    e.ack_many(0.0, owner, [m.seq for m in msgs])


def _queues(e: Engine, n: int) -> None:
    owner = object()
    for i in range(n):
        name = f"queue-{i:08d}"
        e.put(0.0, name, [(b"x", None, 0.0, 0, None)])
        got = e.get(0.0, name, owner, 1, 30.0) or []
        e.ack(0.0, owner, got[0].seq)


def _dedup(e: Engine, n: int) -> None:
    for i in range(0, n, 100):
        items = [NewMessage(b"x")] * 100
        e.put_extended(0.0, "q", items, [f"dedup-{j:012d}" for j in range(i, i + 100)], None)


#: kind -> (how to make N, what each also holds that is counted apart, the constant)
KINDS: dict[str, tuple[Make, Callable[[], int], int]] = {
    "plain message": (_plain, lambda: 1, fp.COMPACT),
    "message object": (_objects, lambda: 1, fp.MESSAGE),
    "key (12 chars)": (_keyed, lambda: 1 + fp.MESSAGE, fp.KEY + 12),
    "delay": (_delayed, lambda: 1 + fp.MESSAGE, 0),  # within MESSAGE: nothing apart
    "lease": (_leased, lambda: 1 + fp.MESSAGE, 0),
    "waiting GET": (_waiters, lambda: 0, fp.WAITER),
    "acked id": (_acked, lambda: 0, fp.ACKED),
    "queue": (_queues, lambda: fp.ACKED, fp.QUEUE),
    "dedup id (18 chars)": (_dedup, lambda: 1 + fp.COMPACT, fp.DEDUP + 18),
}


def measure(make: Make, n: int, history: int = 10**9) -> float:
    """Bytes allocated per one of ``n`` (what the engine held before is left out)."""
    e = Engine(Config(max_dedup_ids=10**9, acked_history=history, max_waiting=10**9), 1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    make(e, n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="objects of each kind")
    args = parser.parse_args()
    print(f"{'kind':<22} {'measured':>9} {'counted apart':>14} {'constant':>9}")
    for kind, (make, apart, constant) in KINDS.items():
        if make is _acked:  # the history's own cost: the same run remembering nothing, less
            per = [measure(make, n) - measure(make, n, history=0) for n in (args.n // 2, args.n)]
        else:
            per = [measure(make, n) - apart() for n in (args.n // 2, args.n)]
        print(f"{kind:<22} {max(per):>9.0f} {apart():>14} {constant:>9}")


if __name__ == "__main__":
    main()
