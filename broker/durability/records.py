"""Log records: what each state change looks like on disk, and how frames hold them.

Owns: the record types (msgspec array-like structs, tagged, msgpack-encoded) and
the frame: ``<u32 length><u32 ~length><u32 crc32(payload)>`` then the payload,
a msgpack array of records. The log writes one frame per write batch (all the
records of one group commit), so replay decodes thousands of records in one C
call and checks one checksum for them. The inverted copy of the length catches
a corrupted length (so it is never mistaken for a torn tail); the crc catches a
corrupted payload. A frame is the unit of atomicity: a torn frame is dropped whole.
Every record carries absolute values (attempts, queue, order), so applying a
record twice, or to a snapshot taken a little later, gives the same state.
Old logs stay readable: a field added to an array-like record goes at its end
with a default (``Msg.headers``), and new kinds of change get new tags
(``Dedup``, ``QueueConf``, ``Drop``).
Must never: do IO or read a clock (instants arrive as wall-clock seconds).
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import msgspec

HEADER: Final = struct.Struct("<III")
HEADER_SIZE: Final = HEADER.size
MAX_PAYLOAD: Final = 1 << 30  # a length above this is corruption, whatever ~length says
_MASK: Final = 0xFFFFFFFF


class Msg(msgspec.Struct, array_like=True, tag=1, gc=False):
    """A message's full state: written by PUT, and by snapshots.

    ``due_wall`` is the wall-clock end of a delay, 0.0 when ready. Leased
    messages are written as ready: leases do not survive a restart.
    """

    seq: int
    queue: str
    body: bytes
    key: str | None
    priority: int
    max_attempts: int
    put_wall: float
    due_wall: float = 0.0
    attempts: int = 0
    order: int = 0  # 0: same as seq
    headers: dict[str, str] | None = None


class Lease(msgspec.Struct, array_like=True, tag=2, gc=False):
    """Messages delivered: their attempt counts (absolute, one per seq)."""

    seqs: list[int]
    attempts: list[int]


class Ack(msgspec.Struct, array_like=True, tag=3, gc=False):
    seq: int


class Release(msgspec.Struct, array_like=True, tag=4, gc=False):
    """A message went back: ready (``due_wall`` 0.0) or delayed until ``due_wall``."""

    seq: int
    attempts: int
    due_wall: float


class Dead(msgspec.Struct, array_like=True, tag=5, gc=False):
    """A message moved to its dead-letter queue ``queue`` at place ``order``."""

    seq: int
    queue: str
    order: int
    attempts: int


class Redrive(msgspec.Struct, array_like=True, tag=6, gc=False):
    """Messages moved back to ``queue`` (attempts reset to 0) at places ``orders``."""

    queue: str
    seqs: list[int]
    orders: list[int]


class Purge(msgspec.Struct, array_like=True, tag=7, gc=False):
    """Messages deleted by PURGE or REMOVE."""

    seqs: list[int]


class Meta(msgspec.Struct, array_like=True, tag=8, gc=False):
    """First record of a snapshot: the engine's next sequence number at that point."""

    next_seq: int


class Dedup(msgspec.Struct, array_like=True, tag=9, gc=False):
    """Dedup ids first used in ``queue`` at ``put_wall``: ``ids[i]`` stored message
    ``seqs[i]``; each is remembered until ``put_wall + window_s``."""

    queue: str
    put_wall: float
    window_s: float
    ids: list[str]
    seqs: list[int]


class QueueConf(msgspec.Struct, array_like=True, tag=10, gc=False):
    """A queue's settings (None: the server's default) and paused flag, as they are now."""

    queue: str
    paused: bool = False
    lease_s: float | None = None
    max_attempts: int | None = None
    max_length: int | None = None
    rate: float | None = None
    dedup_window_s: float | None = None


class Drop(msgspec.Struct, array_like=True, tag=11, gc=False):
    """A queue deleted (DELETE): its messages ``seqs``, settings, paused flag, dedup ids."""

    queue: str
    seqs: list[int]


Record = Msg | Lease | Ack | Release | Dead | Redrive | Purge | Meta | Dedup | QueueConf | Drop

_encoder = msgspec.msgpack.Encoder()
encode: Final = _encoder.encode  # one record (unframed)
decoder: Final[msgspec.msgpack.Decoder[list[Record]]] = msgspec.msgpack.Decoder(list[Record])
_ARRAY32 = struct.Struct(">BI")  # msgpack array header with a 32-bit count


def frame(parts: list[bytes]) -> bytes:
    """One frame holding the encoded records ``parts`` (at least one)."""
    payload = _ARRAY32.pack(0xDD, len(parts)) + b"".join(parts)
    n = len(payload)
    return HEADER.pack(n, n ^ _MASK, zlib.crc32(payload)) + payload


def decode_frame(payload: bytes | memoryview) -> list[Record]:
    records: list[Record] = decoder.decode(payload)
    return records


def length_ok(length: int, check: int) -> bool:
    return length ^ _MASK == check and 0 < length <= MAX_PAYLOAD
