"""The message lifecycle: the places a message can be, the moves between them, and the counters.

Owns: the table of allowed moves (``TABLE``) and the one rule that keeps every
state counter (``COUNTED_IN``): a message counts in the counters of its place,
and while it is held (in any place but ``OUT``) its body's bytes count in its
queue's ``bytes`` and the tally's. Each row of the table is a move function
derived from that rule (``PUT_PLAIN(tally, q, n, size)``: ``n`` messages of
``q``, ``size`` bytes of bodies in all): the counters of the old place lose
``n``, those of the new place gain ``n``. The move functions are the only
code that changes these counters:
  - a queue's ``n_ready`` (compact messages are ready too), ``n_delayed``,
    ``n_leased`` and ``bytes``;
  - the ``Tally``'s ``n_compact``, ``n_timed`` (delayed and leased messages:
    with ``waiting``, the waiting GETs, the engine's live deadlines),
    ``n_leased`` and ``bytes`` (all queues).
A move takes ``n`` messages at once, so a batch PUT, GET or ACK moves its
counters in one call. Each move is compiled once, at import, into a few
straight-line additions (as ``dataclasses`` compiles ``__init__``): the hot
paths pay what counters written by hand would cost, and nobody writes them.
A message is moved before it is placed in its queue's ready order
(``Queue.note_aged`` sizes a cleanup by ``n_ready``); moves that place nothing
(compact, lease, ack) may come once per batch, after it.

A message's own ``state`` (message.py) is its place while it has an object:
``READY``, ``DELAYED`` and ``LEASED`` are the same numbers here and there.
Event totals (``put``, ``acked``, ...) are not state: each is counted where
its event happens.
Must never: choose which messages move or order them (the engine and queue.py
do), report to the journal, or read a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Final, cast

from broker.engine.message import State

if TYPE_CHECKING:
    from broker.engine.queue import Queue


class Place(IntEnum):
    READY = int(State.READY)  # a Message, deliverable or held back by its key
    DELAYED = int(State.DELAYED)
    LEASED = int(State.LEASED)
    COMPACT = 3  # ready, never delivered, kept without a Message (compact.py)
    OUT = 4  # not in this queue: not put yet, acked, purged, removed, or moved to another queue


#: The rule: the counters that count a message in each place (``q`` is its queue).
COUNTED_IN: Final[dict[Place, tuple[str, ...]]] = {
    Place.READY: ("q.n_ready",),
    Place.COMPACT: ("q.n_ready", "tally.n_compact"),
    Place.DELAYED: ("q.n_delayed", "tally.n_timed"),
    Place.LEASED: ("q.n_leased", "tally.n_timed", "tally.n_leased"),
    Place.OUT: (),
}
#: ... and the counters of the bytes of its body, in every place but ``OUT``.
BYTES_IN: Final = ("q.bytes", "tally.bytes")

#: The lifecycle table: each event moves messages of one queue from one place to
#: another, and no other move is allowed. A move between queues (dead letter,
#: redrive) is two events: out of the one, into the other. A restart restores
#: messages by the put rows.
TABLE: Final[dict[str, tuple[Place, Place]]] = {
    "put plain": (Place.OUT, Place.COMPACT),  # no key, delay or priority (compact.py)
    "put": (Place.OUT, Place.READY),
    "put delayed": (Place.OUT, Place.DELAYED),
    "lease plain": (Place.COMPACT, Place.LEASED),  # its first delivery
    "lease": (Place.READY, Place.LEASED),
    "ack": (Place.LEASED, Place.OUT),
    "release": (Place.LEASED, Place.READY),  # nack, lease expiry, owner gone
    "release delayed": (Place.LEASED, Place.DELAYED),  # nack with a delay
    "delay ends": (Place.DELAYED, Place.READY),
    "dead letter": (Place.LEASED, Place.OUT),  # out of attempts: leaves for <queue>.dead
    "redrive": (Place.READY, Place.OUT),  # leaves <queue>.dead for <queue>
    "arrive": (Place.OUT, Place.READY),  # into <queue>.dead, or back into <queue>
    "purge plain": (Place.COMPACT, Place.OUT),
    "purge": (Place.READY, Place.OUT),
    "purge delayed": (Place.DELAYED, Place.OUT),
    # REMOVE of chosen messages (never a leased one), and DELETE of a whole queue
    "remove plain": (Place.COMPACT, Place.OUT),
    "remove": (Place.READY, Place.OUT),
    "remove delayed": (Place.DELAYED, Place.OUT),
    "remove leased": (Place.LEASED, Place.OUT),  # DELETE only: its holder loses it
    "redrive delayed": (Place.DELAYED, Place.OUT),  # REDRIVE with ids: a delayed dead letter
    "unpack": (Place.COMPACT, Place.READY),  # CONFIG changes max_attempts: they keep theirs
}


class Tally:
    """The engine's counters over every queue (moved by the rows of ``TABLE`` only)."""

    __slots__ = ("bytes", "n_compact", "n_leased", "n_timed", "waiting")

    def __init__(self) -> None:
        self.n_compact = 0  # messages held in compact form
        self.n_timed = 0  # delayed and leased messages
        self.n_leased = 0  # leased messages (STATS reads it: no walk over every queue)
        self.bytes = 0  # bodies held
        self.waiting = 0  # waiting GETs (dispatch.py starts and ends them)

    def timed(self) -> int:
        """Live deadlines: delayed and leased messages, and waiting GETs."""
        return self.n_timed + self.waiting

    def compact(self) -> int:
        """Messages held in compact form."""
        return self.n_compact


#: A row of the table: ``move(tally, q, n, size)`` moves ``n`` messages of ``q``
#: (``size`` bytes of bodies in all) and their counters.
Move = Callable[[Tally, "Queue", int, int], None]


def compile_move(event: str) -> Move:
    """The move function of the row ``event``, derived from ``COUNTED_IN`` and ``BYTES_IN``.

    Counters of both places do not change; the others lose or gain ``n`` (bytes:
    ``size``) in straight-line code, compiled once: this runs at import only.
    """
    src, dst = TABLE[event]
    lines = [f"{c} -= n" for c in COUNTED_IN[src] if c not in COUNTED_IN[dst]]
    lines += [f"{c} += n" for c in COUNTED_IN[dst] if c not in COUNTED_IN[src]]
    if Place.OUT in (src, dst) and src != dst:
        lines += [f"{c} {'+' if src == Place.OUT else '-'}= size" for c in BYTES_IN]
    name = event.replace(" ", "_")
    body = "".join(f"    {line}\n" for line in lines) or "    pass\n"
    namespace: dict[str, object] = {}
    exec(compile(f"def {name}(tally, q, n, size):\n{body}", f"<move {event}>", "exec"), namespace)
    move = cast(Move, namespace[name])
    move.__doc__ = f"{event}: {src.name} -> {dst.name}\n{body}"
    return move


PUT_PLAIN: Final = compile_move("put plain")
PUT: Final = compile_move("put")
PUT_DELAYED: Final = compile_move("put delayed")
LEASE_PLAIN: Final = compile_move("lease plain")
LEASE: Final = compile_move("lease")
ACK: Final = compile_move("ack")
RELEASE: Final = compile_move("release")
RELEASE_DELAYED: Final = compile_move("release delayed")
DELAY_END: Final = compile_move("delay ends")
DEAD_LETTER: Final = compile_move("dead letter")
REDRIVE: Final = compile_move("redrive")
ARRIVE: Final = compile_move("arrive")
PURGE_PLAIN: Final = compile_move("purge plain")
PURGE: Final = compile_move("purge")
PURGE_DELAYED: Final = compile_move("purge delayed")
REMOVE_PLAIN: Final = compile_move("remove plain")
REMOVE: Final = compile_move("remove")
REMOVE_DELAYED: Final = compile_move("remove delayed")
REMOVE_LEASED: Final = compile_move("remove leased")
REDRIVE_DELAYED: Final = compile_move("redrive delayed")
UNPACK: Final = compile_move("unpack")
