"""Message ids: an integer sequence inside, an opaque string on the wire.

Owns: the mapping between the engine's integer sequence numbers and the wire id
strings. Ids are unique across restarts because the first sequence number of a
run is taken from the wall clock in microseconds by the caller (the engine never
reads a clock) and a run cannot put more than one message per microsecond.
Must never: promise clients anything about an id's shape (protocol.md says opaque).
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdef")
_MAX_ID_LEN = 24


def format_id(seq: int) -> str:
    return format(seq, "x")


def id_bytes(seq: int) -> bytes:
    """``format_id(seq)`` as ASCII bytes, for replies built as bytes."""
    return b"%x" % seq


def parse_id(text: str) -> int | None:
    """Return the sequence number of a wire id, or None if it cannot be one."""
    if not text or len(text) > _MAX_ID_LEN or not _HEX.issuperset(text):
        return None
    return int(text, 16)
