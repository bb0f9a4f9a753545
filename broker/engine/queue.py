"""One named queue: its ready order, key chains, waiting consumers and counters.

Owns: which ready message of a queue is delivered next. Ready messages live in
three structures: ``compact``, the never-delivered plain messages (priority 0,
no key, no delay) in put order, kept without ``Message`` objects (see
compact.py; a ``Message`` is built when one is popped); ``fifo``, a deque of
other priority-0 messages in order (O(1) push and pop); and ``heap``, a heap of
(priority, order, message); orders are unique within a queue for everything else (other priorities,
released messages going back to their original place, keyed messages whose
turn has come). The next message is the smallest (priority, order) of the three heads.
A keyed message is in none of them until it is the head of its key chain.
Its delayed messages are kept in a set (``delayed``) and its leased ones in a
set per lease owner (``holders``), so that everything it holds can be found
without a pass over the engine's messages.
Its counters (``n_ready``, ``n_delayed``, ``n_leased``, ``bytes``) follow
its messages' places and change only by the moves of lifecycle.py.
It also holds what the engine keeps per queue besides its messages: its
settings (overrides, and the effective values of settings.py), whether it is
paused, its rate limit's bucket (rate.py), its dedup ids (dedup.py), and
whether it was idle when last looked at (forgetting.py). ``AckedIn`` is what
the engine's acked history keeps of it.
Must never: decide lifecycle transitions or change its own counters (the
engine does); it only orders.
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count
from typing import TYPE_CHECKING, Final

from broker.engine.compact import CompactFifo
from broker.engine.message import READY, Message
from broker.engine.paged import PagedDict, PagedSet, id_page
from broker.engine.settings import DEFAULT, Settings
from broker.protocol.names import COUNTERS, DEAD_SUFFIX

if TYPE_CHECKING:
    from collections.abc import Collection

    from broker.engine.rate import Bucket
    from broker.engine.waiter import Waiter


#: the lease owner under which a queue keeps the messages leased to receipts (each
#: receipt is an owner of its own, which the engine does not track)
RECEIPTS: Final = "(receipts)"


def _seq_page(msg: Message) -> int:
    """The page of a delayed message (``PagedSet``): the range of its id."""
    return id_page(msg.seq)


class AckedIn:
    """The queue a message was acked in, as the acked history keeps it: its name, and
    whether it was deleted since. Shared by every id acked in one queue (made again,
    a queue gets a new one), and light: the history outlives a forgotten queue."""

    __slots__ = ("deleted", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.deleted = False


class Queue:
    __slots__ = (
        "_aged_n",
        "acked_in",
        "aged",
        "bucket",
        "bytes",
        "chains",
        "compact",
        "dedup",
        "dedup_window_s",
        "delayed",
        "fifo",
        "gated",
        "heap",
        "holders",
        "idle_mark",
        "is_dead",
        "lease_s",
        "max_attempts",
        "max_length",
        "n_delayed",
        "n_leased",
        "n_ready",
        "n_waiting",
        "name",
        "paused",
        "settings",
        "totals",
        "waiters",
    )

    def __init__(self, name: str, max_attempts: int) -> None:
        self.name = name
        self.is_dead = name.endswith(DEAD_SUFFIX)
        # of a message put without one, and of those built from ``compact``
        self.max_attempts = max_attempts
        # settings: the overrides, and the effective values (set by the engine, state.py)
        self.settings: Settings = DEFAULT
        self.lease_s = 0.0  # of a GET or TOUCH that names no lease
        self.max_length: int | None = None  # None: no limit
        self.dedup_window_s = 0.0
        self.bucket: Bucket | None = None  # the rate limit, if any
        self.paused = False
        self.gated = False  # paused or rate limited: a GET asks before it leases
        self.dedup: dict[str, tuple[int, float]] = {}  # dedup id -> (seq, expires_at)
        self.compact = CompactFifo()
        self.fifo: deque[Message] = deque()
        self.heap: list[tuple[int, int, Message]] = []
        # key -> [head, tail] of a singly linked chain through Message.key_next
        self.chains: PagedDict[str, list[Message]] = PagedDict(by_id=False)
        # its DELAYED messages, and its LEASED ones by lease owner (each set is also the
        # engine's for that owner and queue; receipts share one, under RECEIPTS), so that
        # PEEK and DELETE cost what this queue holds, not what the engine holds
        self.delayed: PagedSet[Message] = PagedSet(_seq_page)
        self.holders: dict[object, set[Message]] = {}
        self.waiters: deque[Waiter] = deque()
        self.n_waiting = 0
        # moved by the rows of the lifecycle table only (lifecycle.py)
        self.n_ready = 0  # READY messages, deliverable or held back by their key
        self.n_delayed = 0
        self.n_leased = 0
        self.bytes = 0
        self.totals = dict.fromkeys(COUNTERS, 0)
        self.acked_in = AckedIn(name)  # what the acked history keeps of this queue
        # READY messages outside the fifo (in ``heap``, or held back by their key),
        # by put time, for the age of the oldest ready message; lazily cleaned:
        # an entry whose message is no longer READY in this queue is dropped on sight.
        self.aged: list[tuple[float, int, Message]] = []
        self._aged_n = count()
        # forgetting.py: its counters summed when last seen idle (-1: not idle then)
        self.idle_mark = -1

    @property
    def size(self) -> int:
        return self.n_ready + self.n_delayed + self.n_leased

    # ready order -------------------------------------------------------

    def push_ready(self, msg: Message) -> None:
        """Make a READY message deliverable, keeping (priority, order).

        The fifo stays sorted by order and by put time, so its head is its oldest.
        """
        fifo = self.fifo
        if msg.priority == 0 and (
            not fifo or (fifo[-1].order < msg.order and fifo[-1].put_at <= msg.put_at)
        ):
            fifo.append(msg)
        else:
            heapq.heappush(self.heap, (msg.priority, msg.order, msg))
            self.note_aged(msg)

    def admit(self, msg: Message, deliverable: bool) -> None:
        """Place a message that became READY: deliverable, or held back by its key."""
        if deliverable:
            self.push_ready(msg)
        else:
            self.note_aged(msg)

    def note_aged(self, msg: Message) -> None:
        """Remember a READY message outside the fifo for ``oldest_ready_at``."""
        aged = self.aged
        heapq.heappush(aged, (msg.put_at, next(self._aged_n), msg))
        if len(aged) > 2 * self.n_ready + 64:
            self.aged = [e for e in aged if e[2].state == READY and e[2].queue is self]
            heapq.heapify(self.aged)

    def oldest_ready_at(self) -> float | None:
        """Put time of the oldest READY message (deliverable or held back by its key)."""
        aged = self.aged
        while aged and (aged[0][2].state != READY or aged[0][2].queue is not self):
            heapq.heappop(aged)
        oldest = aged[0][0] if aged else None
        if self.fifo:
            head_at = self.fifo[0].put_at
            if oldest is None or head_at < oldest:
                oldest = head_at
        if self.compact.n:
            head_at = self.compact.head_put_at()
            if oldest is None or head_at < oldest:
                oldest = head_at
        return oldest

    def pop_ready(self, k: int, budget: int) -> list[Message]:
        """Remove and return the next deliverable messages, in order (none if there are none).

        Up to ``k`` (>= 1) of them when they are a run of compact messages (built
        in one go, at least one, then until their bodies reach ``budget`` bytes),
        otherwise one.
        """
        compact = self.compact
        run = compact.n  # how many compact ones come next, before any other
        if run:
            fifo, heap = self.fifo, self.heap
            if fifo:
                run = compact.run_before(fifo[0].order)
            if heap and run:
                top = heap[0]
                if top[0] < 0:
                    run = 0
                elif top[0] == 0:
                    run = min(run, compact.run_before(top[1]))
            if run:
                if k == 1 or run == 1:
                    return [compact.pop(self)]
                return compact.pop_run(self, min(run, k), budget)
        msg = self._pop_object()
        return [msg] if msg is not None else []

    def view(self, seq: int) -> Message | None:
        """A snapshot of the compact message ``seq`` (not the live record), if it is here."""
        found = self.compact.find(seq)
        if found is None:
            return None
        return Message(seq, self, found[0], None, 0, self.max_attempts, found[1])

    def compact_views(self, limit: int | None = None) -> list[Message]:
        """Snapshots of the first ``limit`` compact messages (all if None), in order."""
        n = self.max_attempts
        return [
            Message(seq, self, body, None, 0, n, put_at)
            for seq, body, put_at in self.compact.items(limit)
        ]

    def _pop_object(self) -> Message | None:
        fifo, heap = self.fifo, self.heap
        if heap:
            if fifo:
                top = heap[0]
                head = fifo[0]
                if top[0] < 0 or (top[0] == 0 and top[1] < head.order):
                    return heapq.heappop(heap)[2]
                return fifo.popleft()
            return heapq.heappop(heap)[2]
        if fifo:
            return fifo.popleft()
        return None

    def takes_compact(self, seq: int, put_at: float) -> bool:
        """The queue's half of the plain-message rule (``compact.is_plain`` is the
        message's): a plain message may join ``compact`` unless this is a dead-letter
        queue, and only after its compact messages in id and put-time order."""
        compact = self.compact
        return not self.is_dead and (
            not compact.n or (compact.seqs[-1] < seq and compact.put_ats[-1] <= put_at)
        )

    def objects(self) -> list[Message]:
        """Every message of this queue that has an object, once each, in no particular
        order: O(what it holds), whatever the engine holds."""
        found: dict[Message, None] = dict.fromkeys(self.fifo)
        found.update(dict.fromkeys(e[2] for e in self.heap))
        for head, _ in self.chains.values():
            node: Message | None = head
            while node is not None:
                found[node] = None
                node = node.key_next
        found.update(dict.fromkeys(self.delayed))
        for leased in self.holders.values():
            found.update(dict.fromkeys(leased))
        return list(found)

    def held_back(self) -> list[Message]:
        """The ready messages a key holds back (in a chain, behind its head)."""
        out: list[Message] = []
        for head, _ in self.chains.values():
            node = head.key_next
            while node is not None:
                if node.state == READY:
                    out.append(node)
                node = node.key_next
        return out

    def has_deliverable(self) -> bool:
        return bool(self.compact.n) or bool(self.fifo) or bool(self.heap)

    def clear_ready(self) -> None:
        """Forget every READY message (PURGE and REDRIVE remove all of them)."""
        self.compact.clear()
        self.fifo.clear()
        self.heap.clear()
        self.aged.clear()

    # key chains ---------------------------------------------------------

    def chain_append(self, msg: Message) -> bool:
        """Add a keyed message to its chain; True if it is now the head."""
        key = msg.key
        assert key is not None
        chain = self.chains.get(key)
        if chain is None:
            self.chains.put(key, [msg, msg])
            return True
        chain[1].key_next = msg
        chain[1] = msg
        return False

    def chain_is_head(self, msg: Message) -> bool:
        assert msg.key is not None
        chain = self.chains.get(msg.key)
        return chain is not None and chain[0] is msg

    def chain_pop_head(self, msg: Message) -> Message | None:
        """Remove ``msg`` (the head) from its chain; return the new head, if any."""
        assert msg.key is not None
        chain = self.chains.get(msg.key)
        assert chain is not None and chain[0] is msg, "only the head of a key chain can leave it"
        nxt = msg.key_next
        msg.key_next = None
        if nxt is None:
            self.chains.pop(msg.key, None)
            return None
        chain[0] = nxt
        return nxt

    def take_out(self, gone: Collection[Message]) -> list[Message]:
        """Take chosen READY and DELAYED messages (with objects) out of the ready order and
        their key chains (REMOVE, REDRIVE with ids): one pass over the ready order.

        Returns the messages that now head their key chain and are READY: they were
        held back, and the caller makes them deliverable.
        """
        doomed = set(gone)
        if any(m.state == READY for m in doomed):
            self.fifo = deque(m for m in self.fifo if m not in doomed)
            self.heap = [e for e in self.heap if e[2] not in doomed]
            heapq.heapify(self.heap)
            self.aged = [e for e in self.aged if e[2] not in doomed]
            heapq.heapify(self.aged)
        keyed = [m for m in doomed if m.key is not None]
        heads = {m.key: self.chains[m.key][0] for m in keyed if m.key is not None}
        self.drop_from_chains(keyed)
        freed: list[Message] = []
        for key, head in heads.items():
            chain = self.chains.get(key)
            if chain is not None and chain[0] is not head and chain[0].state == READY:
                freed.append(chain[0])
        return freed

    def drop_from_chains(self, gone: Collection[Message]) -> None:
        """Remove many keyed messages from their chains at once.

        One walk per chain touched, so PURGE and REDRIVE stay linear however the
        removed messages interleave with the ones that stay. The caller makes the
        new heads deliverable if they should be.
        """
        if not gone:
            return
        doomed = set(gone)
        for key in {m.key for m in gone}:
            assert key is not None
            chain = self.chains[key]
            head: Message | None = None
            tail: Message | None = None
            msg: Message | None = chain[0]
            while msg is not None:
                nxt = msg.key_next
                msg.key_next = None
                if msg not in doomed:
                    if tail is None:
                        head = msg
                    else:
                        tail.key_next = msg
                    tail = msg
                msg = nxt
            if head is None or tail is None:
                self.chains.pop(key, None)
            else:
                chain[0], chain[1] = head, tail
