"""PURGE, REDRIVE and DELETE a slice at a time: long ones never hold the caller for long.

Owns: ``Purge``, ``Redrive`` and ``Delete`` (PURGEs, then the delete of what
is left), an operation on one queue as a job whose
``step(now, budget)`` looks at no more than about ``budget`` messages and leaves
the engine whole (counted, journaled, waiters served: ``_settle``), so the
caller may run other requests between two steps. A job works on the messages
its queue holds when it begins: their order is below its ``watermark`` (the
next sequence number then; a message put, dead-lettered or redriven later has
a higher one). A step costs what it looks at: it takes messages from where the
queue keeps them, never by a pass over the engine's messages, in three phases:
  1. the deliverable ready messages: the compact ones from the head of their
     fifo, the others from the head of the fifo and the top of the heap (a
     keyed one lets the next of its key go, which comes out here too);
  2. the delayed ones without a key (``Purge`` only), from a copy of the
     queue's delayed set taken when the phase begins;
  3. the key chains (a copy of their keys, taken when the phase begins): what
     is left of each chain behind its leased or deliverable head, or behind a
     delayed message that held the rest back; a long chain over several steps
     (between two, the old ready message that heads it stays held back, not
     deliverable, until the next step takes it).
``Purge`` deletes ready and delayed messages (leased ones stay). ``Redrive``
moves the ready messages of ``<queue>.dead`` to the end of ``<queue>``, in the
order they come out (by priority, then order: the order they are delivered
in), with their attempts reset; delayed ones stay; the ready ones still held
back by a leased or delayed one of their key go last, in one step that walks
every chain of the queue once (delayed ones stay between the ones that go). A
message that becomes ready or delayed while a job runs (a NACK, a lease that
runs out) may be left: it was leased when the job began (and does not count in
STATS' ``oldest_ready_age`` until it is delivered again: the queue's aged list
starts anew with the job, the old one let go a slice at a time). A job on a queue
that is deleted meanwhile ends.
Must never: look at a message that is not its queue's, leave the engine in
between at the end of a step, or read a clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from broker.engine.footprint import extra_cost
from broker.engine.lifecycle import PURGE, PURGE_DELAYED, PURGE_PLAIN, REDRIVE
from broker.engine.message import DELAYED, LEASED, READY, Message
from broker.engine.queue import Queue
from broker.engine.state import GONE, NOWHERE
from broker.protocol.names import DEAD_SUFFIX

if TYPE_CHECKING:
    from broker.engine.management import Management

#: a step's budget when the caller does not slice (the engine's own purge and redrive)
WHOLE: Final = 1 << 62

#: a phase: (queue, budget) -> (messages looked at, whether the phase is over)
Phase = Callable[[Queue, int], tuple[int, bool]]


class Sliced:
    """What ``Purge`` and ``Redrive`` share: the phases, and the walk of a key chain."""

    def __init__(self, engine: Management, q: Queue | None) -> None:
        self.engine = engine
        self.q = q
        self.watermark = engine.next_seq
        self.count = 0  # messages handled so far: the reply's figure
        self._phases: list[Phase] = [self._ready, self._delayed_phase, self._chains]
        if q is None:
            self._phases = []
        self._delayed: list[Message] | None = None  # phase 2's copy, once it begins
        self._keys: list[str] | None = None  # phase 3's copy, once it begins
        self._held_head: Message | None = None  # a chain's head a cut-short walk held back
        # the queue's aged list as it was (every entry in it goes stale as the job goes
        # on): let go a slice a step, never all at once (a million entries free slowly)
        self._aged: list[tuple[float, int, Message]] | None = None

    @property
    def finished(self) -> bool:
        return not self._phases and not self._aged

    def step(self, now: float, budget: int = WHOLE) -> bool:
        """Look at about ``budget`` more messages; True once the job is finished."""
        q = self.q
        if q is None or self.finished:
            return True
        if self._aged is None:  # what the queue holds ready now all goes: its aged list too
            self._aged, q.aged = q.aged, []
        del self._aged[-max(1, budget) * 4 :]
        if self.engine.find_queue(q.name) is not q:  # deleted meanwhile
            self._phases = []
            return self.finished
        left = max(1, budget)
        while left > 0 and self._phases:
            used, over = self._phases[0](q, left)
            left -= used
            if over:
                del self._phases[0]
        self._flush(q)
        self.engine._settle(now)
        return self.finished

    def _ready(self, q: Queue, budget: int) -> tuple[int, bool]:
        """Phase 1: deliverable ready messages below the watermark (the fifo's head, then
        the heap's top; ``_plain`` first)."""
        looked = self._plain(q, budget)
        fifo, heap, mark = q.fifo, q.heap, self.watermark
        newer: list[tuple[int, int, Message]] = []  # heap entries put since the job began
        while looked < budget:  # in delivery order: the fifo's head or the heap's top
            old_head = fifo[0] if fifo and fifo[0].order < mark else None
            if heap and (old_head is None or heap[0][:2] < (0, old_head.order)):
                entry = heapq.heappop(heap)
                if entry[1] < mark:
                    self._take(q, entry[2], True)
                else:
                    newer.append(entry)
            elif old_head is not None:
                self._take(q, fifo.popleft(), True)
            else:
                break
            looked += 1
        heap_done = not heap
        for entry in newer:
            heapq.heappush(heap, entry)
        fifo_done = not fifo or fifo[0].order >= mark
        return looked, heap_done and fifo_done and self._plain_done(q)

    def _plain(self, q: Queue, budget: int) -> int:
        """The compact messages of phase 1 (``Purge`` only): how many were looked at."""
        return 0

    def _plain_done(self, q: Queue) -> bool:
        return True

    def _delayed_phase(self, q: Queue, budget: int) -> tuple[int, bool]:
        """Phase 2: the delayed messages without a key (``Purge`` only)."""
        return 0, True

    def _chains(self, q: Queue, budget: int) -> tuple[int, bool]:
        """Phase 3: the key chains, one at a time (a long one across steps)."""
        if self._keys is None:
            self._keys = list(q.chains)
        looked, keys = 0, self._keys
        while looked < budget and keys:  # from the end, letting go of each key as it is done
            used, done = self._walk(q, keys[-1], budget - looked)
            looked += max(1, used)
            if done:
                keys.pop()
        return looked, not keys

    def _walk(self, q: Queue, key: str, budget: int) -> tuple[int, bool]:
        """Take up to ``budget`` of one chain's messages below the watermark, but its
        leased head, its deliverable head and what this job keeps (``_keeps``); relink
        the rest. (messages looked at, whether the chain is done)."""
        chain = q.chains.get(key)
        if chain is None:
            return 0, True
        first = chain[0]
        # a ready head is in the ready order, unless the last step left it held (cut short)
        deliverable = first.state == READY and first is not self._held_head
        mark = self.watermark
        kept: list[Message] = []
        node: Message | None = first
        looked = 0
        while node is not None and node.order < mark and looked < budget:
            looked += 1
            nxt = node.key_next
            if node.state == LEASED or (node is first and deliverable) or self._keeps(node):
                if kept:
                    kept[-1].key_next = node
                kept.append(node)
            else:
                node.key_next = None
                self._take(q, node, False)
            node = nxt
        if kept:  # relink: the kept ones, then what was not looked at
            kept[-1].key_next = node
            chain[0] = kept[0]
            if node is None:
                chain[1] = kept[-1]
        elif node is not None:
            chain[0] = node
        else:
            q.chains.pop(key, None)
            return looked, True
        done = node is None or node.order >= mark
        head = chain[0]
        self._held_head = None
        if head is not first and head.state == READY:
            if done:
                q.push_ready(head)  # its new head was held back: it may go now
                self.engine._wake(q)
            else:  # an old one, cut short: held until the next step takes it
                self._held_head = head
        return looked, done

    def _keeps(self, msg: Message) -> bool:
        """Whether a chain member this job leaves in place (a delayed one, for REDRIVE)."""
        return False

    def _take(self, q: Queue, msg: Message, deliverable: bool) -> None:
        """Handle one message, taken out of the ready order (``deliverable``: the head of
        its chain if keyed) or out of its chain by ``_walk``."""
        raise NotImplementedError

    def _flush(self, q: Queue) -> None:
        """Journal and count what this step handled."""
        raise NotImplementedError


class Purge(Sliced):
    """PURGE: delete the ready and delayed messages of a queue; leased ones stay."""

    def __init__(self, engine: Management, q: Queue | None) -> None:
        super().__init__(engine, q)
        self._gone: list[int] = []  # ids deleted by this step, for the journal

    def _plain(self, q: Queue, budget: int) -> int:
        seqs, size = q.compact.drop_head(budget, self.watermark)
        if seqs:
            PURGE_PLAIN(self.engine._tally, q, len(seqs), size)
            self._gone.extend(seqs)
            self.count += len(seqs)
        return len(seqs)

    def _plain_done(self, q: Queue) -> bool:
        compact = q.compact
        return not compact.n or compact.seqs[compact.head] >= self.watermark

    def _delayed_phase(self, q: Queue, budget: int) -> tuple[int, bool]:
        if self._delayed is None:
            self._delayed = list(q.delayed)
        listed, mark = self._delayed, self.watermark
        looked = 0
        while looked < budget and listed:  # from the end: the copy lets go as it goes
            msg = listed.pop()
            looked += 1
            if msg.queue is q and msg.state == DELAYED and msg.key is None and msg.order < mark:
                self._take(q, msg, False)
        return looked, not listed

    def _take(self, q: Queue, msg: Message, deliverable: bool) -> None:
        engine = self.engine
        if deliverable and msg.key is not None:
            engine._unblock_key(q, msg)  # the next of its key may go: phase 1 takes it too
        engine._messages.pop(msg.seq, None)
        engine._extra -= extra_cost(msg)
        if msg.state == DELAYED:
            q.delayed.discard(msg)
            PURGE_DELAYED(engine._tally, q, 1, len(msg.body))
        else:
            PURGE(engine._tally, q, 1, len(msg.body))
        msg.due_at = GONE
        msg.queue = NOWHERE  # what still points at it (the queue's aged list) lets go
        self._gone.append(msg.seq)
        self.count += 1

    def _flush(self, q: Queue) -> None:
        if self._gone:
            q.totals["purged"] += len(self._gone)
            self.engine.journal.purge(q, self._gone)
            self._gone = []


class Redrive(Sliced):
    """REDRIVE: move the ready messages of ``<queue>.dead`` to the end of ``<queue>``."""

    def __init__(self, engine: Management, src: Queue | None, dst: Queue | None) -> None:
        super().__init__(engine, src)
        self.dst = dst
        self._moved: list[Message] = []  # moved by this step, for the journal

    def _chains(self, q: Queue, budget: int) -> tuple[int, bool]:
        """Phase 3, in one step: the ready messages their keys still hold back (behind a
        leased or delayed one, which stay), by priority then order, every chain walked
        once (delayed ones stay between the ones that go)."""
        mark = self.watermark
        held = [m for m in q.held_back() if m.order < mark]
        held.sort(key=lambda m: (m.priority, m.order))
        q.drop_from_chains(held)  # (never a head: each chain keeps its own)
        for msg in held:
            self._take(q, msg, False)
        return len(held) + len(q.chains), True

    def _take(self, q: Queue, msg: Message, deliverable: bool) -> None:
        engine, dst = self.engine, self.dst
        assert dst is not None
        if deliverable and msg.key is not None:
            engine._unblock_key(q, msg)
        REDRIVE(engine._tally, q, 1, len(msg.body))
        msg.attempts = 0
        msg.due_at = GONE
        engine._enqueue_moved(msg, dst)
        self._moved.append(msg)
        self.count += 1

    def _flush(self, q: Queue) -> None:
        if self._moved:
            dst = self.dst
            assert dst is not None
            dst.totals["redriven"] += len(self._moved)
            self.engine.journal.redrive(self._moved, q)
            self.engine._wake(dst)
            self._moved = []


class Delete:
    """DELETE of a queue (and of its ``.dead`` queue with ``dead``) in slices: PURGEs of
    them first, then the delete itself, of what is left (leased messages, and what came
    meanwhile), waiting GETs answered empty then. ``count``: every message that went."""

    def __init__(self, engine: Management, queue_name: str, dead: bool) -> None:
        self.engine = engine
        self.queue_name = queue_name
        self.dead = dead
        names = [queue_name, queue_name + DEAD_SUFFIX] if dead else [queue_name]
        self._purges = [Purge(engine, engine.find_queue(name)) for name in names]
        self.count = 0
        self.finished = False

    def step(self, now: float, budget: int = WHOLE) -> bool:
        """Purge about ``budget`` more messages; once none is left, delete. True once done."""
        if self.finished:
            return True
        while self._purges:
            purge = self._purges[0]
            if not purge.step(now, budget):
                return False
            self.count += purge.count
            del self._purges[0]
        if self.engine.find_queue(self.queue_name) is not None:  # (not deleted meanwhile)
            self.count += self.engine.delete(now, self.queue_name, self.dead)
        self.finished = True
        return True
