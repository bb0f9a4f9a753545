"""The longest pause of growing a dict, and a PagedDict, to millions of ids.

Puts consecutive ids (from a wall clock in microseconds, as the engine's are) into
a plain dict and into ``PagedDict(by_id=True)`` (broker/engine/paged.py), ``--step``
at a time, with the cyclic collector off, and prints the slowest step of each and
where it was: the dict's is the rebuild of its whole table, the PagedDict's at most
one page's. Run: ``.venv/bin/python bench/paged_growth.py [-n 2900000] [--step 1000]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from broker.engine.paged import PagedDict

FIRST = 1_733_380_000_000_000


def slowest(n: int, step: int, put: Callable[[int, int], None]) -> tuple[float, int, float]:
    """(slowest step's seconds, entries before it, total seconds)."""
    worst, at = 0.0, 0
    began = time.perf_counter()
    for i in range(FIRST, FIRST + n, step):
        t = time.perf_counter()
        for seq in range(i, i + step):
            put(seq, seq)
        took = time.perf_counter() - t
        if took > worst:
            worst, at = took, i - FIRST
    return worst, at, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2_900_000, help="ids to put")
    parser.add_argument("--step", type=int, default=1000, help="ids per timed step")
    args = parser.parse_args()
    gc.disable()
    plain: dict[int, int] = {}
    paged: PagedDict[int, int] = PagedDict(by_id=True)
    for name, put in (("dict", plain.__setitem__), ("PagedDict", paged.put)):
        worst, at, total = slowest(args.n, args.step, put)
        print(
            f"{name:9} {args.n:,} ids, {args.step} a step: slowest step {worst * 1e3:.1f} ms"
            f" (after {at:,}), all {total:.2f} s"
        )


if __name__ == "__main__":
    main()
