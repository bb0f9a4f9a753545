"""The cyclic garbage collector's policy for a broker process.

Owns: keeping CPython's cyclic collector from pausing the event loop in
proportion to what the broker holds. Queued messages, leases and the log's
replayed state are freed by reference counting (they form no cycles), yet a
full collection traverses every one of them: about half a second for a
million objects on the machines we measure on. So:

- while the broker starts (a durable log is replayed into millions of new
  objects, none of them garbage) the collector is paused, instead of running
  several full collections over a growing heap;
- once it listens, everything alive is frozen (``gc.freeze``): moved to the
  permanent generation, which collections skip, so a later collection's cost
  follows what changed since the start, not what the start loaded;
- and young collections are spaced out (``YOUNG_THRESHOLD`` instead of 700
  allocations): a batch PUT of 64 messages allocates a few hundred tracked
  objects that stay queued, so at 700 a young collection ran every few batches
  and promoted the queue into the older generations, rescanned in turn.

Must never: leave the collector disabled while serving (asyncio makes
reference cycles: futures, exceptions and their tracebacks), or be applied
by the ``Server`` class (tests run many servers in one process; this is the
``serve`` command's policy for a whole process).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

#: Net allocations of tracked objects between two young collections while serving.
#: Measured with ``gc.callbacks`` on 200k-message batch bench runs (startup frozen
#: either way): the collector took about 0.13 s of the server's CPU per run at
#: CPython's default (700) and about 0.06 s at 10,000.
YOUNG_THRESHOLD: Final = 10_000


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block (restored as it was on leaving)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_survivors() -> int:
    """Collect once, then freeze every object still alive; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def space_young_collections() -> None:
    """Raise the young generation's threshold to ``YOUNG_THRESHOLD``; the older
    generations keep theirs (counted in young collections, so they space out too)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
