"""Intake: how new messages join a queue, for a PUT and for a restart alike.

Owns: storing new messages by the plain-message rule (``compact.is_plain``,
and ``Queue.takes_compact`` for the queue): plain ones join the queue's
compact fifo (no ``Message`` object), the others become ``Message``s that are
delayed until their instant, or ready (deliverable, or held back behind an
earlier message of their key). A message with headers is never plain: a batch
that carries headers is stored as ``Message``s. PUT stores a batch with
``_store_new``; a restart (restore.py) asks the same rule message by message
and places the others with the same ``_place_new``.
Must never: check limits (commands.py does, before anything changes), assign
ids on its own, or tell the journal (its callers do, once per batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from broker.engine.compact import is_plain
from broker.engine.footprint import KEY, Footprint, headers_cost
from broker.engine.lifecycle import PUT, PUT_DELAYED, PUT_PLAIN
from broker.engine.message import DELAYED, Message
from broker.engine.queue import Queue
from broker.engine.values import Headers, NewMessageFields

_body = itemgetter(0)  # of a NewMessageFields


class Intake(Footprint):
    def _store_new(
        self,
        q: Queue,
        now: float,
        seq: int,
        items: Sequence[NewMessageFields],
        total: int,
        headers: Sequence[Headers | None] | None = None,
    ) -> int:
        """Store ``items`` (``total`` bytes of bodies; ``headers``, if given, each one's)
        in ``q`` from id ``seq`` on; returns the next free id. One loop per message, its
        lookups hoisted: a batch PUT runs it 64 times or more, and plain messages join
        the compact fifo in one go."""
        first = seq
        default = q.max_attempts
        plain_ok = headers is None and q.takes_compact(seq, now)  # ids and time go up
        n_plain = 0
        for body, key, delay_s, priority, max_attempts in items:
            if plain_ok and is_plain(key, delay_s, priority, max_attempts, default):
                n_plain += 1
                seq += 1
                continue
            if max_attempts is None:
                max_attempts = default
            msg = Message(seq, q, body, key, priority, max_attempts, now)
            self._messages.put(seq, msg)
            if headers is not None:
                msg.headers = headers[seq - first]
            seq += 1
            total -= len(body)
            self._place_new(q, msg, now + delay_s if delay_s > 0 else None)
        if n_plain:
            compact = q.compact
            if n_plain == 1 == len(items):  # the commonest PUT: cheaper than extend
                compact.append(first, items[0][0], now)
            elif n_plain == len(items):
                compact.extend(first, list(map(_body, items)), now)
            else:  # rare: plain and other messages in one batch; pick the plain again
                for plain_seq, (body, key, delay_s, priority, max_attempts) in zip(
                    range(first, seq), items, strict=True
                ):
                    if is_plain(key, delay_s, priority, max_attempts, default):
                        compact.append(plain_seq, body, now)
            self._compact.note(first, q)
            PUT_PLAIN(self._tally, q, n_plain, total)
        return seq

    def _place_new(self, q: Queue, msg: Message, due_at: float | None) -> None:
        """A new ``Message`` of ``q`` (in ``_messages`` already) joins it: delayed until
        ``due_at``, or ready if that is None (held back if its key has an earlier one)."""
        key = msg.key
        if key is not None:
            self._extra += KEY + len(key)  # (footprint.extra_cost, inlined: keyed PUTs)
        if msg.headers is not None:
            self._extra += headers_cost(msg.headers)
        is_head = q.chain_append(msg) if key is not None else True
        if due_at is not None:
            PUT_DELAYED(self._tally, q, 1, len(msg.body))
            msg.state = DELAYED
            q.delayed.add(msg)
            msg.due_at = due_at
            self._deadlines.push(due_at, msg)
        else:
            PUT(self._tally, q, 1, len(msg.body))
            q.admit(msg, is_head)
