"""Queue management: commands that act on a queue's messages as an operator would.

Owns: deleting every ready and delayed message of a queue (PURGE: leased ones
stay until their lease ends); moving ready messages of ``<queue>.dead`` back
to ``<queue>`` with their attempts reset (REDRIVE: all of them, or those
named, delayed ones too); deleting named ready or delayed messages (REMOVE:
a leased one is reported, never removed, since its holder may be working on
it); and deleting a whole queue (DELETE: every message, ready, delayed or
leased, its waiting GETs answered empty, its acked history, settings, paused
flag and dedup ids, and ``<queue>.dead`` only when asked). PURGE and REDRIVE
of a whole queue, and DELETE, are jobs that may run a slice at a time
(``purging``, ``redriving``, ``deleting``: sliced.py); ``purge``, ``redrive``
and ``delete`` do it at once.
Each costs what its queue holds, never what the engine holds (REMOVE and
REDRIVE with ids rebuild its ready order once per request), reports to the
journal, and moves counters by rows of the lifecycle table (lifecycle.py).
Must never: remove a leased message but by DELETE of its queue, or read a clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from broker.engine.commands import Commands
from broker.engine.footprint import extra_cost
from broker.engine.lifecycle import (
    REDRIVE,
    REDRIVE_DELAYED,
    REMOVE,
    REMOVE_DELAYED,
    REMOVE_LEASED,
    REMOVE_PLAIN,
)
from broker.engine.message import DELAYED, LEASED, READY, Message
from broker.engine.queue import Queue
from broker.engine.sliced import WHOLE, Delete, Purge, Redrive
from broker.engine.state import GONE
from broker.engine.values import Picked
from broker.errors import NotFound
from broker.protocol.names import DEAD_SUFFIX

_REMOVE_ROWS = {READY: REMOVE, DELAYED: REMOVE_DELAYED, LEASED: REMOVE_LEASED}


class Management(Commands):
    def _existing(self, queue_name: str) -> Queue:
        q = self._queues.get(queue_name)
        if q is None:
            raise NotFound(f"no queue named {queue_name!r}")
        return q

    def purging(self, queue_name: str) -> Purge:
        """A PURGE of ``queue_name`` to run a slice at a time (sliced.py): its ready and
        delayed messages go, leased ones stay. Nothing changes until its first step."""
        return Purge(self, self._queues.get(queue_name))

    def purge(self, now: float, queue_name: str) -> int:
        """PURGE at once (``purging`` run to its end): how many messages went."""
        job = self.purging(queue_name)
        job.step(now, WHOLE)
        return job.count

    def redriving(self, queue_name: str) -> Redrive:
        """A REDRIVE of ``<queue_name>.dead`` into ``queue_name``, to run a slice at a time:
        its ready messages move, attempts reset. ``queue_name`` is made now if there is
        anything to move (``MemoryLimit`` past max-queues, before anything moves)."""
        src = self._queues.get(queue_name + DEAD_SUFFIX)
        if src is None or not src.n_ready:
            return Redrive(self, None, None)  # nothing ready: no queue is made
        assert not src.compact.n, "a dead-letter queue holds no compact message"
        return Redrive(self, src, self.create(queue_name))

    def redrive(self, now: float, queue_name: str) -> int:
        """REDRIVE at once (``redriving`` run to its end): how many messages moved."""
        job = self.redriving(queue_name)
        job.step(now, WHOLE)
        return job.count

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
            if msg.state == READY:
                REDRIVE(self._tally, src, 1, len(msg.body))
            else:
                src.delayed.discard(msg)
                REDRIVE_DELAYED(self._tally, src, 1, len(msg.body))
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
            self._messages.pop(msg.seq, None)
            self._extra -= extra_cost(msg)
            _REMOVE_ROWS[msg.state](tally, q, 1, len(msg.body))
            if msg.state == DELAYED:
                q.delayed.discard(msg)
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

    def deleting(self, queue_name: str, dead: bool = False) -> Delete:
        """A DELETE to run a slice at a time (sliced.py): ``NotFound`` now if there is no
        such queue; its messages go by PURGEs first, then the rest with the queue."""
        self._existing(queue_name)
        return Delete(self, queue_name, dead)

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
        msgs = q.objects()
        tally = self._tally
        plain_seqs = list(q.compact.live_seqs())
        REMOVE_PLAIN(tally, q, len(plain_seqs), q.compact.total_bytes())
        self._let_go(q)  # its leases: their owners hold them no more
        for msg in msgs:
            self._messages.pop(msg.seq, None)
            self._extra -= extra_cost(msg)
            _REMOVE_ROWS[msg.state](tally, q, 1, len(msg.body))
            msg.owner = None
            msg.due_at = GONE
        q.acked_in.deleted = True  # INFO of an id acked in it says not_found from now on
        self._dedup.forget_queue(q)
        if q.bucket is not None:
            q.bucket.due_at = math.nan
            q.bucket = None
        q.clear_ready()
        q.chains.clear()
        q.delayed.clear()
        del self._queues[q.name]
        self._names.discard(q.name)
        self._woken.pop(q, None)
        self.journal.drop(q, plain_seqs + [m.seq for m in msgs])
        return len(plain_seqs) + len(msgs)
