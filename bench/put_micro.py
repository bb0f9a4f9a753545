"""In-process cost of a PUT through the codec and the memory backend, with no socket.

Each case is a list of request lines that are decoded (``codec.decode``, which
checks every body: bodies.py) and executed by a fresh ``MemoryBackend`` 64
lines at a time, as a connection does with one read: plain PUTs of a 100-byte
object, batches of 64, the same with a ``dedup`` id each (all different, so
each is remembered), with a ``traceparent`` header, and with a body whose
shape sends the body check down its slow path (more than 64 brackets, so it
is decoded and walked). Cases run interleaved, ``--repeat`` rounds, and each
prints the best round in microseconds per message.

Run it from two trees to compare them (the machine is shared: compare ratios):
``PYTHONPATH=TREE .venv/bin/python bench/put_micro.py [--messages N] [--repeat R]``
(from a directory that is not a tree, so PYTHONPATH decides which one is measured).
A tree that does not know an option (dedup, headers) stores those PUTs as
plain ones, so its figure is what the option costs there: nothing.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import msgspec

from broker.backend.memory import MemoryBackend
from broker.config import Config
from broker.protocol.codec import Invalid, decode

BODY = {"task": "resize", "image": 42, "size": [640, 480], "owner": "acct-7", "pad": "x" * 30}
DEEP = {"rows": [[i, [i]] for i in range(40)]}  # 80 brackets, 3 deep: the walked path
BATCH = 64
LINES_PER_READ = 64
TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


class _Sink:
    def deliver(self, request: object, reply: object) -> None:  # no waiting GETs here
        raise AssertionError("no GET waits in this benchmark")


def _line(**request: object) -> bytes:
    return msgspec.json.encode({"op": "PUT", "queue": "q", **request})


def _single(n: int, extra: Callable[[int], dict[str, object]], body: object = BODY) -> list[bytes]:
    return [_line(body=body, **extra(i)) for i in range(n)]


def _batches(n: int, extra: Callable[[int], dict[str, object]]) -> list[bytes]:
    return [
        _line(messages=[{"body": BODY, **extra(i + j)} for j in range(BATCH)])
        for i in range(0, n, BATCH)
    ]


def _none(i: int) -> dict[str, object]:
    return {}


def _dedup(i: int) -> dict[str, object]:
    return {"dedup": f"order-{i:09d}"}


def _headers(i: int) -> dict[str, object]:
    return {"headers": TRACE}


CASES: dict[str, Callable[[int], list[bytes]]] = {
    "put (1/line)": lambda n: _single(n, _none),
    "put (dedup, 1/line)": lambda n: _single(n, _dedup),
    "put (headers, 1/line)": lambda n: _single(n, _headers),
    "put (walked body, 1/line)": lambda n: _single(n, _none, DEEP),
    "put (batch 64)": lambda n: _batches(n, _none),
    "put (dedup, batch 64)": lambda n: _batches(n, _dedup),
}


def measure(lines: list[bytes], messages: int) -> float:
    """Microseconds per message to decode and execute ``lines`` (set-up not timed)."""
    backend = MemoryBackend(Config(), first_seq=1, clock=lambda: 0.0)
    owner = backend.open(_Sink())
    max_line = backend.config.max_line
    gc.collect()
    t0 = time.perf_counter()
    for i in range(0, len(lines), LINES_PER_READ):
        requests = []
        for line in lines[i : i + LINES_PER_READ]:
            request = decode(line, max_line)
            assert not isinstance(request, Invalid), request
            requests.append(request)
        backend.execute(owner, requests)
    return (time.perf_counter() - t0) / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=64_000, help="per case and round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is shown")
    args = parser.parse_args()
    n = args.messages // BATCH * BATCH
    lines = {name: make(n) for name, make in CASES.items()}
    best = dict.fromkeys(CASES, float("inf"))
    for _ in range(args.repeat):
        for name in CASES:
            best[name] = min(best[name], measure(lines[name], n))
    for name, us in best.items():
        print(f"{name:<28} {us:8.3f} us/msg")


if __name__ == "__main__":
    main()
