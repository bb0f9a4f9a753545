"""Leases: how a delivery begins, and the ways it ends (ack, release, dead letter).

Owns: granting leases on a queue's next deliverable messages, finding the
lease an owner holds on an id (or saying why it does not), deleting acked
messages (and remembering them for INFO: the acked history, bounded over
every queue), putting a released message back
(ready, or delayed), moving a message that used its last attempt to
``<queue>.dead``, and letting the next message of a key go once its head
leaves. Every state change here moves its counters by a row of the lifecycle
table (lifecycle.py) and is reported to the journal.
Must never: serve waiters itself (it only marks queues woken, dispatch.py
serves them), or read a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from broker.engine.footprint import KEY, headers_cost
from broker.engine.ids import format_id
from broker.engine.intake import Intake
from broker.engine.lifecycle import (
    ACK,
    ARRIVE,
    DEAD_LETTER,
    LEASE,
    LEASE_PLAIN,
    RELEASE,
    RELEASE_DELAYED,
)
from broker.engine.message import DELAYED, LEASED, READY, Message, headers_bytes
from broker.engine.queue import RECEIPTS, Queue
from broker.engine.state import GONE
from broker.engine.values import AckResult
from broker.errors import NotFound, NotLeased
from broker.protocol.names import DEAD_SUFFIX


class Leases(Intake):
    def _lease(
        self,
        q: Queue,
        owner: object,
        max: int,
        lease_s: float,
        now: float,
        receipts: Callable[[], object] | None = None,
    ) -> list[Message]:
        """Lease up to ``max`` deliverable messages of ``q`` to ``owner`` (or each to a
        receipt of its own, see ``get``), until ``now + lease_s``, within the reply's
        byte budget of bodies and headers (at least one)."""
        out: list[Message] = []
        owned = self._lease_set(q, owner, receipts is not None)
        due = now + lease_s
        budget = self.config.max_reply_bytes
        compact = q.compact
        n_compact = compact.n
        while len(out) < max:
            batch = q.pop_ready(max - len(out), budget)
            if not batch:
                break
            for msg in batch:
                msg.state = LEASED
                msg.owner = owner
                msg.attempts += 1
                msg.due_at = due
                budget -= len(msg.body)
                if msg.headers is not None:  # (a reply carries them too)
                    budget -= headers_bytes(msg)
            if receipts is not None:  # each to a receipt of its own (the rare case)
                for msg in batch:
                    msg.owner = receipts()
            owned.update(batch)
            out += batch
            if budget <= 0:
                break
        n = len(out)
        if n:
            plain = n_compact - compact.n
            if plain:  # leased for the first time: the index has them from now on
                if n == 1:  # (the commonest GET: cheaper than a dict of one)
                    self._messages.put(out[0].seq, out[0])
                else:
                    self._messages.update({msg.seq: msg for msg in out})
                LEASE_PLAIN(self._tally, q, plain, 0)
            if n > plain:
                LEASE(self._tally, q, n - plain, 0)
            self._deadlines.push(due, out.copy())  # a copy: the heap trims its own
            if not self._null_journal:  # (the hot path: no call that records nothing)
                self.journal.lease(out)
        return out

    def _leased_by(self, owner: object, seq: int) -> Message:
        """The message ``seq``, if ``owner`` holds its lease; else raise, naming why."""
        msg = self._messages.get(seq)
        if msg is None:
            if self._acked_record(seq) is not None:
                raise NotLeased(f"message {format_id(seq)} was acked already")
            if not self._holds_compact(seq):
                raise NotFound(f"no message with id {format_id(seq)!r}")
        if msg is None or msg.state != LEASED or msg.owner != owner:
            raise NotLeased(f"message {format_id(seq)} is not leased by this connection")
        return msg

    def _ack_each(self, owner: object, seqs: Iterable[int], result: AckResult | None) -> int:
        """Delete each message ``owner`` holds a lease on; the others go to ``result``.

        The one place a lease ends in an ack, its lookups hoisted and its counters
        moved once per run of one queue: a batch ACK runs this loop 64 times or
        more. Returns how many were acked.
        """
        messages = self._messages
        history = self._acked
        order = self._acked_order
        remember = order.append
        by_queue = self._owned.get(owner)  # None: a receipt (its queue's set for receipts)
        owned: set[Message] | None = None  # the owner's leases in the run's queue
        journal_ack = None if self._null_journal else self.journal.ack  # (no call for nothing)
        limit = self.config.acked_history
        room = limit - len(order)  # ids the history takes before the oldest must go
        acked = run = run_bytes = 0
        run_q: Queue | None = None
        for seq in seqs:
            msg = messages.pop(seq, None)  # (never hoisted: it changes when they page)
            if msg is None or msg.state != LEASED or msg.owner != owner:
                self._not_acked(seq, msg, result)
                continue
            q = msg.queue
            if q is not run_q:
                if run_q is not None:
                    self._acked_run(run_q, run, run_bytes)
                    acked += run
                run_q, run, run_bytes = q, 0, 0
                owned = by_queue.get(q) if by_queue is not None else q.holders.get(RECEIPTS)
            if owned is not None:
                owned.discard(msg)
            msg.owner = None
            msg.due_at = GONE
            run += 1
            run_bytes += len(msg.body)
            if limit > 0:  # remembered, so a late ACK or INFO can say "acked"
                history[seq] = q.acked_in if msg.attempts == 1 else (q.acked_in, msg.attempts)
                remember(seq)
                room -= 1
                if room < 0:  # one bound over every queue: the oldest goes
                    history.pop(order.popleft(), None)
            if journal_ack is not None:
                journal_ack(msg)
            key = msg.key
            if key is not None:
                self._extra -= KEY + len(key)  # (footprint.extra_cost, inlined: the hot path)
                self._unblock_key(q, msg)
            if msg.headers is not None:
                self._extra -= headers_cost(msg.headers)
        if run_q is not None:
            self._acked_run(run_q, run, run_bytes)
            acked += run
        return acked

    def _acked_run(self, q: Queue, n: int, size: int) -> None:
        """``n`` messages of ``q`` (``size`` bytes of bodies) were acked in a row."""
        ACK(self._tally, q, n, size)
        q.totals["acked"] += n

    def _not_acked(self, seq: int, msg: Message | None, result: AckResult | None) -> None:
        """An ACK of ``seq`` acked nothing: ``msg`` (taken out to be acked) stays; and
        why, for ``result``: a message that exists (or was acked) is not leased by this
        owner; any other id is not found."""
        if msg is not None:
            self._messages.put(seq, msg)
        if result is None:
            return
        if msg is not None or self._acked_record(seq) is not None or self._holds_compact(seq):
            result.not_leased.append(seq)
        else:
            result.not_found.append(seq)

    def _unblock_key(self, q: Queue, msg: Message) -> None:
        """``msg`` (head of its key chain) leaves; the next of its key may now be delivered."""
        nxt = q.chain_pop_head(msg)
        if nxt is not None and nxt.state == READY:
            q.push_ready(nxt)
            self._wake(q)

    def _release(self, msg: Message, now: float, reason: str, delay_s: float) -> bool:
        """End a lease without an ack (``reason`` names the event): back to ready, or
        delayed, or to the dead-letter queue once out of attempts. True if dead-lettered."""
        q = msg.queue
        q.totals[reason] += 1
        owned = self._leases_in(q, msg.owner)
        if owned is not None:
            owned.discard(msg)
        msg.owner = None
        if msg.attempts >= msg.max_attempts and not q.is_dead:
            msg.due_at = GONE
            self._dead_letter(msg)
            return True
        if delay_s > 0:
            msg.state = DELAYED
            q.delayed.add(msg)
            msg.due_at = now + delay_s
            self._deadlines.push(msg.due_at, msg)
            RELEASE_DELAYED(self._tally, q, 1, 0)
        else:
            msg.state = READY
            msg.due_at = GONE
            RELEASE(self._tally, q, 1, 0)
            q.admit(msg, True)  # a leased keyed message is the head of its chain
            self._wake(q)
        self.journal.release(msg)
        return False

    def _dead_letter(self, msg: Message) -> None:
        src = msg.queue
        DEAD_LETTER(self._tally, src, 1, len(msg.body))
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
        ARRIVE(self._tally, dst, 1, len(msg.body))
        dst.admit(msg, msg.key is None or dst.chain_append(msg))
