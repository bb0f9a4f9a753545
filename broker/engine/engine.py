"""The pure queue engine: messages, leases, keys, delays, waiters and dead letters.

Owns: all queue state and every rule of protocol.md section 3, through one
class, ``Engine``, put together from one module per concept:
  - state.py: every structure the engine holds (declared once) and the queue
    registry; lifecycle.py: the allowed moves of a message between places and
    the one rule that keeps every counter (``Tally.move``);
  - intake.py: new messages joining a queue (compact, or as ``Message``s);
    commands.py: PUT (with dedup ids and headers), GET, ACK, NACK, TOUCH,
    disconnect; dedup.py: the dedup ids, bounded broker-wide;
    management.py: PURGE, REDRIVE, REMOVE, DELETE; controls.py: CONFIG, PAUSE,
    RESUME (settings.py: a queue's settings; rate.py: its rate limit);
    restore.py: messages, settings and dedup ids read back after a restart;
  - leases.py: leases granted and ended (ack, release, dead letter);
    dispatch.py: waiting GETs, and a queue's gate (paused, rate limit);
    expiry.py: deadlines firing;
  - views.py: lookups, PEEK, stats and totals (no change of state).
The parts are one chain of single inheritance, each class the base of the next:
``EngineState`` <- ``Footprint`` <- ``Intake`` <- ``Leases`` <- ``Dispatch`` <-
``Expiry`` <- ``Commands`` <- ``Management`` <- ``Controls`` <- ``Restore`` <-
``Views`` <- ``Forgetting`` <- ``Engine`` (mypyc, which compiles the engine,
builds no class from two bases: docs/performance.md, round 9). A part may use the
parts before it, never one after it; no two parts define the same method.
Time is a parameter: every call that depends on time takes ``now`` (seconds
on any monotonic scale) and ``next_deadline()`` says when the caller must next
call ``advance(now)``. Everything one input produced is returned: direct
results from the call, and completed waiting GETs from ``take_deliveries()``;
every state change is reported to the ``Journal``; lease expiries and dead
letters are counted per queue for ``take_events()`` (the backend logs them).

Invariants (checked by the property tests):
  - a message is in exactly one place (lifecycle.py) and moves only along the
    lifecycle table; every counter (a queue's ready, delayed, leased and bytes,
    the engine's totals and live deadlines) is the count of its place, moved
    by ``Tally.move`` only;
  - a message is leased to at most one owner; every delivery adds one attempt;
  - at most one message per (queue, key) is leased, and a key's messages are
    delivered in put order (only the head of a key chain is deliverable);
  - after any call, a queue never has both an active waiter and a deliverable
    message (waiters are served as soon as a message becomes deliverable),
    unless it is paused, or its rate limit has no whole token and the deadline
    heap holds its bucket at the instant the next one comes back, or the
    waiter's owner has no room for more deliveries (``set_room``);
  - a rate-limited queue never delivers more than its bucket holds: at most
    max(1, rate) at once, and ``rate`` per second after that;
  - a PUT with a dedup id its queue remembers stores nothing; at most
    ``max_dedup_ids`` ids are remembered over every queue;
  - waiters are served only once all of a call's changes are applied, so changes
    that happen together (a batch, a disconnect, every deadline of one instant)
    are seen at once: waiters get the best of them, and the journal sees each
    change before any lease it allows;
  - ``advance(now)`` acts as if it had been called at each due instant in turn;
  - an entry in the deadline heap is live only while its item's ``due_at`` and
    state still match it (lazy deletion); the leases one GET grants share one
    entry (a ``LeaseBatch``), live while any of them is still leased until that
    instant (a message whose lease moves gets an entry of its own); after any
    call the heap holds at most max(1024, 2 x live deadlines) entries, but for
    those a compaction under way has not looked at yet (deadlines.py).

Plain never-delivered messages have no ``Message`` object until their first
lease (compact.py): ``_messages`` holds every other message, and a lookup by id
falls back to ``_compact`` (its queue) and that queue's compact fifo. A lookup
that finds a compact message returns a snapshot, not the live record.

Must never: import asyncio or sockets, read a clock, or format wire replies.
"""

from __future__ import annotations

from broker.engine.forgetting import Forgetting


class Engine(Forgetting):
    """The engine: ``Engine(config, first_seq, journal)``; see the module docstring."""
