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
  follows what changed since the start, not what the start loaded.

Must never: leave the collector disabled while serving (asyncio makes
reference cycles: futures, exceptions and their tracebacks), or be applied
by the ``Server`` class (tests run many servers in one process; this is the
``serve`` command's policy for a whole process).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
