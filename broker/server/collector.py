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
- young collections are spaced out (``YOUNG_THRESHOLD`` instead of 700
  allocations): a batch PUT of 64 messages allocates a few hundred tracked
  objects that stay queued, so at 700 a young collection ran every few batches
  and promoted the queue into the older generations, rescanned in turn;
- and while serving, a full collection that took longer than ``FREEZE_AFTER_S``
  freezes its survivors too (``freeze_after_slow_collections``): a broker that
  fills up to a million held messages otherwise pauses its loop for half a
  second at each full pass over them (measured: 494 and 710 ms while one
  connection put a million keyed messages), and every client with it. The
  survivors of a full collection are alive (its cyclic garbage was just
  freed); messages are freed by reference counting when they leave, frozen or
  not. The price: an object frozen alive that later becomes part of cyclic
  garbage is never collected. Freezes come only when that many new objects
  outlived a full pass (a few tens of thousands), so this stays small against
  what they hold. A freeze is followed by one more full collection, a quick
  one, so that the next waits for a quarter more than what was left out, not
  than everything. A full collection gets its chance after every collection of
  the middle generation (``FULL_EVERY``), which comes every third young one
  (``MIDDLE_EVERY``), so few objects pile up between two.

Must never: leave the collector disabled while serving (asyncio makes
reference cycles: futures, exceptions and their tracebacks), or be applied
by the ``Server`` class (tests run many servers in one process; this is the
``serve`` command's policy for a whole process).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Final

#: Net allocations of tracked objects between two young collections while serving.
#: Measured with ``gc.callbacks`` on 200k-message batch bench runs (startup frozen
#: either way): the collector took about 0.13 s of the server's CPU per run at
#: CPython's default (700) and about 0.06 s at 10,000.
YOUNG_THRESHOLD: Final = 10_000
#: A full collection that takes longer than this freezes what it found alive.
FREEZE_AFTER_S: Final = 0.010
#: Middle-generation collections between two chances of a full one (CPython: 10). A
#: full one still waits until a quarter more objects outlived the last, so with most
#: of the heap frozen, a chance after every middle collection keeps each one short.
FULL_EVERY: Final = 1
#: Young collections between two of the middle generation (CPython: 10): with young
#: ones every YOUNG_THRESHOLD allocations, a middle one scans at most 3 x that.
MIDDLE_EVERY: Final = 3


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


class _FreezeSlowFullCollections:
    """A ``gc.callbacks`` entry: freezes the survivors of a slow full collection, then
    has ``soon`` run one more (quick: all but the young ones are frozen), which sets
    the size CPython waits to grow by a quarter before the next full one to what was
    left out of the freeze, not to everything (frozen or not) as it would stay."""

    def __init__(self, after_s: float, soon: Callable[[Callable[[], object]], object]) -> None:
        self.after_s = after_s
        self.soon = soon
        self.started = 0.0
        self.freezes = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self.started = perf_counter()
        elif perf_counter() - self.started > self.after_s:
            gc.freeze()  # (the collection is over: gc.callbacks run outside of it)
            self.freezes += 1
            with contextlib.suppress(RuntimeError):  # (the loop closed: serve is over)
                self.soon(gc.collect)  # (not from here: a collection never starts in one)


def freeze_after_slow_collections(
    soon: Callable[[Callable[[], object]], object], after_s: float = FREEZE_AFTER_S
) -> _FreezeSlowFullCollections:
    """From now on, freeze the survivors of every full collection slower than ``after_s``
    (see the module docstring); ``soon`` runs a callable a moment later (the loop's
    ``call_soon``). Returns the callback (``freezes`` counts them)."""
    callback = _FreezeSlowFullCollections(after_s, soon)
    gc.callbacks.append(callback)
    young, _, _ = gc.get_threshold()
    gc.set_threshold(young, MIDDLE_EVERY, FULL_EVERY)
    return callback
