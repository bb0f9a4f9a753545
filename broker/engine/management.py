"""Queue management: commands that act on a queue's messages as an operator would.

Owns: deleting every ready and delayed message of a queue (PURGE: leased ones
stay until their lease ends); moving ready messages of ``<queue>.dead`` back
to ``<queue>`` with their attempts reset (REDRIVE: all of them, or those
named, delayed ones too); deleting named ready or delayed messages (REMOVE:
a leased one is reported, never removed, since its holder may be working on
it); and deleting a whole queue (DELETE: every message, ready, delayed or
leased, its waiting GETs answered empty, its acked history, settings, paused
flag and dedup ids, and ``<queue>.dead`` only when asked). Each is linear in
the messages held (PURGE, DELETE) or in the queue's ready ones (REMOVE and
REDRIVE with ids rebuild its ready order once per request), reports to the
journal, and moves counters by rows of the lifecycle table (lifecycle.py).
Must never: remove a leased message but by DELETE of its queue, or read a clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from broker.engine.dispatch import Dispatch
from broker.engine.lifecycle import (
    PURGE,
    PURGE_DELAYED,
    PURGE_PLAIN,
    REDRIVE,
    REDRIVE_DELAYED,
    REMOVE,
    REMOVE_DELAYED,
    REMOVE_LEASED,
    REMOVE_PLAIN,
)
from broker.engine.message import DELAYED, LEASED, READY, Message
from broker.engine.queue import Queue
from broker.engine.state import GONE
from broker.engine.values import Picked
from broker.errors import NotFound
from broker.protocol.names import DEAD_SUFFIX

_REMOVE_ROWS = {READY: REMOVE, DELAYED: REMOVE_DELAYED, LEASED: REMOVE_LEASED}


class Management(Dispatch):
    def _objects_of(self, q: Queue) -> list[Message]:
        """The messages of ``q`` that have objects, in queue order (O(all messages))."""
        msgs = [m for m in self._messages.values() if m.queue is q]
        msgs.sort(key=lambda m: (m.priority, m.order))
        return msgs

    def _existing(self, queue_name: str) -> Queue:
        q = self._queues.get(queue_name)
        if q is None:
            raise NotFound(f"no queue named {queue_name!r}")
        return q

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
        if not moved:
            return 0  # (and ``queue`` is not made)
        self.create(queue_name)  # before any change: refused past max-queues
        src.drop_from_chains([m for m in moved if m.key is not None])
        src.clear_ready()  # every READY message of src moves
        self._move_back(now, src, queue_name, moved)
        return len(moved)

    def redrive_ids(self, now: float, queue_name: str, seqs: Sequence[int]) -> Picked:
        """Move the named messages of ``<queue>.dead`` back to ``queue`` (ready or delayed
        ones; attempts reset); each id in turn, a leased one or an id not there listed."""
        src = self._queues.get(queue_name + DEAD_SUFFIX)
        if src is None:
            return Picked(0, [], list(seqs))
        moved, plain, out = self._pick(src, seqs)
        assert not plain, "a dead-letter queue holds no compact message"
        if moved:
            self.create(queue_name)  # before any change: refused past max-queues
        self._free_heads(src, src.take_out(moved))
        self._move_back(now, src, queue_name, moved)
        return out

    def _move_back(self, now: float, src: Queue, queue_name: str, moved: list[Message]) -> None:
        """Append ``moved`` (taken out of ``src``'s order) to ``queue_name``, in their order."""
        if not moved:
            self._settle(now)
            return
        moved.sort(key=lambda m: m.order)
        dst = self.queue(queue_name)
        for msg in moved:
            redrive = REDRIVE if msg.state == READY else REDRIVE_DELAYED
            redrive(self._tally, src, 1, len(msg.body))
            msg.attempts = 0
            msg.due_at = GONE  # a delayed one is ready at once
            self._enqueue_moved(msg, dst)
        dst.totals["redriven"] += len(moved)
        self.journal.redrive(moved, src)
        self._wake(dst)
        self._settle(now)

    def remove(self, now: float, queue_name: str, seqs: Sequence[int]) -> Picked:
        """Delete the named ready or delayed messages of a queue, each id in turn; a leased
        one, or an id that is no message of the queue, is listed instead."""
        q = self._existing(queue_name)
        msgs, plain, out = self._pick(q, seqs)
        tally = self._tally
        if plain:
            _, size = q.compact.discard(plain)
            REMOVE_PLAIN(tally, q, len(plain), size)
        for msg in msgs:
            del self._messages[msg.seq]
            _REMOVE_ROWS[msg.state](tally, q, 1, len(msg.body))
        self._free_heads(q, q.take_out(msgs))
        for msg in msgs:
            msg.due_at = GONE
        if out.done:
            gone = set(plain).union(m.seq for m in msgs)
            self.journal.purge(q, [seq for seq in dict.fromkeys(seqs) if seq in gone])
        self._settle(now)
        return out

    def _pick(self, q: Queue, seqs: Sequence[int]) -> tuple[list[Message], set[int], Picked]:
        """Sort the ids named for ``q``, in turn: its ready and delayed messages (with
        objects, and compact), its leased ones, and the rest (an id named twice is
        not found the second time)."""
        msgs: list[Message] = []
        plain: set[int] = set()
        out = Picked(0, [], [])
        taken: set[int] = set()
        for seq in seqs:
            msg = self._messages.get(seq)
            if seq in taken:
                out.not_found.append(seq)
            elif msg is not None and msg.queue is q:
                if msg.state == LEASED:
                    out.leased.append(seq)
                    continue
                msgs.append(msg)
                taken.add(seq)
            elif msg is None and q.compact.find(seq) is not None:
                plain.add(seq)
                taken.add(seq)
            else:
                out.not_found.append(seq)
        out.done = len(taken)
        return msgs, plain, out

    def _free_heads(self, q: Queue, freed: list[Message]) -> None:
        """Messages that now head their key chain and are READY become deliverable."""
        for msg in freed:
            q.push_ready(msg)
            self._wake(q)

    def delete(self, now: float, queue_name: str, dead: bool = False) -> int:
        """Delete a queue and every message in it (and its ``.dead`` queue with ``dead``);
        returns how many messages went. Its waiting GETs end with no messages."""
        q = self._existing(queue_name)
        deleted = self._delete_queue(q)
        dead_q = self._queues.get(queue_name + DEAD_SUFFIX) if dead else None
        if dead_q is not None:
            deleted += self._delete_queue(dead_q)
        self._settle(now)
        return deleted

    def _delete_queue(self, q: Queue) -> int:
        for waiter in list(q.waiters):
            if waiter.active:
                self._end_empty(waiter)
        msgs = self._objects_of(q)
        tally = self._tally
        plain_seqs = list(q.compact.live_seqs())
        REMOVE_PLAIN(tally, q, len(plain_seqs), q.compact.total_bytes())
        for msg in msgs:
            del self._messages[msg.seq]
            _REMOVE_ROWS[msg.state](tally, q, 1, len(msg.body))
            if msg.state == LEASED:
                owned = self._owned.get(msg.owner)
                if owned is not None:
                    owned.discard(msg)
                msg.owner = None
            msg.due_at = GONE
        q.acked_in.deleted = True  # INFO of an id acked in it says not_found from now on
        self._dedup.forget_queue(q)
        if q.bucket is not None:
            q.bucket.due_at = math.nan
            q.bucket = None
        q.clear_ready()
        q.chains.clear()
        del self._queues[q.name]
        self._woken.pop(q, None)
        self.journal.drop(q, plain_seqs + [m.seq for m in msgs])
        return len(plain_seqs) + len(msgs)
