"""Everything the engine holds, and the few helpers every part of it shares.

Owns: the engine's structures (declared once, here): the queues by name (and
their names in order, names.py, for pages of STATS and QUEUES), the
messages by id (compact ones through their index), the leases by owner, the
waiting GETs by owner, the deadline heap, the recently acked ids (the acked
history: at most ``acked_history`` over every queue, with the attempts each
took), the dedup ids (dedup.py), the counters (a ``Tally``, see
lifecycle.py), and what one call produced and has not handed out yet
(deliveries, woken queues, log events). Also the queue registry (a queue is
created with the server's settings; ``_apply`` gives it others), the sequence
numbers, and marking a queue whose waiters must be served.
A queue is made only by what stores something in it (``create``: a PUT,
CONFIG or PAUSE, limited to ``max-queues``; ``queue``: a dead letter, a
redrive or a restart, never refused, so nothing held is lost); waiting GETs on
a name with no queue wait in its ``Lobby`` (waiter.py), which the queue made
under that name takes over. Forgetting idle queues is forgetting.py.
The engine's behaviour is in the modules that build on ``EngineState``, one
concept each: intake.py, leases.py, dispatch.py, expiry.py, commands.py,
management.py, controls.py, restore.py, views.py, forgetting.py: one chain of
subclasses, in the order engine.py gives.
Must never: change a counter but by a move of the lifecycle table
(lifecycle.py), import asyncio or sockets, or read a clock.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from typing import Final

from broker.config import Config
from broker.engine.compact import CompactIndex
from broker.engine.deadlines import DeadlineHeap, Timed, is_live
from broker.engine.dedup import DedupIds
from broker.engine.journal import Journal, NullJournal
from broker.engine.lifecycle import UNPACK, Tally
from broker.engine.message import Message
from broker.engine.names import SortedNames
from broker.engine.paged import PagedDict
from broker.engine.queue import RECEIPTS, AckedIn, Queue
from broker.engine.rate import Bucket
from broker.engine.settings import DEFAULT, Settings, effective
from broker.engine.waiter import Delivery, Lobby, OwnerWaits
from broker.errors import MemoryLimit

GONE = math.nan  # due_at of a deleted message: equal to no instant, so its heap entries die
#: the queue of a message deleted while lazily cleaned structures may still hold it (a
#: queue's aged list drops an entry whose message is no longer its own)
NOWHERE: Final = Queue("", 1)


class EngineState:
    def __init__(self, config: Config, first_seq: int, journal: Journal | None = None) -> None:
        self.config = config
        self.journal: Journal = journal if journal is not None else NullJournal()
        #: the journal records nothing: per-message reports are skipped, not called
        self._null_journal = type(self.journal) is NullJournal
        self._next_seq = first_seq
        self._queues: dict[str, Queue] = {}
        self._names = SortedNames()  # the keys of _queues in order, kept in step with it
        # every message but the compact ones, by id (paged: it holds millions)
        self._messages: PagedDict[int, Message] = PagedDict(by_id=True)
        self._tally = Tally()
        self._compact = CompactIndex(self._tally.compact)
        # the acked history: seq -> the queue it was acked in, or (that, deliveries it took)
        # when it took more than one (the commonest ACK, of a first delivery, stores no
        # tuple); at most acked_history ids over every queue, the oldest go first
        self._acked: dict[int, AckedIn | tuple[AckedIn, int]] = {}
        self._acked_order: deque[int] = deque()  # the same ids, in the order they were acked
        self._dedup = DedupIds(config.max_dedup_ids, self._queues.get)
        # lease owner -> queue -> the messages it holds leased there (the same set is the
        # queue's ``holders[owner]``, possibly empty: _let_go); receipts are not owners
        # here (Queue.holders only)
        self._owned: dict[object, dict[Queue, set[Message]]] = {}
        self._owner_waiters: dict[object, OwnerWaits] = {}
        # what the keys and headers of the messages held take (footprint.extra_cost)
        self._extra = 0
        # bytes of deliveries an owner can take now (dispatch.py; absent: no limit)
        self._room: dict[object, int] = {}
        # waiting GETs on names with no queue (each lobby holds at least one active waiter)
        self._lobbies: dict[str, Lobby] = {}
        self._deadlines: DeadlineHeap[Timed] = DeadlineHeap(is_live, self._tally.timed)
        self._deliveries: list[Delivery] = []
        # queues where a message became deliverable while waiters wait; served by
        # _settle() once the call's changes are all applied
        self._woken: dict[Queue, None] = {}
        # (queue name, "expired" | "dead_lettered") -> count since take_events(); for logs
        self._events: dict[tuple[str, str], int] = {}
        # forgetting.py: the names of this pass over the queues, how many were looked at,
        # when it began; and how many queues were forgotten since start
        self._sweep_names: list[str] = []
        self._sweep_done = 0
        self._sweep_from = -math.inf
        self.forgotten = 0

    # ------------------------------------------------------------------ queues

    def queue(self, name: str) -> Queue:
        """The queue called ``name``, made if needed past any limit: for what must not
        be refused (a dead letter, a redrive's messages, a restart)."""
        q = self._queues.get(name)
        if q is None:
            q = self._make(name)
        return q

    def create(self, name: str) -> Queue:
        """The queue called ``name``, made if needed for a request that stores something
        in it (PUT, CONFIG, PAUSE): ``MemoryLimit`` past ``max-queues``."""
        q = self._queues.get(name)
        if q is None:
            limit = self.config.max_queues
            if len(self._queues) >= limit:
                raise MemoryLimit(
                    f"the broker holds {len(self._queues)} queues; the limit (max-queues) is "
                    f"{limit}: queue {name!r} cannot be made until one is deleted or forgotten"
                )
            q = self._make(name)
        return q

    def _make(self, name: str) -> Queue:
        q = self._queues[name] = Queue(name, self.config.max_attempts)
        self._names.add(name)
        self._apply(q, DEFAULT, 0.0)
        lobby = self._lobbies.pop(name, None)
        if lobby is not None:  # waiting GETs on this name: the new queue's, in their order
            q.waiters.extend(w for w in lobby.waiters if w.active)
            for waiter in q.waiters:
                waiter.queue = q
            q.n_waiting = lobby.n_waiting
            self._wake(q)
        return q

    def _apply(self, q: Queue, settings: Settings, now: float) -> None:
        """Give ``q`` these settings: its overrides, and the values it works with.

        Compact messages take their ``max_attempts`` from the queue: before it
        changes, the ones waiting get ``Message``s that keep the one they were put with.
        """
        values = effective(settings, self.config)
        q.settings = settings
        q.lease_s = values.lease_s
        if values.max_attempts != q.max_attempts:
            self._unpack(q)
            q.max_attempts = values.max_attempts
        q.max_length = values.max_length
        q.dedup_window_s = values.dedup_window_s
        rate, bucket = values.rate, q.bucket
        if rate is None:
            q.bucket = None
        elif bucket is None:
            q.bucket = Bucket(q, rate, now)
        elif bucket.rate != rate:
            q.bucket = bucket.resized(rate, now)
        q.gated = q.paused or q.bucket is not None

    def _unpack(self, q: Queue) -> None:
        """Give every compact message of ``q`` a ``Message`` (ready, in its place)."""
        n = q.compact.n
        if n:
            msgs = q.compact.pop_run(q, n, sys.maxsize)
            UNPACK(self._tally, q, n, 0)
            for msg in msgs:
                self._messages.put(msg.seq, msg)
                q.push_ready(msg)

    def find_queue(self, name: str) -> Queue | None:
        return self._queues.get(name)

    def queue_names(self) -> list[str]:
        return list(self._names)

    def queue_page(
        self, prefix: str, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` queue names that start with ``prefix``, in order, after
        ``after`` (None: from the first); and the next page's cursor (None: no more)."""
        return self._names.page(prefix, after, limit)

    # ------------------------------------------------------------- sequences

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def reserve_seqs(self, next_seq: int) -> None:
        """Never hand out a sequence number below ``next_seq`` (ids used before a restart)."""
        if next_seq > self._next_seq:
            self._next_seq = next_seq

    # ------------------------------------------------- what a call produced

    def _wake(self, q: Queue) -> None:
        """A message may have become deliverable in ``q``: serve its waiters soon."""
        if q.n_waiting:
            self._woken[q] = None

    def _count_event(self, q: Queue, event: str) -> None:
        key = (q.name, event)
        self._events[key] = self._events.get(key, 0) + 1

    def _acked_record(self, seq: int) -> tuple[str, int] | None:
        """(queue name, deliveries it took) of ``seq`` if the acked history holds it and
        its queue was not deleted since."""
        record = self._acked.get(seq)
        if record is None:
            return None
        where, attempts = record if type(record) is tuple else (record, 1)
        assert isinstance(where, AckedIn)
        return None if where.deleted else (where.name, attempts)

    def _leases_in(self, q: Queue, owner: object) -> set[Message] | None:
        """The set of ``owner``'s leased messages in ``q`` (a receipt's: the queue's set
        for receipts), if there is one."""
        by_queue = self._owned.get(owner)
        if by_queue is not None:
            return by_queue.get(q)
        return q.holders.get(RECEIPTS)

    def _lease_set(self, q: Queue, owner: object, receipts: bool) -> set[Message]:
        """The set ``owner``'s leased messages in ``q`` are kept in (made if missing);
        with ``receipts``, the queue's one set for every receipt's (receipts are not
        tracked as owners)."""
        if receipts:
            return q.holders.get(RECEIPTS) or q.holders.setdefault(RECEIPTS, set())
        by_queue = self._owned.get(owner)
        if by_queue is None:
            by_queue = self._owned[owner] = {}
        owned = by_queue.get(q)
        if owned is None:
            owned = by_queue[q] = q.holders[owner] = set()
        return owned

    def _let_go(self, q: Queue) -> None:
        """``q`` goes (deleted or forgotten): its lease owners' sets for it go too. (A set
        that empties stays until then, or until its owner leaves: a consumer that leases
        and acks one message at a time does not make and drop one each time.)"""
        for owner in q.holders:
            by_queue = self._owned.get(owner)
            if by_queue is not None:
                by_queue.pop(q, None)
                if not by_queue:
                    del self._owned[owner]
        q.holders.clear()

    def _holds_compact(self, seq: int) -> bool:
        q = self._compact.owner_of(seq)
        return q is not None and q.compact.find(seq) is not None
