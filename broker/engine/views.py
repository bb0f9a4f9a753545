"""Views: what the engine can tell without changing anything.

Owns: looking a message up by id (a snapshot if it is compact, or what INFO
knows of one acked recently), PEEK, a queue's stats and the engine's totals
(read from the lifecycle counters), what an owner holds, what a snapshot
writes (the ids of every message held, the queues with settings or paused,
the dedup ids in their window), and the log events counted since last asked.
Must never: change a message, a queue or a counter (``take_events`` only
hands out and forgets what was counted), or read a clock.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable
from itertools import chain, islice
from operator import attrgetter

from broker.engine.dedup import Remembered
from broker.engine.message import DELAYED, LEASED, Message, State
from broker.engine.queue import Queue
from broker.engine.restore import Restore
from broker.engine.settings import DEFAULT
from broker.engine.values import AckedRecord
from broker.protocol.names import COUNTERS, DEAD_SUFFIX

_by_place = attrgetter("priority", "order")  # queue order
_by_deadline = attrgetter("due_at", "order")


def heap_smallest(heap: list[tuple[int, int, Message]], k: int) -> list[tuple[int, int, Message]]:
    """The ``k`` smallest entries of a heap (a list with the heap property), smallest
    first: a walk from its top, O(k log k) however big the heap."""
    out: list[tuple[int, int, Message]] = []
    if not heap or k <= 0:
        return out
    frontier = [(heap[0][:2], 0)]  # (priority, order) of an entry, and its index
    while frontier and len(out) < k:
        _, i = heapq.heappop(frontier)
        out.append(heap[i])
        for child in (2 * i + 1, 2 * i + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child][:2], child))
    return out


class Views(Restore):
    def lookup(self, seq: int) -> Message | AckedRecord | None:
        """The message with id ``seq`` (a snapshot if it is compact), or what INFO knows."""
        msg = self._messages.get(seq)
        if msg is not None:
            return msg
        acked = self._acked_record(seq)
        if acked is not None:
            return AckedRecord(seq, *acked)
        q = self._compact.owner_of(seq)
        return q.view(seq) if q is not None else None

    def peek(self, queue_name: str, state: State | None, limit: int) -> list[Message]:
        """Up to ``limit`` messages of a queue, without changing anything.

        ``state`` None: every held message in queue order (priority, then put
        order); READY: in that order too (the delivery order, key holds aside);
        DELAYED and LEASED: the soonest deadline first. An unknown queue has
        none (and is not created). Costs what the queue holds, never what the
        engine holds: READY looks at the first ``limit`` of its fifo, compact
        messages and heap (a walk of the heap's top) and at the ready messages
        its keys hold back; DELAYED and LEASED at the queue's delayed or leased
        set; None at all of these.
        """
        q = self._queues.get(queue_name)
        if q is None or limit <= 0:
            return []
        leased = chain.from_iterable(q.holders.values())
        if state in (DELAYED, LEASED):
            timed = q.delayed if state == DELAYED else leased
            return heapq.nsmallest(limit, timed, key=_by_deadline)
        msgs: Iterable[Message] = self._ready_candidates(q, limit)
        if state is None:
            msgs = chain(msgs, q.delayed, leased)
        return heapq.nsmallest(limit, msgs, key=_by_place)

    @staticmethod
    def _ready_candidates(q: Queue, limit: int) -> list[Message]:
        """A superset of the first ``limit`` ready messages of ``q`` in (priority, order)."""
        found = list(islice(q.fifo, limit))
        found += [entry[2] for entry in heap_smallest(q.heap, limit)]
        if q.compact.n:  # snapshots of the first ``limit`` compact ones (in order)
            found += q.compact_views(limit)
        if q.chains:
            found += q.held_back()
        return found

    def waiting_on(self, name: str) -> int:
        """Waiting GETs on ``name``: on its queue, or on its lobby if it has none."""
        holder = self._queues.get(name) or self._lobbies.get(name)
        return holder.n_waiting if holder is not None else 0

    def holds(self, owner: object) -> bool:
        """True while ``owner`` holds a lease or has a GET waiting."""
        return any(self._owned.get(owner, {}).values()) or bool(self._owner_waiters.get(owner))

    def leases_of(self, owner: object) -> int:
        """How many messages ``owner`` holds leased."""
        return sum(map(len, self._owned.get(owner, {}).values()))

    def waits_of(self, owner: object) -> int:
        """How many waiting GETs ``owner`` has."""
        waits = self._owner_waiters.get(owner)
        return waits.n if waits is not None else 0

    def take_events(self) -> dict[tuple[str, str], int]:
        """Lease expiries and dead letters since the last call, per (queue, event).

        Events are ``"expired"`` and ``"dead_lettered"`` (counted on the source
        queue). For logging: the caller reports them, the engine never does IO.
        At most two entries per queue, so an engine nobody asks stays bounded.
        """
        out = self._events
        if out:
            self._events = {}
        return out

    def live_seqs(self) -> array[int]:
        """The id of every message held, in no particular order (8 bytes each)."""
        out = array("q", self._messages)
        for q in self._queues.values():
            if q.compact.n:
                out.extend(q.compact.live_seqs())
        return out

    def queue_stats(self, q: Queue, now: float) -> dict[str, int | float | None]:
        dead = self._queues.get(q.name + DEAD_SUFFIX)
        oldest_at = q.oldest_ready_at()
        stats: dict[str, int | float | None] = {
            "ready": q.n_ready,
            "delayed": q.n_delayed,
            "leased": q.n_leased,
            "dead": dead.size if dead is not None else 0,
            "waiting_consumers": q.n_waiting,
            "bytes": q.bytes,
            "oldest_ready_age": round(now - oldest_at, 6) if oldest_at is not None else None,
        }
        for name in COUNTERS:
            stats[name] = q.totals[name]
        stats["paused"] = q.paused
        return stats

    def totals(self) -> dict[str, int]:
        return {
            "queues": len(self._queues),
            "messages": len(self._messages) + self._tally.n_compact,
            "leased": self._tally.n_leased,
            "bytes": self._tally.bytes,
        }

    def dedup_totals(self) -> dict[str, int]:
        """Dedup ids remembered now, and those forgotten at the bound since start."""
        return {"dedup_ids": self._dedup.n, "dedup_evicted": self._dedup.evicted}

    def configured_queues(self) -> list[Queue]:
        """The queues whose settings differ from the server's, or that are paused."""
        return [q for q in self._queues.values() if q.paused or q.settings != DEFAULT]

    def dedup_ids(self, now: float) -> list[Remembered]:
        """Every dedup id still in its window (a snapshot writes them)."""
        return list(self._dedup.live(now))
