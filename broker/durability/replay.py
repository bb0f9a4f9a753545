"""Replay: read log files back into the state they describe.

Owns: walking the framed records of one file and folding them into
``ReplayState``: the live messages by seq, the queues' settings and paused
flags, the dedup ids per queue (the last first use of each; the restore drops
those past their window), and the highest sequence number ever used. Where the
frames stop being readable before the end of the file, how the file ends (a torn
tail or damage) is ``tail.py``'s rule; ``scan`` reports it.
Must never: drop data silently. A torn tail or damage is reported to the caller
(``store.py``), which decides what that file may end in.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import msgspec

from broker.durability import tail
from broker.durability.records import (
    HEADER,
    HEADER_SIZE,
    Ack,
    Dead,
    Dedup,
    Drop,
    Lease,
    Meta,
    Msg,
    Purge,
    QueueConf,
    Record,
    Redrive,
    Release,
    decode_frame,
    length_ok,
)

#: a dedup id as the log remembers it: (seq of its message, first put at (wall), window)
DedupEntry = tuple[int, float, float]


class DurabilityError(Exception):
    """The data directory cannot be used; the message says why and what to do."""


class CorruptLog(DurabilityError):
    def __init__(
        self,
        path: str,
        offset: int,
        reason: str,
        advice: str = "Move the file aside or repair it by hand.",
    ) -> None:
        super().__init__(
            f"corrupt log record in {path} at offset {offset}: {reason}; "
            f"refusing to start (data after this point would be lost). {advice}"
        )
        self.path = path
        self.offset = offset


@dataclass(slots=True)
class Scan:
    """What reading one file found."""

    records: int
    good_end: int  # offset just past the last intact record
    torn: str | None  # why the tail after ``good_end`` is a torn write, if it is one
    damage: str | None = None  # what is wrong after ``good_end``, if it is damage


@dataclass(slots=True)
class ReplayState:
    live: dict[int, Msg] = field(default_factory=dict)
    queues: dict[str, QueueConf] = field(default_factory=dict)  # settings, paused flags
    dedup: dict[str, dict[str, DedupEntry]] = field(default_factory=dict)  # queue -> id ->
    hi: int = 0  # highest sequence number (id or order) any record used
    records: int = 0
    reordered: bool = False  # some message's order is not its seq: restore must sort

    def apply(self, rec: Record) -> None:  # noqa: C901 - one branch per record type
        live = self.live
        if type(rec) is Msg:
            live[rec.seq] = rec
            self.hi = max(self.hi, rec.seq, rec.order)
            if rec.order:
                self.reordered = True
        elif type(rec) is Ack:
            live.pop(rec.seq, None)
        elif type(rec) is Lease:
            for seq, attempts in zip(rec.seqs, rec.attempts, strict=True):
                m = live.get(seq)
                if m is not None:
                    m.attempts = attempts
        elif type(rec) is Release:
            m = live.get(rec.seq)
            if m is not None:
                m.attempts = rec.attempts
                m.due_wall = rec.due_wall
        elif type(rec) is Dead:
            self._move(rec.seq, rec.queue, rec.order, rec.attempts)
        elif type(rec) is Redrive:
            for seq, order in zip(rec.seqs, rec.orders, strict=True):
                self._move(seq, rec.queue, order, 0)
        elif type(rec) is Purge:
            for seq in rec.seqs:
                live.pop(seq, None)
        elif type(rec) is Meta:
            self.hi = max(self.hi, rec.next_seq - 1)
        else:
            self._apply_queue(rec)

    def _apply_queue(self, rec: Record) -> None:
        """The records of queue-level state: dedup ids, settings, a deleted queue."""
        if type(rec) is Dedup:
            ids = self.dedup.setdefault(rec.queue, {})
            for dedup, seq in zip(rec.ids, rec.seqs, strict=True):
                ids[dedup] = (seq, rec.put_wall, rec.window_s)
        elif type(rec) is QueueConf:
            self.queues[rec.queue] = rec
        elif type(rec) is Drop:
            for seq in rec.seqs:
                self.live.pop(seq, None)
            self.queues.pop(rec.queue, None)
            self.dedup.pop(rec.queue, None)

    def _move(self, seq: int, queue: str, order: int, attempts: int) -> None:
        self.hi = max(self.hi, order)
        self.reordered = True
        m = self.live.get(seq)
        if m is not None:
            m.queue = queue
            m.order = order
            m.attempts = attempts
            m.due_wall = 0.0


def scan(data: bytes, path: str, state: ReplayState) -> Scan:
    """Apply every intact frame of ``data`` (one file's bytes) to ``state``."""
    view = memoryview(data)
    end = len(data)
    pos = 0
    n_records = 0
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    live = state.live
    apply = state.apply
    try:
        while pos < end:
            if end - pos < HEADER_SIZE:
                break
            length, check, crc = unpack(data, pos)
            if not length_ok(length, check):
                break
            start = pos + HEADER_SIZE
            stop = start + length
            if stop > end:
                break
            payload = view[start:stop]
            if crc32(payload) != crc:
                break
            try:
                batch = decode_frame(payload)
            except msgspec.DecodeError:
                break
            hi = state.hi
            for rec in batch:
                if type(rec) is Msg and not rec.order:  # the hot path, inlined
                    live[rec.seq] = rec
                    if rec.seq > hi:
                        hi = rec.seq
                else:
                    state.hi = hi
                    apply(rec)
                    hi = state.hi
            state.hi = hi
            n_records += len(batch)
            pos = stop
    finally:
        state.records += n_records
    if pos < end:  # the frame at pos cannot be read: how does the file end?
        ending = tail.classify(data, pos)
        return Scan(n_records, pos, ending.torn, ending.damage)
    return Scan(n_records, pos, None)
