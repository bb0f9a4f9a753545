"""The pure queue engine: messages, leases, keys, delays, waiters and dead letters.

Owns: all queue state and every rule of protocol.md section 3. Time is a
parameter: every call that depends on time takes ``now`` (seconds on any
monotonic scale) and ``next_deadline()`` says when the caller must next call
``advance(now)``. Everything one input produced is returned: direct results from
the call, and completed waiting GETs from ``take_deliveries()``; every state
change is reported to the ``Journal``; lease expiries and dead letters are
counted per queue for ``take_events()`` (the backend logs them).

Invariants (checked by the property tests):
  - a message is leased to at most one owner; every delivery adds one attempt;
  - at most one message per (queue, key) is leased, and a key's messages are
    delivered in put order (only the head of a key chain is deliverable);
  - after any call, a queue never has both an active waiter and a deliverable
    message (waiters are served as soon as a message becomes deliverable);
  - waiters are served only once all of a call's changes are applied, so changes
    that happen together (a batch, a disconnect, every deadline of one instant)
    are seen at once: waiters get the best of them, and the journal sees each
    change before any lease it allows;
  - ``advance(now)`` acts as if it had been called at each due instant in turn;
  - an entry in the deadline heap is live only while its item's ``due_at`` and
    state still match it (lazy deletion); the leases one GET grants share one
    entry (a ``LeaseBatch``), live while any of them is still leased until that
    instant (a message whose lease moves gets an entry of its own); after any
    call the heap holds at most
    max(1024, 2 x live deadlines) entries.

Plain never-delivered messages have no ``Message`` object until their first
lease (compact.py): ``_messages`` holds every other message, and a lookup by id
falls back to ``_compact`` (its queue) and that queue's compact fifo. A lookup
that finds a compact message returns a snapshot, not the live record.

Must never: import asyncio or sockets, read a clock, or format wire replies.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import NamedTuple, Protocol

from broker.config import Config
from broker.engine.compact import CompactIndex
from broker.engine.deadlines import DeadlineHeap
from broker.engine.ids import format_id
from broker.engine.journal import Journal, NullJournal
from broker.engine.message import DELAYED, LEASED, READY, Message, State
from broker.engine.queue import COUNTERS, DEAD_SUFFIX, Queue
from broker.engine.waiter import Delivery, Waiter
from broker.errors import MemoryLimit, NotFound, NotLeased, QueueFull, TooLarge

_GONE = math.nan  # due_at of a deleted message: equal to no instant, so its heap entries die


class NewMessage(NamedTuple):
    """One message a PUT asks for (already validated for type and bounds).

    A NamedTuple: immutable like a frozen dataclass, and several times cheaper to
    build, which a PUT does once per message.
    """

    body: bytes
    key: str | None = None
    delay_s: float = 0.0
    priority: int = 0
    max_attempts: int | None = None


#: ``NewMessage``'s fields as a plain tuple, which ``put`` takes too: a batch PUT
#: builds one per message, and a plain tuple costs a quarter of a NamedTuple call.
NewMessageFields = tuple[bytes, str | None, float, int, int | None]


class StoredMessage(Protocol):
    """A message as a durable store keeps it (see ``restore_messages``)."""

    seq: int
    queue: str
    body: bytes
    key: str | None
    priority: int
    max_attempts: int
    put_wall: float
    due_wall: float  # 0.0: not delayed
    attempts: int
    order: int  # 0: same as seq


@dataclass(slots=True)
class AckResult:
    acked: int
    not_leased: list[int]
    not_found: list[int]


@dataclass(frozen=True, slots=True)
class AckedRecord:
    """What INFO knows of a message acked recently."""

    seq: int
    queue: Queue


#: The messages one GET leased, with one deadline entry for all of them: a batch GET
#: pushes one entry instead of 64, and a batch ACK leaves one stale entry, not 64.
LeaseBatch = list[Message]
Timed = Message | Waiter | LeaseBatch


def _is_live(item: Timed, at: float) -> bool:
    if type(item) is list:
        return _batch_is_live(item, at)
    if item.due_at != at:  # type: ignore[union-attr]
        return False
    if type(item) is Waiter:
        return item.active
    return item.state != READY  # type: ignore[union-attr]


def _batch_is_live(batch: LeaseBatch, at: float) -> bool:
    """Live while a member is still leased until ``at``. Members before the first
    such one are dropped on sight, so each is looked at a bounded number of times
    and a live batch's first member is leased until ``at``."""
    for i, msg in enumerate(batch):
        if msg.due_at == at and msg.state == LEASED:
            if i:
                del batch[:i]
            return True
    batch.clear()
    return False


class Engine:
    def __init__(self, config: Config, first_seq: int, journal: Journal | None = None) -> None:
        self.config = config
        self.journal: Journal = journal if journal is not None else NullJournal()
        self._next_seq = first_seq
        self._queues: dict[str, Queue] = {}
        self._messages: dict[int, Message] = {}  # every message but the compact ones
        self._compact = CompactIndex()
        self._n_compact = 0  # messages held in compact form, in all queues
        self._acked: dict[int, Queue] = {}
        self._owned: dict[object, set[Message]] = {}
        self._owner_waiters: dict[object, set[Waiter]] = {}
        self._deadlines: DeadlineHeap[Timed] = DeadlineHeap(_is_live)
        self._deliveries: list[Delivery] = []
        self._bytes = 0
        self._n_timed = 0  # live deadlines: leased + delayed messages + waiters
        # queues where a message became deliverable while waiters wait; served by
        # _settle() once the call's changes are all applied
        self._woken: dict[Queue, None] = {}
        # (queue name, "expired" | "dead_lettered") -> count since take_events(); for logs
        self._events: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ queues

    def queue(self, name: str) -> Queue:
        """The queue called ``name``, created on first use."""
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = Queue(name, self.config.max_attempts)
        return q

    def find_queue(self, name: str) -> Queue | None:
        return self._queues.get(name)

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    # ---------------------------------------------------------------- producer

    def put(self, now: float, queue_name: str, items: Sequence[NewMessageFields]) -> list[int]:
        """Store messages (all or nothing) and return their sequence numbers.

        ``items`` are ``NewMessage``s, or plain tuples of the same five fields.
        """
        config = self.config
        q = self.queue(queue_name)
        n = len(items)
        total = 0
        max_body = config.max_body
        for item in items:
            size = len(item[0])  # the body
            if size > max_body:
                raise TooLarge(f"body is {size} bytes; the limit (max-body) is {max_body}")
            total += size
        if config.max_queue_length is not None and q.size + n > config.max_queue_length:
            raise QueueFull(
                f"queue {queue_name!r} holds {q.size} messages; "
                f"the limit (max-queue-length) is {config.max_queue_length}"
            )
        if config.max_memory is not None and self._bytes + total > config.max_memory:
            raise MemoryLimit(
                f"bodies held would reach {self._bytes + total} bytes; "
                f"the limit (max-memory) is {config.max_memory}"
            )
        # one loop per message, its lookups hoisted: a batch PUT runs it 64 times or more
        default_attempts = config.max_attempts
        compact = q.compact
        messages = self._messages
        admit = q.admit
        first = seq = self._next_seq
        # plain messages join the compact fifo while they keep its put-time order
        plain_ok = not q.is_dead and (not compact.n or compact.put_ats[-1] <= now)
        n_plain = 0
        for body, key, delay_s, priority, max_attempts in items:
            if (
                plain_ok
                and key is None
                and priority == 0
                and delay_s <= 0
                and (max_attempts is None or max_attempts == default_attempts)
            ):
                compact.append(seq, body, now)
                n_plain += 1
                seq += 1
                continue
            msg = Message(
                seq,
                q,
                body,
                key,
                priority,
                max_attempts if max_attempts is not None else default_attempts,
                now,
            )
            messages[seq] = msg
            seq += 1
            is_head = q.chain_append(msg) if key is not None else True
            if delay_s > 0:
                msg.state = DELAYED
                msg.due_at = now + delay_s
                self._deadlines.push(msg.due_at, msg)
                self._n_timed += 1
                q.n_delayed += 1
            else:
                admit(msg, is_head)
        self._next_seq = seq
        if n_plain:
            self._compact.note(first, q)
            self._n_compact += n_plain
            q.n_ready += n_plain
        q.bytes += total
        self._bytes += total
        q.totals["put"] += n
        self.journal.put(q, first, now, items)
        self._wake(q)
        self._settle(now)
        return list(range(first, seq))

    # ---------------------------------------------------------------- consumer

    def get(
        self,
        now: float,
        queue_name: str,
        owner: object,
        max: int,
        lease_s: float,
        wait_s: float = 0.0,
        token: object = None,
        receipts: Callable[[], object] | None = None,
    ) -> list[Message] | None:
        """Lease up to ``max`` deliverable messages to ``owner``.

        Returns the leased messages, or None if none was deliverable and
        ``wait_s`` > 0: then a waiter was registered, and its messages come
        back later as a ``Delivery`` carrying ``token``.

        With ``receipts``, each message is leased instead to an owner of its own,
        ``receipts()``, made for that delivery (a receipt: the HTTP API's lease
        owner). The engine keeps no state for such an owner: it lives in the
        message while the lease does, and ``disconnect(owner)`` leaves it alone.
        """
        q = self._queues.get(queue_name) or self.queue(queue_name)
        if q.compact.n or q.fifo or q.heap:  # q.has_deliverable(), inlined: the hot path
            return self._lease(q, owner, max, lease_s, now, receipts)
        if wait_s <= 0:
            return []
        waiter = Waiter(token, owner, q, max, lease_s, now + wait_s, receipts)
        q.waiters.append(waiter)
        q.n_waiting += 1
        self._owner_waiters.setdefault(owner, set()).add(waiter)
        self._deadlines.push(waiter.due_at, waiter)
        self._n_timed += 1
        return None

    def _lease(
        self,
        q: Queue,
        owner: object,
        max: int,
        lease_s: float,
        now: float,
        receipts: Callable[[], object] | None = None,
    ) -> list[Message]:
        out: list[Message] = []
        # receipts are not tracked: their messages go into a set thrown away
        owned = set() if receipts is not None else self._owned.get(owner)
        if owned is None:
            owned = self._owned[owner] = set()
        due = now + lease_s
        budget = self.config.max_reply_bytes
        messages = self._messages
        n_compact = q.compact.n
        own = owned.add
        append = out.append
        while len(out) < max:
            batch = q.pop_ready(max - len(out), budget)
            if not batch:
                break
            for msg in batch:
                messages[msg.seq] = msg  # new if it was compact
                msg.state = LEASED
                msg.owner = owner if receipts is None else receipts()
                msg.attempts += 1
                msg.due_at = due
                own(msg)
                append(msg)
                budget -= len(msg.body)
            if budget <= 0:
                break
        self._n_compact -= n_compact - q.compact.n
        n = len(out)
        if n:
            q.n_ready -= n
            q.n_leased += n
            self._n_timed += n
            self._deadlines.push(due, out.copy())  # a copy: the heap trims its own
            self.journal.lease(out)
        return out

    def _leased_by(self, owner: object, seq: int) -> Message:
        msg = self._messages.get(seq)
        if msg is None:
            if seq in self._acked:
                raise NotLeased(f"message {format_id(seq)} was acked already")
            if not self._holds_compact(seq):
                raise NotFound(f"no message with id {format_id(seq)}")
        if msg is None or msg.state != LEASED or msg.owner != owner:
            raise NotLeased(f"message {format_id(seq)} is not leased by this connection")
        return msg

    def ack(self, now: float, owner: object, seq: int) -> None:
        self._leased_by(owner, seq)  # raises, naming why, unless ``owner`` holds it
        self._ack_each(owner, (seq,), None)
        self._settle(now)

    def ack_many(self, now: float, owner: object, seqs: Iterable[int]) -> AckResult:
        """Ack many at once: per id, exactly what ``ack`` does, without raising.

        Each id is handled in turn, so an id given twice is acked once, then
        reported as not leased.
        """
        result = AckResult(0, [], [])
        result.acked = self._ack_each(owner, seqs, result)
        self._settle(now)
        return result

    def ack_owned(self, now: float, pairs: Sequence[tuple[object, int]]) -> AckResult:
        """``ack_many`` for messages each leased to an owner of its own (receipts): each
        ``(owner, seq)`` in turn; ``not_leased`` and ``not_found`` list indexes into ``pairs``."""
        result = AckResult(0, [], [])
        for i, (owner, seq) in enumerate(pairs):
            refused = AckResult(0, [], [])
            if self._ack_each(owner, (seq,), refused):
                result.acked += 1
            else:
                (result.not_leased if refused.not_leased else result.not_found).append(i)
        self._settle(now)
        return result

    def _ack_each(self, owner: object, seqs: Iterable[int], result: AckResult | None) -> int:
        """Delete each message ``owner`` holds a lease on; the others go to ``result``.

        The one place a lease ends in an ack, its lookups hoisted and its totals
        summed once: a batch ACK runs this loop 64 times or more. Returns how many
        were acked.
        """
        messages = self._messages
        acked_queues = self._acked
        owned = self._owned.get(owner)
        journal_ack = self.journal.ack
        limit = self.config.acked_history
        acked = freed = 0
        for seq in seqs:
            msg = messages.get(seq)
            if msg is None or msg.state != LEASED or msg.owner != owner:
                if result is not None:
                    if msg is not None or seq in acked_queues or self._holds_compact(seq):
                        result.not_leased.append(seq)
                    else:
                        result.not_found.append(seq)
                continue
            q = msg.queue
            del messages[seq]
            if owned is not None:  # None for a receipt
                owned.discard(msg)
            msg.owner = None
            msg.due_at = _GONE
            q.n_leased -= 1
            size = len(msg.body)
            q.bytes -= size
            freed += size
            q.totals["acked"] += 1
            if limit > 0:  # remembered, so a late ACK or INFO can say "acked"
                acked_queues[seq] = q
                recent = q.acked
                recent.append(seq)
                if len(recent) > limit:
                    acked_queues.pop(recent.popleft(), None)
            journal_ack(msg)
            if msg.key is not None:
                self._unblock_key(q, msg)
            acked += 1
        self._n_timed -= acked
        self._bytes -= freed
        return acked

    def _unblock_key(self, q: Queue, msg: Message) -> None:
        """``msg`` (head of its key chain) leaves; the next of its key may now be delivered."""
        nxt = q.chain_pop_head(msg)
        if nxt is not None and nxt.state == READY:
            q.push_ready(nxt)
            self._wake(q)

    def nack(self, now: float, owner: object, seq: int, delay_s: float = 0.0) -> bool:
        """Release a leased message now (or after ``delay_s``); True if it was dead-lettered."""
        dead = self._release(self._leased_by(owner, seq), now, "nacked", delay_s)
        self._settle(now)
        return dead

    def touch(self, now: float, owner: object, seq: int, lease_s: float) -> None:
        msg = self._leased_by(owner, seq)
        msg.due_at = now + lease_s
        self._deadlines.push(msg.due_at, msg)
        self._settle(now)

    def unlease(self, now: float, owner: object, seq: int) -> None:
        """Give back a lease whose delivery never reached its consumer (the HTTP client
        went away): the message is ready again, its attempt not counted."""
        msg = self._leased_by(owner, seq)
        msg.attempts -= 1
        self._release(msg, now, "released_on_disconnect", 0.0)
        self._settle(now)

    def holds(self, owner: object) -> bool:
        """True while ``owner`` holds a lease or has a GET waiting (never changes state)."""
        return bool(self._owned.get(owner)) or bool(self._owner_waiters.get(owner))

    def disconnect(self, now: float, owner: object) -> int:
        """The owner is gone: release all its leases at once and drop its waiters."""
        for waiter in self._owner_waiters.pop(owner, ()):
            self._end_wait(waiter)
        owned = self._owned.pop(owner, None) or set()
        for msg in sorted(owned, key=lambda m: m.order):
            self._release(msg, now, "released_on_disconnect", 0.0)
        self._settle(now)
        return len(owned)

    def _release(self, msg: Message, now: float, reason: str, delay_s: float) -> bool:
        q = msg.queue
        q.totals[reason] += 1
        owned = self._owned.get(msg.owner)
        if owned is not None:
            owned.discard(msg)
        msg.owner = None
        q.n_leased -= 1
        if msg.attempts >= msg.max_attempts and not q.is_dead:
            self._n_timed -= 1
            msg.due_at = _GONE
            self._dead_letter(msg)
            return True
        if delay_s > 0:
            msg.state = DELAYED
            msg.due_at = now + delay_s
            self._deadlines.push(msg.due_at, msg)
            q.n_delayed += 1
        else:
            self._n_timed -= 1
            msg.state = READY
            msg.due_at = _GONE
            q.admit(msg, True)  # a leased keyed message is the head of its chain
        self.journal.release(msg)
        if msg.state == READY:
            self._wake(q)
        return False

    def _dead_letter(self, msg: Message) -> None:
        src = msg.queue
        size = len(msg.body)
        src.bytes -= size
        src.totals["dead_lettered"] += 1
        self._count_event(src, "dead_lettered")
        if msg.key is not None:
            self._unblock_key(src, msg)
        dst = self.queue(src.name + DEAD_SUFFIX)
        self._enqueue_moved(msg, dst)
        self.journal.dead(msg, src)
        self._wake(dst)

    def _enqueue_moved(self, msg: Message, dst: Queue) -> None:
        """Append a message that left another queue at the end of ``dst`` (READY)."""
        msg.queue = dst
        msg.state = READY
        msg.order = self._take_seq()
        msg.key_next = None
        dst.bytes += len(msg.body)
        dst.admit(msg, msg.key is None or dst.chain_append(msg))

    # -------------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When ``advance`` must next be called (None: nothing is timed)."""
        return self._deadlines.next_at()

    def advance(self, now: float) -> None:
        """Fire every deadline due at or before ``now``: lease expiry, delay end, wait end.

        Due instants are handled in turn, as if ``advance`` had been called at each,
        so a late call changes nothing but the start of the leases it grants.
        """
        pop = self._deadlines.pop_due
        while (first := pop(now)) is not None:
            # a live LeaseBatch's first member is leased until its entry's instant
            at = first[0].due_at if type(first) is list else first.due_at  # type: ignore[union-attr]
            due = [first]
            while (item := pop(at)) is not None:
                due.append(item)
            self._fire(at, due, now)
        self._settle(now)

    def _fire(self, at: float, due: list[Timed], now: float) -> None:
        """Everything due at the instant ``at`` happens at once: leases expire and
        delays end (in queue order), then waiters are served, then the waits due
        at ``at`` that got nothing end empty."""
        msgs: list[Message] = []
        for item in due:
            if type(item) is list:
                msgs.extend(item)  # members no longer due at ``at`` are skipped below
            elif isinstance(item, Message):
                msgs.append(item)
        msgs.sort(key=lambda m: m.order)
        for msg in msgs:
            if not _is_live(msg, at):
                continue  # a second heap entry of a message already handled, or gone
            if msg.state == LEASED:
                self._count_event(msg.queue, "expired")
                self._release(msg, now, "expired", 0.0)
            else:
                self._delay_ended(msg)
        self._serve_woken(now)
        for waiter in due:
            if isinstance(waiter, Waiter) and waiter.active:
                self._end_wait(waiter)
                self._deliveries.append(Delivery(waiter.token, waiter.owner, []))

    def _delay_ended(self, msg: Message) -> None:
        q = msg.queue
        msg.state = READY
        msg.due_at = _GONE
        self._n_timed -= 1
        q.n_delayed -= 1
        deliverable = msg.key is None or q.chain_is_head(msg)
        q.admit(msg, deliverable)
        if deliverable:
            self._wake(q)

    # ----------------------------------------------------------------- waiters

    def _wake(self, q: Queue) -> None:
        """A message may have become deliverable in ``q``: serve its waiters soon."""
        if q.n_waiting:
            self._woken[q] = None

    def _serve_woken(self, now: float) -> None:
        woken, self._woken = self._woken, {}
        for q in woken:
            self._dispatch(q, now)

    def _settle(self, now: float) -> None:
        """End of a call that changed state: serve waiters, then bound the deadline heap."""
        if self._woken:
            self._serve_woken(now)
        self._deadlines.compact(self._n_timed)
        self._compact.collect(self._n_compact)

    def _dispatch(self, q: Queue, now: float) -> None:
        """Serve waiting GETs of ``q`` in arrival order while messages are deliverable."""
        while q.n_waiting and q.has_deliverable():
            waiter = q.waiters.popleft()  # _end_wait may replace the deque: no alias
            if not waiter.active:
                continue
            self._end_wait(waiter)
            msgs = self._lease(q, waiter.owner, waiter.max, waiter.lease_s, now, waiter.receipts)
            self._deliveries.append(Delivery(waiter.token, waiter.owner, msgs))

    def _end_wait(self, waiter: Waiter) -> None:
        waiter.active = False
        waiter.due_at = _GONE
        self._n_timed -= 1
        q = waiter.queue
        q.n_waiting -= 1
        mine = self._owner_waiters.get(waiter.owner)
        if mine is not None:
            mine.discard(waiter)
            if not mine:
                del self._owner_waiters[waiter.owner]
        if len(q.waiters) > 2 * q.n_waiting + 32:
            q.waiters = type(q.waiters)(w for w in q.waiters if w.active)

    def cancel_waits(self, owner: object, match: Callable[[object], bool]) -> int:
        """End the owner's waiting GETs whose token ``match``es; each yields an empty Delivery."""
        ended = 0
        for waiter in list(self._owner_waiters.get(owner, ())):
            if match(waiter.token):
                self._end_wait(waiter)
                self._deliveries.append(Delivery(waiter.token, waiter.owner, []))
                ended += 1
        self._deadlines.compact(self._n_timed)
        return ended

    def end_all_waits(self) -> None:
        """Complete every waiting GET with no messages (server shutdown)."""
        for waiters in list(self._owner_waiters.values()):
            for waiter in list(waiters):
                self._end_wait(waiter)
                self._deliveries.append(Delivery(waiter.token, waiter.owner, []))
        self._deadlines.compact(self._n_timed)

    def take_deliveries(self) -> list[Delivery]:
        """Waiting GETs completed since the last call, in completion order."""
        out = self._deliveries
        if out:
            self._deliveries = []
        return out

    # ------------------------------------------------------------- management

    def lookup(self, seq: int) -> Message | AckedRecord | None:
        """The message with id ``seq`` (a snapshot if it is compact), or what INFO knows."""
        msg = self._messages.get(seq)
        if msg is not None:
            return msg
        q = self._acked.get(seq)
        if q is not None:
            return AckedRecord(seq, q)
        q = self._compact.owner_of(seq)
        return q.view(seq) if q is not None else None

    def _holds_compact(self, seq: int) -> bool:
        q = self._compact.owner_of(seq)
        return q is not None and q.compact.find(seq) is not None

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
        plain_bytes = compact.total_bytes()
        q.n_ready -= n_plain
        q.bytes -= plain_bytes
        self._bytes -= plain_bytes
        self._n_compact -= n_plain
        for msg in victims:
            del self._messages[msg.seq]
            if msg.state == DELAYED:
                q.n_delayed -= 1
                self._n_timed -= 1
            else:
                q.n_ready -= 1
            msg.due_at = _GONE
            size = len(msg.body)
            q.bytes -= size
            self._bytes -= size
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
            src.n_ready -= 1
            src.bytes -= len(msg.body)
            msg.attempts = 0
            self._enqueue_moved(msg, dst)
        src.clear_ready()  # every READY message of src moved
        dst.totals["redriven"] += len(moved)
        if moved:
            self.journal.redrive(moved, src)
            self._wake(dst)
        self._settle(now)
        return len(moved)

    def peek(self, queue_name: str, state: State | None, limit: int) -> list[Message]:
        """Up to ``limit`` messages of a queue, without changing anything.

        ``state`` None: every held message in queue order (priority, then put
        order); READY: in that order too (the delivery order, key holds aside);
        DELAYED and LEASED: the soonest deadline first. An unknown queue has
        none (and is not created). Costs one pass over the held messages.
        """
        q = self._queues.get(queue_name)
        if q is None or limit <= 0:
            return []
        if state is None:
            held = q.size
        else:
            held = {READY: q.n_ready, DELAYED: q.n_delayed}.get(state, q.n_leased)
        if held == 0:
            return []
        msgs: Iterable[Message] = (m for m in self._messages.values() if m.queue is q)
        if state is not None:
            msgs = (m for m in msgs if m.state == state)
        if state is None or state == READY:
            if q.compact.n:  # snapshots of the first ``limit`` compact ones (in order)
                msgs = chain(msgs, q.compact_views(limit))
            return heapq.nsmallest(limit, msgs, key=lambda m: (m.priority, m.order))
        return heapq.nsmallest(limit, msgs, key=lambda m: (m.due_at, m.order))

    def leases_of(self, owner: object) -> int:
        """How many messages ``owner`` holds leased."""
        return len(self._owned.get(owner, ()))

    def waits_of(self, owner: object) -> int:
        """How many waiting GETs ``owner`` has."""
        return len(self._owner_waiters.get(owner, ()))

    def _count_event(self, q: Queue, event: str) -> None:
        key = (q.name, event)
        self._events[key] = self._events.get(key, 0) + 1

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

    # ---------------------------------------------------------------- restore

    def restore_messages(
        self, now: float, items: Iterable[StoredMessage], clock_offset: float
    ) -> None:
        """Re-create messages read back from a durable store (no journal calls).

        ``items`` come in ``order`` order (so queue and key order come back);
        their instants are on another clock: ``put_wall - clock_offset`` is
        ``put_at`` here. Each is ready, or delayed if its ``due_wall`` is later
        than ``now``; never leased. One tight loop: a restart restores millions.
        """
        messages, deadlines, index = self._messages, self._deadlines, self._compact
        q = Queue("", 0)  # placeholder until the first item names its queue
        hi = self._next_seq - 1
        total = 0
        n_plain = 0
        for item in items:
            if q.name != item.queue:
                q = self.queue(item.queue)
            seq, body, key, priority = item.seq, item.body, item.key, item.priority
            put_at = item.put_wall - clock_offset
            order = item.order or seq
            total += len(body)
            q.bytes += len(body)
            if order > hi:
                hi = order
            if seq > hi:
                hi = seq
            if (
                key is None
                and not item.due_wall
                and priority == 0
                and not item.attempts
                and order == seq
                and item.max_attempts == q.max_attempts
                and not q.is_dead
                and q.compact.accepts(seq, put_at)
                and index.admits(seq)
            ):  # the common case: a plain message never delivered, kept compact
                q.compact.append(seq, body, put_at)
                index.note(seq, q)
                q.n_ready += 1
                n_plain += 1
                continue
            msg = Message(seq, q, body, key, priority, item.max_attempts, put_at)
            if item.attempts:
                msg.attempts = item.attempts
            msg.order = order
            messages[seq] = msg
            fifo = q.fifo
            if (
                key is None
                and not item.due_wall
                and priority == 0
                and (not fifo or (fifo[-1].order < order and fifo[-1].put_at <= put_at))
            ):  # a plain ready message at the end of the fifo, inlined
                q.n_ready += 1
                fifo.append(msg)
                continue
            is_head = q.chain_append(msg) if key is not None else True
            due_at = item.due_wall - clock_offset if item.due_wall else 0.0
            if due_at > now:
                msg.state = DELAYED
                msg.due_at = due_at
                deadlines.push(due_at, msg)
                self._n_timed += 1
                q.n_delayed += 1
            else:
                q.admit(msg, is_head)
        self._bytes += total
        self._n_compact += n_plain
        self.reserve_seqs(hi + 1)

    def reserve_seqs(self, next_seq: int) -> None:
        """Never hand out a sequence number below ``next_seq`` (ids used before a restart)."""
        if next_seq > self._next_seq:
            self._next_seq = next_seq

    def live_messages(self) -> list[Message]:
        """Every message held, in no particular order (compact ones as snapshots; O(n))."""
        out = list(self._messages.values())
        for q in self._queues.values():
            if q.compact.n:
                out.extend(q.compact_views())
        return out

    def live_seqs(self) -> array[int]:
        """The id of every message held, in no particular order (8 bytes each)."""
        out = array("q", self._messages)
        for q in self._queues.values():
            if q.compact.n:
                out.extend(q.compact.live_seqs())
        return out

    # ------------------------------------------------------------------ stats

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
        return stats

    def totals(self) -> dict[str, int]:
        return {
            "queues": len(self._queues),
            "messages": len(self._messages) + self._n_compact,
            "leased": sum(q.n_leased for q in self._queues.values()),
            "bytes": self._bytes,
        }
