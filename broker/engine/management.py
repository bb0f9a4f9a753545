"""Queue management: commands that act on a whole queue (PURGE, REDRIVE).

Owns: deleting every ready and delayed message of a queue (leased ones stay
until their lease ends), and moving every ready message of ``<queue>.dead``
back to ``<queue>`` with its attempts reset. Both are linear in the messages
held, report to the journal in queue order, and move counters by rows of
the lifecycle table (lifecycle.py).
Must never: touch a leased message (its owner still holds it), or read a clock.
"""

from __future__ import annotations

import heapq

from broker.engine.dispatch import Dispatch
from broker.engine.lifecycle import PURGE, PURGE_DELAYED, PURGE_PLAIN, REDRIVE
from broker.engine.message import DELAYED, LEASED, READY, Message
from broker.engine.queue import Queue
from broker.engine.state import GONE
from broker.protocol.names import DEAD_SUFFIX


class Management(Dispatch):
    def _objects_of(self, q: Queue) -> list[Message]:
        """The messages of ``q`` that have objects, in queue order (O(all messages))."""
        msgs = [m for m in self._messages.values() if m.queue is q]
        msgs.sort(key=lambda m: (m.priority, m.order))
        return msgs

    def purge(self, now: float, queue_name: str) -> int:
        """Delete the ready and delayed messages of a queue; leased ones stay."""
        q = self._queues.get(queue_name)
        if q is None:
            return 0
        victims = [m for m in self._objects_of(q) if m.state != LEASED]
        compact = q.compact
        n_plain = compact.n
        plain_seqs = compact.live_seqs()
        tally = self._tally
        PURGE_PLAIN(tally, q, n_plain, compact.total_bytes())
        for msg in victims:
            del self._messages[msg.seq]
            purge = PURGE_DELAYED if msg.state == DELAYED else PURGE
            purge(tally, q, 1, len(msg.body))
            msg.due_at = GONE
        q.drop_from_chains([m for m in victims if m.key is not None])
        q.clear_ready()  # every READY message was a victim
        purged = len(victims) + n_plain
        q.totals["purged"] += purged
        if purged:
            in_order = heapq.merge(
                ((m.priority, m.order, m.seq) for m in victims), ((0, s, s) for s in plain_seqs)
            )
            self.journal.purge(q, [e[2] for e in in_order])
        self._settle(now)
        return purged

    def redrive(self, now: float, queue_name: str) -> int:
        """Move every ready message of ``<queue>.dead`` back to ``queue``, attempts reset."""
        src = self._queues.get(queue_name + DEAD_SUFFIX)
        if src is None:
            return 0
        assert not src.compact.n, "a dead-letter queue holds no compact message"
        moved = [m for m in self._objects_of(src) if m.state == READY]
        moved.sort(key=lambda m: m.order)
        dst = self.queue(queue_name)
        src.drop_from_chains([m for m in moved if m.key is not None])
        for msg in moved:
            REDRIVE(self._tally, src, 1, len(msg.body))
            msg.attempts = 0
            self._enqueue_moved(msg, dst)
        src.clear_ready()  # every READY message of src moved
        dst.totals["redriven"] += len(moved)
        if moved:
            self.journal.redrive(moved, src)
            self._wake(dst)
        self._settle(now)
        return len(moved)
