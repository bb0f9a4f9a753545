"""A cheap fixed-bucket histogram for figures read at scrape time.

Owns: counting observations into fixed buckets (upper bounds, Prometheus
``le`` semantics: a value equal to a bound falls in that bucket) and their sum.
One ``observe`` is a bisect and two additions, so the server can afford one per
batch of requests. The event loop is the only writer; readers (the metrics
endpoint, on the same loop) take a consistent snapshot with ``buckets()``.
Must never: lock, allocate per observation, or read a clock (callers time things).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

#: Default bounds in seconds: 50 us to 10 s, roughly x2.5 apart.
LATENCY_BOUNDS_S: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Bounds for waiting GETs, in seconds (a wait may last up to an hour).
WAIT_BOUNDS_S: Final = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be non-empty and strictly increasing")
        self.bounds: tuple[float, ...] = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last bucket is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative counts per upper bound, ending with (+inf, count)."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out
