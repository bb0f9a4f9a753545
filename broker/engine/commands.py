"""The producer and consumer commands: PUT, GET, ACK, NACK, TOUCH, and an owner leaving.

Owns: what each of these does to the engine's state (protocol.md section 3):
checking a PUT against the limits before anything changes (all or nothing,
then intake.py stores the messages), a PUT's dedup ids (an id its queue
remembers answers with the first message's id and stores nothing; dedup.py
remembers them) and headers (``put_extended``), leasing or parking a GET (to
a connection, or with a receipt per message; a paused or rate-limited queue
leases what its gate allows, dispatch.py), and ending leases by ACK, NACK,
TOUCH, UNLEASE (a delivery that never arrived) and disconnect. Every command
that changed state ends with ``_settle``, so waiters see all of its changes at once.
Only a PUT that stores makes its queue (checked first, so a refused one makes
none); a GET never does (a waiting one waits in the name's lobby, state.py).
PUT, GET and ACK are the hot paths: their per-message loops keep their
lookups in locals, and counters move once per batch. A PUT without dedup ids
or headers never looks at either.
Must never: format wire replies, raise anything but ``WonderQError``s for bad
input, or leave a change half applied when it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

from broker.engine.compact import is_plain
from broker.engine.expiry import Expiry
from broker.engine.footprint import COMPACT, KEY, MESSAGE, QUEUE
from broker.engine.message import Message
from broker.engine.queue import Queue
from broker.engine.values import AckResult, Headers, NewMessageFields
from broker.errors import MemoryLimit, QueueFull, TooLarge


class Commands(Expiry):
    # ---------------------------------------------------------------- producer

    def put(
        self,
        now: float,
        queue_name: str,
        items: Sequence[NewMessageFields],
        headers: Sequence[Headers | None] | None = None,
    ) -> list[int]:
        """Store messages (all or nothing) and return their sequence numbers.

        ``items`` are ``NewMessage``s, or plain tuples of the same five fields;
        ``headers``, if given, holds each one's headers (None: none).
        """
        config = self.config
        q = self._queues.get(queue_name)
        n = len(items)
        total = 0
        max_body = config.max_body
        for item in items:
            size = len(item[0])  # the body
            if size > max_body:
                raise TooLarge(f"body is {size} bytes; the limit (max-body) is {max_body}")
            total += size
        if q is None:  # a refused PUT makes no queue: the checks come first
            max_length = config.max_queue_length
            if max_length is not None and n > max_length:
                self._refuse_full(queue_name, 0, max_length, False)
        elif q.max_length is not None and q.size + n > q.max_length:
            self._refuse_full(q.name, q.size, q.max_length, q.settings.max_length is not None)
        if config.max_memory is not None:
            self._may_hold(q, items, total, headers, config.max_memory)
        if q is None:
            q = self.create(queue_name)
        first = self._next_seq
        end = self._next_seq = self._store_new(q, now, first, items, total, headers)
        q.totals["put"] += n
        if self._null_journal:
            pass  # (the hot path: no call that records nothing)
        elif headers is None:
            self.journal.put(q, first, now, items)
        else:
            self.journal.put(q, first, now, items, headers)
        if q.n_waiting:  # self._wake(q), inlined: the hot path
            self._woken[q] = None
        self._settle(now)
        return list(range(first, end))

    def put_extended(
        self,
        now: float,
        queue_name: str,
        items: Sequence[NewMessageFields],
        dedups: Sequence[str | None] | None,
        headers: Sequence[Headers | None] | None,
    ) -> tuple[list[int], list[int]]:
        """``put`` with each item's dedup id and headers (None: none; either list may be
        None). Returns each item's id and the indexes of the duplicates: items whose
        dedup id the queue remembers (their id is the first message's) or that repeat
        an earlier item's; these store nothing. The others are stored all or nothing.
        """
        q = self._queues.get(queue_name)
        if dedups is None:
            return self._put_some(now, queue_name, items, headers, range(len(items))), []
        # (no queue: no dedup id is remembered, and ``put`` makes it if it stores)
        if len(items) == 1 and (only := dedups[0]) is not None:  # the commonest PUT of all
            known = None if q is None else self._dedup.find(q, only, now)
            if known is not None:
                return [known], [0]
            ids = self.put(now, queue_name, items, headers if headers and headers[0] else None)
            self._remember(self._queues[queue_name], now, [(only, ids[0])])
            return ids, []
        ids = [0] * len(items)
        fresh: list[int] = []
        duplicates: list[int] = []
        repeats: list[tuple[int, int]] = []  # (index, index of the earlier item it repeats)
        first_of: dict[str, int] = {}  # dedup id -> index of its first item in this batch
        for i, dedup in enumerate(dedups):
            if dedup is None:
                fresh.append(i)
            elif q is not None and (seq := self._dedup.find(q, dedup, now)) is not None:
                ids[i] = seq
                duplicates.append(i)
            elif dedup in first_of:
                repeats.append((i, first_of[dedup]))
                duplicates.append(i)
            else:
                first_of[dedup] = i
                fresh.append(i)
        if fresh:
            stored = self._put_some(now, queue_name, items, headers, fresh)
            for i, seq in zip(fresh, stored, strict=True):
                ids[i] = seq
            for i, j in repeats:
                ids[i] = ids[j]
            if first_of:
                pairs = [(dedup, ids[i]) for dedup, i in first_of.items()]
                self._remember(self._queues[queue_name], now, pairs)
        return ids, duplicates

    def _remember(self, q: Queue, now: float, pairs: list[tuple[str, int]]) -> None:
        """Dedup ids whose messages were just stored in ``q``, for its dedup window."""
        self._dedup.add(q, now, q.dedup_window_s, pairs)
        self.journal.remember(q, now, q.dedup_window_s, pairs)

    def _put_some(
        self,
        now: float,
        queue_name: str,
        items: Sequence[NewMessageFields],
        headers: Sequence[Headers | None] | None,
        chosen: Sequence[int],
    ) -> list[int]:
        """``put`` of the items at the indexes ``chosen`` (in order), with their headers."""
        if len(chosen) < len(items):
            items = [items[i] for i in chosen]
            if headers is not None:
                headers = [headers[i] for i in chosen]
        if headers is not None and not any(headers):
            headers = None
        return self.put(now, queue_name, items, headers)

    def _may_hold(
        self,
        q: Queue | None,
        items: Sequence[NewMessageFields],
        total: int,
        headers: Sequence[Headers | None] | None,
        limit: int,
    ) -> None:
        """Refuse (``MemoryLimit``) a PUT that would take the engine's footprint past
        ``limit``: its bodies (``total`` bytes), a plain message's cost or a message
        object's, and keys (footprint.py)."""
        default = q.max_attempts if q is not None else self.config.max_attempts
        more = total if q is not None else total + QUEUE  # (a new queue holds its own)
        for _, key, delay_s, priority, max_attempts in items:
            if headers is None and is_plain(key, delay_s, priority, max_attempts, default):
                more += COMPACT
            else:
                more += MESSAGE + (0 if key is None else KEY + len(key))
        held = self.footprint()
        if held + more > limit:
            raise MemoryLimit(
                f"the broker holds about {held} bytes (message bodies and what it keeps "
                f"with them) and this PUT needs about {more}; the limit (max-memory) is {limit}"
            )

    @staticmethod
    def _refuse_full(name: str, size: int, limit: int, by_setting: bool) -> None:
        named = "max_length" if by_setting else "max-queue-length"
        raise QueueFull(f"queue {name!r} holds {size} messages; the limit ({named}) is {limit}")

    # ---------------------------------------------------------------- consumer

    def get(
        self,
        now: float,
        queue_name: str,
        owner: object,
        max: int,
        lease_s: float | None,
        wait_s: float = 0.0,
        token: object = None,
        receipts: Callable[[], object] | None = None,
        cancel_key: Hashable = None,
    ) -> list[Message] | None:
        """Lease up to ``max`` deliverable messages to ``owner`` for ``lease_s`` (None:
        the queue's lease setting).

        Returns the leased messages, or None if none was deliverable (or none may be
        delivered now: the queue is paused, or its rate limit has no whole token) and
        ``wait_s`` > 0: then a waiter was registered, and its messages come back
        later as a ``Delivery`` carrying ``token`` (``cancel_waits(owner, cancel_key)``
        ends it early). With ``wait_s`` > 0, an owner that has ``max-waiting`` waiting
        GETs already is refused (``BadRequest``) before anything else, messages or not.

        With ``receipts``, each message is leased instead to an owner of its own,
        ``receipts()``, made for that delivery (a receipt: the HTTP API's lease
        owner). The engine keeps no state for such an owner: it lives in the
        message while the lease does, and ``disconnect(owner)`` leaves it alone.
        """
        if wait_s > 0 and owner in self._owner_waiters:  # (none waiting: nothing to refuse)
            self._may_wait(owner)
        q = self._queues.get(queue_name)
        if q is None:  # a GET makes no queue: a waiting one waits in the name's lobby
            if wait_s > 0:
                lease = self.config.lease_s if lease_s is None else lease_s
                lobby = self._lobby(queue_name)
                self._park(lobby, owner, max, lease, now + wait_s, token, receipts, cancel_key)
                return None
            return []
        if lease_s is None:
            lease_s = q.lease_s
        if q.compact.n or q.fifo or q.heap:  # q.has_deliverable(), inlined: the hot path
            if not q.gated:
                return self._lease(q, owner, max, lease_s, now, receipts)
            allowed = self._allowed(q, now)
            if allowed:
                return self._lease_gated(q, owner, min(max, allowed), lease_s, now, receipts)
        if wait_s <= 0:
            return []
        self._park(q, owner, max, lease_s, now + wait_s, token, receipts, cancel_key)
        if q.gated:
            self._arm_bucket(q)
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

    def touch(self, now: float, owner: object, seq: int, lease_s: float | None) -> None:
        """The lease ends ``lease_s`` from now (None: the queue's lease setting)."""
        msg = self._leased_by(owner, seq)
        msg.due_at = now + (lease_s if lease_s is not None else msg.queue.lease_s)
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
        waits = self._owner_waiters.pop(owner, None)
        for waiter in waits.all() if waits is not None else ():
            self._end_wait(waiter)
        self._room.pop(owner, None)
        by_queue = self._owned.pop(owner, None) or {}
        owned = [m for leases in by_queue.values() for m in leases]
        for q in by_queue:
            q.holders.pop(owner, None)
        for msg in sorted(owned, key=lambda m: m.order):
            self._release(msg, now, "released_on_disconnect", 0.0)
        self._settle(now)
        return len(owned)
