"""The producer and consumer commands: PUT, GET, ACK, NACK, TOUCH, and an owner leaving.

Owns: what each of these does to the engine's state (protocol.md section 3):
checking a PUT against the limits before anything changes (all or nothing,
then intake.py stores the messages), leasing or parking a GET (to a connection,
or with a receipt per message), and ending leases by ACK, NACK, TOUCH,
UNLEASE (a delivery that never arrived) and disconnect. Every command that changed
state ends with ``_settle``, so waiters see all of its changes at once.
PUT, GET and ACK are the hot paths: their per-message loops keep their
lookups in locals, and counters move once per batch.
Must never: format wire replies, raise anything but ``WonderQError``s for bad
input, or leave a change half applied when it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from broker.engine.expiry import Expiry
from broker.engine.intake import Intake
from broker.engine.message import Message
from broker.engine.values import AckResult, NewMessageFields
from broker.errors import MemoryLimit, QueueFull, TooLarge


class Commands(Expiry, Intake):
    # ---------------------------------------------------------------- producer

    def put(self, now: float, queue_name: str, items: Sequence[NewMessageFields]) -> list[int]:
        """Store messages (all or nothing) and return their sequence numbers.

        ``items`` are ``NewMessage``s, or plain tuples of the same five fields.
        """
        config = self.config
        q = self._queues.get(queue_name) or self.queue(queue_name)
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
        if config.max_memory is not None and self._tally.bytes + total > config.max_memory:
            raise MemoryLimit(
                f"bodies held would reach {self._tally.bytes + total} bytes; "
                f"the limit (max-memory) is {config.max_memory}"
            )
        first = self._next_seq
        end = self._next_seq = self._store_new(q, now, first, items, total)
        q.totals["put"] += n
        self.journal.put(q, first, now, items)
        if q.n_waiting:  # self._wake(q), inlined: the hot path
            self._woken[q] = None
        self._settle(now)
        return list(range(first, end))

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
        self._park(q, owner, max, lease_s, now + wait_s, token, receipts)
        return None

    def ack(self, now: float, owner: object, seq: int) -> None:
        if not self._ack_each(owner, (seq,), None):
            self._leased_by(owner, seq)  # raises, naming why ``owner`` holds no lease on it
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

    def disconnect(self, now: float, owner: object) -> int:
        """The owner is gone: release all its leases at once and drop its waiters."""
        for waiter in self._owner_waiters.pop(owner, ()):
            self._end_wait(waiter)
        owned = self._owned.pop(owner, None) or set()
        for msg in sorted(owned, key=lambda m: m.order):
            self._release(msg, now, "released_on_disconnect", 0.0)
        self._settle(now)
        return len(owned)
