"""In-process throughput of the engine's hot paths, with no server, socket or codec.

Each case builds a fresh ``Engine`` and drives one path with plain calls, time
passed in: PUT of plain messages (one per call, and batches of 64; and with a dedup id
each, or with headers, where the engine has ``put_extended``), GET + ACK
(one per call, and batches of 64 leased then acked with ``ack_many``), keyed
PUT and keyed GET + ACK (one per call, 1000 keys), and lease expiry (batches
of 64 leased, then ``advance`` past their deadline), and a restart's restore
(nine plain messages to one keyed, as records read back from a log); and the
three GET + ACK cases again with 200k keyed messages held in another queue
(``200k held``: the engine's id index is then in pages, paged.py). Cases run interleaved,
``--repeat`` rounds, and each prints the best round in messages per second, so
a change to the engine is measured before and after on the same machine in
the same way (the machine is shared: compare ratios, never absolute figures).

Run: ``.venv/bin/python bench/engine_micro.py [--messages N] [--repeat R] [--only CASE,...]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from broker.config import Config
from broker.durability.records import Msg
from broker.engine import Engine

BODY = b"x" * 100
BATCH = 64
KEYS = 1000
OWNER = object()
HELD = 200_000  # keyed messages held in another queue: the id index in pages (paged.py)


def _engine() -> Engine:
    return Engine(Config(), 1)


def _filled(n: int, keyed: bool = False) -> Engine:
    e = _engine()
    if keyed:
        for i in range(n):
            e.put(0.0, "q", [(BODY, f"k{i % KEYS}", 0.0, 0, None)])
    else:
        item = (BODY, None, 0.0, 0, None)
        for _ in range(0, n, BATCH):
            e.put(0.0, "q", [item] * BATCH)
    return e


def put_one(n: int) -> Callable[[], None]:
    e = _engine()
    items = [(BODY, None, 0.0, 0, None)]

    def run() -> None:
        put = e.put
        for i in range(n):
            put(i * 1e-6, "q", items)

    return run


def put_batch(n: int) -> Callable[[], None]:
    e = _engine()
    items = [(BODY, None, 0.0, 0, None)] * BATCH

    def run() -> None:
        put = e.put
        for i in range(n // BATCH):
            put(i * 1e-6, "q", items)

    return run


def put_dedup_one(n: int) -> Callable[[], None]:
    """One message per call, each with a dedup id of its own (each is remembered)."""
    e = _engine()
    items = [(BODY, None, 0.0, 0, None)]
    dedups = [[f"order-{i:09d}"] for i in range(n)]

    def run() -> None:
        put = e.put_extended
        for i in range(n):
            put(i * 1e-6, "q", items, dedups[i], None)

    return run


def put_dedup_batch(n: int) -> Callable[[], None]:
    e = _engine()
    items = [(BODY, None, 0.0, 0, None)] * BATCH
    dedups = [[f"order-{i:09d}" for i in range(j, j + BATCH)] for j in range(0, n, BATCH)]

    def run() -> None:
        put = e.put_extended
        for i in range(n // BATCH):
            put(i * 1e-6, "q", items, dedups[i], None)

    return run


def put_headers_one(n: int) -> Callable[[], None]:
    e = _engine()
    items = [(BODY, None, 0.0, 0, None)]
    headers = [{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}]

    def run() -> None:
        put = e.put_extended
        for i in range(n):
            put(i * 1e-6, "q", items, None, headers)

    return run


def _holding(e: Engine) -> Engine:
    """``e`` with ``HELD`` keyed messages in a queue of their own, put before the others:
    the engine's id index holds them (past 65536 entries, in pages)."""
    for i in range(0, HELD, BATCH):
        e.put(0.0, "held", [(BODY, f"k{j}", 0.0, 0, None) for j in range(i, i + BATCH)])
    return e


def get_ack_one(n: int, keyed: bool = False, held: bool = False) -> Callable[[], None]:
    e = _filled(n, keyed) if not held else _holding(_engine())
    if held:
        for i in range(n):
            e.put(0.0, "q", [(BODY, f"k{i % KEYS}" if keyed else None, 0.0, 0, None)])

    def run() -> None:
        get, ack = e.get, e.ack
        for _ in range(n):
            msg = (get(1.0, "q", OWNER, 1, 30.0) or [])[0]
            ack(1.0, OWNER, msg.seq)

    return run


def get_ack_batch(n: int, held: bool = False) -> Callable[[], None]:
    e = _filled(n) if not held else _holding(_engine())
    if held:
        for _ in range(0, n, BATCH):
            e.put(0.0, "q", [(BODY, None, 0.0, 0, None)] * BATCH)

    def run() -> None:
        get, ack_many = e.get, e.ack_many
        for _ in range(n // BATCH):
            msgs = get(1.0, "q", OWNER, BATCH, 30.0) or []
            ack_many(1.0, OWNER, [m.seq for m in msgs])

    return run


def keyed_put(n: int) -> Callable[[], None]:
    e = _engine()
    items = [[(BODY, f"k{i}", 0.0, 0, None)] for i in range(KEYS)]

    def run() -> None:
        put = e.put
        for i in range(n):
            put(0.0, "q", items[i % KEYS])

    return run


def keyed_get_ack(n: int) -> Callable[[], None]:
    return get_ack_one(n, keyed=True)


def get_ack_one_held(n: int) -> Callable[[], None]:
    return get_ack_one(n, held=True)


def get_ack_batch_held(n: int) -> Callable[[], None]:
    return get_ack_batch(n, held=True)


def keyed_get_ack_held(n: int) -> Callable[[], None]:
    return get_ack_one(n, keyed=True, held=True)


def expire_batch(n: int) -> Callable[[], None]:
    e = _filled(n)

    def run() -> None:
        get, advance = e.get, e.advance
        now = 1.0
        for _ in range(n // BATCH):
            get(now, "q", OWNER, BATCH, 1.0)
            now += 2.0
            advance(now)  # the batch expires: back to ready, at the head

    return run


def restore(n: int) -> Callable[[], None]:
    e = _engine()
    attempts = Config().max_attempts
    items = [
        Msg(i, "q", BODY, f"k{i % KEYS}" if i % 10 == 0 else None, 0, attempts, 1.0)
        for i in range(1, n + 1)
    ]

    def run() -> None:
        e.restore_messages(2.0, items, 0.0)

    return run


CASES: dict[str, Callable[[int], Callable[[], None]]] = {
    "put (plain, 1/call)": put_one,
    "put (plain, batch 64)": put_batch,
    "get+ack (1/call)": get_ack_one,
    "get+ack_many (batch 64)": get_ack_batch,
    "put (keyed, 1/call)": keyed_put,
    "get+ack (keyed, 1/call)": keyed_get_ack,
    "get 64 + expire": expire_batch,
    "restore (9 plain : 1 keyed)": restore,
    "get+ack (1/call, 200k held)": get_ack_one_held,
    "get+ack_many (batch 64, 200k held)": get_ack_batch_held,
    "get+ack (keyed, 1/call, 200k held)": keyed_get_ack_held,
}
if hasattr(Engine, "put_extended"):  # a tree with dedup ids and headers
    CASES |= {
        "put (dedup, 1/call)": put_dedup_one,
        "put (dedup, batch 64)": put_dedup_batch,
        "put (headers, 1/call)": put_headers_one,
    }


def measure(make: Callable[[int], Callable[[], None]], n: int) -> float:
    """Messages per second of one fresh run (set-up not timed)."""
    run = make(n)
    gc.collect()
    t0 = time.perf_counter()
    run()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="per case and round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is shown")
    parser.add_argument("--only", default="", help="case name prefixes, comma separated")
    args = parser.parse_args()
    wanted = [p for p in args.only.split(",") if p]
    cases = {k: v for k, v in CASES.items() if not wanted or any(k.startswith(p) for p in wanted)}
    best = dict.fromkeys(cases, 0.0)
    for _ in range(args.repeat):
        for name, make in cases.items():
            best[name] = max(best[name], measure(make, args.messages))
    for name, rate in best.items():
        print(f"{name:<26} {rate:>12,.0f} msg/s")


if __name__ == "__main__":
    main()
