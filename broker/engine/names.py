"""The queue names in order, kept in step with the queue table: pages of STATS and QUEUES.

Owns: a sorted set of strings in buckets of at most ``2 * LOAD`` (the layout of
the ``sortedcontainers`` package), so adding or removing one name costs
O(log n + LOAD) when its queue is made or deleted, and a page (the names that
start with a prefix, after a cursor, at most a limit, and whether more follow)
costs O(log n + page).
Must never: sort the whole table in one step. An index that caught up lazily, at
the next page, sorted 100,000 names made since the last page in one call
(20-45 ms of a loop every connection shares; about 100 ms on a busy machine).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Final

#: names per bucket (a bucket splits at twice this)
LOAD: Final = 512


class SortedNames:
    """A sorted set of strings in buckets: add, discard, iterate from a point, pages."""

    __slots__ = ("_buckets", "_maxes", "_size")

    def __init__(self, names: Iterable[str] = ()) -> None:
        """``names``: distinct strings, in any order."""
        ordered = sorted(names)
        self._buckets = [ordered[i : i + LOAD] for i in range(0, len(ordered), LOAD)]
        self._maxes = [bucket[-1] for bucket in self._buckets]
        self._size = len(ordered)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[str]:
        for bucket in self._buckets:
            yield from bucket

    def add(self, name: str) -> None:
        if not self._buckets:
            self._buckets.append([name])
            self._maxes.append(name)
            self._size = 1
            return
        i = min(bisect.bisect_left(self._maxes, name), len(self._maxes) - 1)
        bucket = self._buckets[i]
        j = bisect.bisect_left(bucket, name)
        if j < len(bucket) and bucket[j] == name:
            return
        bucket.insert(j, name)
        self._maxes[i] = bucket[-1]
        self._size += 1
        if len(bucket) > 2 * LOAD:  # split in two
            self._buckets[i : i + 1] = [bucket[:LOAD], bucket[LOAD:]]
            self._maxes[i : i + 1] = [bucket[LOAD - 1], bucket[-1]]

    def discard(self, name: str) -> None:
        i = bisect.bisect_left(self._maxes, name)
        if i == len(self._maxes):
            return
        bucket = self._buckets[i]
        j = bisect.bisect_left(bucket, name)
        if j == len(bucket) or bucket[j] != name:
            return
        del bucket[j]
        self._size -= 1
        if bucket:
            self._maxes[i] = bucket[-1]
        else:
            del self._buckets[i], self._maxes[i]

    def from_(self, start: str, *, inclusive: bool) -> Iterator[str]:
        """The names from ``start`` on (``start`` itself only if ``inclusive``), in order.
        The set must not change while this is iterated."""
        find = bisect.bisect_left if inclusive else bisect.bisect_right
        i = find(self._maxes, start)
        if i == len(self._buckets):
            return
        bucket = self._buckets[i]
        yield from bucket[find(bucket, start) :]
        for bucket in self._buckets[i + 1 :]:
            yield from bucket

    def page(self, prefix: str, after: str | None, limit: int) -> tuple[list[str], str | None]:
        """Up to ``limit`` names that start with ``prefix``, in order, after ``after``
        (None: from the first); and the cursor of the next page (None: no more)."""
        if after is None or after < prefix:
            return take(self.from_(prefix, inclusive=True), prefix, limit)
        return take(self.from_(after, inclusive=False), prefix, limit)


def take(names: Iterable[str], prefix: str, limit: int) -> tuple[list[str], str | None]:
    """A page from ``names`` (in order, from where the page starts): up to ``limit`` of
    those that start with ``prefix``, and the next page's cursor (None: no more)."""
    out: list[str] = []
    for name in names:
        if not name.startswith(prefix):
            return out, None
        if len(out) == limit:
            return out, out[-1]
        out.append(name)
    return out, None
