"""The engine's ``Journal`` for the durable log: one record per state change.

Owns: turning engine state changes into records (``records.py``) and appending
them to the log, and converting the engine's monotonic instants to wall-clock
ones (``wall_offset`` = wall clock minus loop clock, measured once at start),
so a delay and a dedup window survive a restart. Leases are recorded only as
attempt counts. Also the records a snapshot writes besides messages: a
queue's settings and paused flag (``queue_record``) and dedup ids.
Must never: call back into the engine, raise for a change already applied, or
do IO itself (the log's writer does: ``loop_writer.py``, ``thread_writer.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from broker.durability import records as rec
from broker.engine import Headers, Message, NewMessageFields, Queue, State

_MSG_TAG = rec.Msg.__struct_config__.tag


def message_record(msg: Message, wall_offset: float) -> rec.Msg:
    """A message's full state; a leased message is written as ready."""
    due = msg.due_at + wall_offset if msg.state == State.DELAYED else 0.0
    return rec.Msg(
        msg.seq,
        msg.queue.name,
        msg.body,
        msg.key,
        msg.priority,
        msg.max_attempts,
        msg.put_at + wall_offset,
        due,
        msg.attempts,
        0 if msg.order == msg.seq else msg.order,
        msg.headers,
    )


def queue_record(q: Queue) -> rec.QueueConf:
    """A queue's settings and paused flag, as they are now."""
    s = q.settings
    return rec.QueueConf(
        q.name, q.paused, s.lease_s, s.max_attempts, s.max_length, s.rate, s.dedup_window_s
    )


class LogJournal:
    def __init__(self, append: Callable[[bytes], None], wall_offset: float = 0.0) -> None:
        self.append = append
        self.wall_offset = wall_offset

    def put(
        self,
        queue: Queue,
        first_seq: int,
        put_at: float,
        items: Sequence[NewMessageFields],
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        # the hot path: a plain tuple encodes exactly as the array-like tagged ``Msg``
        # (tag first; attempts, order and headers left to their defaults), in half the
        # time; with headers, the tuple runs to them (attempts and order 0)
        append, encode, offset, tag = self.append, rec.encode, self.wall_offset, _MSG_TAG
        name, default_attempts, put_wall = queue.name, queue.max_attempts, put_at + offset
        for seq, (body, key, delay_s, priority, max_attempts) in enumerate(items, first_seq):
            fields: tuple[object, ...] = (
                tag,
                seq,
                name,
                body,
                key,
                priority,
                max_attempts if max_attempts is not None else default_attempts,
                put_wall,
                put_at + delay_s + offset if delay_s > 0 else 0.0,
            )
            if headers is not None and headers[seq - first_seq] is not None:
                fields += (0, 0, headers[seq - first_seq])
            append(encode(fields))

    def remember(
        self, queue: Queue, put_at: float, window_s: float, pairs: Sequence[tuple[str, int]]
    ) -> None:
        ids = [dedup for dedup, _ in pairs]
        seqs = [seq for _, seq in pairs]
        self.append(
            rec.encode(rec.Dedup(queue.name, put_at + self.wall_offset, window_s, ids, seqs))
        )

    def lease(self, msgs: list[Message]) -> None:
        self.append(rec.encode(rec.Lease([m.seq for m in msgs], [m.attempts for m in msgs])))

    def ack(self, msg: Message) -> None:
        self.append(rec.encode(rec.Ack(msg.seq)))

    def release(self, msg: Message) -> None:
        due = msg.due_at + self.wall_offset if msg.state == State.DELAYED else 0.0
        self.append(rec.encode(rec.Release(msg.seq, msg.attempts, due)))

    def dead(self, msg: Message, source: Queue) -> None:
        self.append(rec.encode(rec.Dead(msg.seq, msg.queue.name, msg.order, msg.attempts)))

    def redrive(self, msgs: list[Message], source: Queue) -> None:
        self.append(
            rec.encode(
                rec.Redrive(msgs[0].queue.name, [m.seq for m in msgs], [m.order for m in msgs])
            )
        )

    def purge(self, queue: Queue, seqs: list[int]) -> None:
        self.append(rec.encode(rec.Purge(seqs)))

    def configure(self, queue: Queue) -> None:
        self.append(rec.encode(queue_record(queue)))

    def drop(self, queue: Queue, seqs: list[int]) -> None:
        self.append(rec.encode(rec.Drop(queue.name, seqs)))
