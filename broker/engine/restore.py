"""Restore: re-creating the messages a durable store read back, after a restart.

Owns: turning ``StoredMessage``s (in queue order, instants on another clock)
into live messages, by the same rule as a PUT: a plain message never
delivered (``compact.is_plain``, without headers, in a queue that takes it)
is kept compact; every other one becomes a ``Message`` placed as intake.py
places a new one, delayed if its instant is still to come, else ready; never
leased. Ids handed out afterwards are above every restored one. Also a
queue's settings and paused flag (restored first: a queue's settings decide
what is plain in it) and the dedup ids still in their window.
Must never: report to the journal (the store already holds these messages),
or read a clock (``now`` and the clock offset are passed in).
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.engine.compact import is_plain
from broker.engine.controls import Controls
from broker.engine.dedup import Remembered
from broker.engine.lifecycle import PUT_PLAIN
from broker.engine.message import Message
from broker.engine.queue import Queue
from broker.engine.settings import Settings
from broker.engine.values import StoredMessage


class Restore(Controls):
    def restore_queue(self, now: float, name: str, settings: Settings, paused: bool) -> None:
        """Re-create a queue's settings and paused flag (before its messages)."""
        q = self.queue(name)
        q.paused = paused
        self._apply(q, settings, now)

    def restore_dedup(self, now: float, entries: Iterable[Remembered], clock_offset: float) -> None:
        """Re-create dedup ids (oldest first; their first-put instants on another clock:
        ``put_wall - clock_offset`` here). Ids past their window are not kept."""
        for name, dedup, seq, put_wall, window_s in entries:
            put_at = put_wall - clock_offset
            if put_at + window_s > now:
                self._dedup.restore(self.queue(name), now, (name, dedup, seq, put_at, window_s))

    def restore_messages(
        self, now: float, items: Iterable[StoredMessage], clock_offset: float
    ) -> None:
        """Re-create messages read back from a durable store (no journal calls).

        ``items`` come in ``order`` order (so queue and key order come back);
        their instants are on another clock: ``put_wall - clock_offset`` is
        ``put_at`` here. Each is ready, or delayed if its ``due_wall`` is later
        than ``now``; never leased. One tight loop: a restart restores millions.
        """
        index, tally = self._compact, self._tally
        q = Queue("", 0)  # placeholder until the first item names its queue
        default = 0
        hi = self._next_seq - 1
        run = run_bytes = 0  # compact messages of ``q`` restored and not counted yet
        for item in items:
            if q.name != item.queue:
                PUT_PLAIN(tally, q, run, run_bytes)
                run = run_bytes = 0
                q = self.queue(item.queue)
                default = q.max_attempts
            seq = item.seq
            put_at = item.put_wall - clock_offset
            order = item.order or seq
            if order > hi:
                hi = order
            if seq > hi:
                hi = seq
            if (
                order == seq  # never redriven or dead-lettered: its first place
                and not item.attempts  # never delivered
                and item.headers is None
                and is_plain(item.key, item.due_wall, item.priority, item.max_attempts, default)
                # (due_wall is 0.0 when not delayed)
                and q.takes_compact(seq, put_at)
                and index.admits(seq)
            ):  # the common case: a plain message never delivered, kept compact
                q.compact.append(seq, item.body, put_at)
                index.note(seq, q)
                run += 1
                run_bytes += len(item.body)
                continue
            self._restore_object(q, item, put_at, order, now, clock_offset)
        PUT_PLAIN(tally, q, run, run_bytes)
        self.reserve_seqs(hi + 1)

    def _restore_object(
        self, q: Queue, item: StoredMessage, put_at: float, order: int, now: float, offset: float
    ) -> None:
        """Re-create a message that is not kept compact, as a ``Message`` placed as new."""
        msg = Message(item.seq, q, item.body, item.key, item.priority, item.max_attempts, put_at)
        msg.attempts = item.attempts
        msg.order = order
        msg.headers = item.headers
        self._messages.put(item.seq, msg)
        due_at = item.due_wall - offset if item.due_wall else 0.0  # due_wall 0.0: not delayed
        self._place_new(q, msg, due_at if due_at > now else None)
