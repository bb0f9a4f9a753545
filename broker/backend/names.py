"""Pages of queue names in order, for STATS and QUEUES: O(log n + page) each.

Owns: a sorted index of the names of a queue table (the engine's dict from
name to queue), kept in step with it lazily and exactly, and cut into pages
(``page``: the names that start with a prefix, after a cursor, at most a
limit, and whether more follow).

Keeping in step costs what changed, not what the table holds. A dict keeps
insertion order, and a queue created (or deleted and created again) is a new
object at its end; so after each sync every entry is known with its object,
and the next sync walks the table from its end only until it meets an entry
known with the same object: everything before that one is unchanged. A deleted
queue stays in the index until a page meets it (then it goes), or until the
stale names outnumber the live ones (then the index is rebuilt, once per that
many deletions). The sorted names live in buckets of at most ``2 * LOAD``
(the layout of the ``sortedcontainers`` package), so adding one is O(log n + LOAD).
The index holds each queue it knows (its identity is the test above), so a
deleted queue's object lives until a page meets its name or the next rebuild:
at most as many as there are live queues, plus ``LOAD``.
Must never: change the table, or cost O(table) for a page unless half of it changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any, Final

#: names per bucket of the sorted index (a bucket splits at twice this)
LOAD: Final = 512


class SortedNames:
    """A sorted set of strings in buckets: add, discard and iterate from a point."""

    __slots__ = ("_buckets", "_maxes", "_size")

    def __init__(self, names: Iterable[str] = ()) -> None:
        """``names``: distinct strings, in any order."""
        ordered = sorted(names)
        self._buckets = [ordered[i : i + LOAD] for i in range(0, len(ordered), LOAD)]
        self._maxes = [bucket[-1] for bucket in self._buckets]
        self._size = len(ordered)

    def __len__(self) -> int:
        return self._size

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


class QueueIndex:
    """The names of one queue table, sorted, for pages (see the module docstring)."""

    __slots__ = ("_known", "_sorted")

    def __init__(self) -> None:
        self._known: dict[str, object] = {}  # name -> its queue when last seen
        self._sorted = SortedNames()

    def page(
        self, table: dict[str, Any], prefix: str, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` names of ``table`` that start with ``prefix``, in order, after
        ``after`` (None: from the first); and the cursor of the next page (None: no more)."""
        self._sync(table)
        if after is None or after < prefix:
            names = self._sorted.from_(prefix, inclusive=True)
        else:
            names = self._sorted.from_(after, inclusive=False)
        out: list[str] = []
        stale: list[str] = []
        more = False
        for name in names:
            if not name.startswith(prefix):
                break
            if name not in table:
                stale.append(name)
                continue
            if len(out) == limit:
                more = True
                break
            out.append(name)
        for name in stale:
            self._sorted.discard(name)
            del self._known[name]
        return out, (out[-1] if more else None)

    def _sync(self, table: dict[str, Any]) -> None:
        known = self._known
        if len(known) > 2 * len(table) + LOAD:  # mostly deleted names: start again
            self._rebuild(table)
            return
        most = max(LOAD, len(known) // 8)  # past this many new names, sorting all is cheaper
        new: list[tuple[str, object]] = []
        for name in reversed(table.keys()):  # the newest first
            queue = table[name]
            if known.get(name) is queue:
                break  # this one and every older one are known as they are
            new.append((name, queue))
            if len(new) > most:
                self._rebuild(table)
                return
        for name, queue in new:
            if name not in known:
                self._sorted.add(name)
            known[name] = queue

    def _rebuild(self, table: dict[str, Any]) -> None:
        self._known = dict(table)
        self._sorted = SortedNames(table)


def page_of(
    names: list[str], prefix: str, after: str | None, limit: int
) -> tuple[list[str], str | None]:
    """``NameIndex.page`` over a sorted list held whole (a backend that lists its queue
    names in one call, as the Redis one does): the same page and the same cursor."""
    start = prefix if after is None or after < prefix else after
    i = bisect.bisect_left(names, start)
    if after is not None and i < len(names) and names[i] == after:
        i += 1
    out: list[str] = []
    for name in names[i:]:
        if not name.startswith(prefix):
            return out, None
        if len(out) == limit:
            return out, out[-1]
        out.append(name)
    return out, None
