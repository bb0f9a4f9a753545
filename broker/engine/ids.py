"""Message ids: an integer sequence inside, an opaque string on the wire.

Owns: the mapping between the engine's integer sequence numbers and the wire id
strings. Ids are unique across restarts because the first sequence number of a
run is taken from the wall clock in microseconds by the caller (the engine never
reads a clock) and a run cannot put more than one message per microsecond.
Must never: promise clients anything about an id's shape (protocol.md says opaque).
"""

from __future__ import annotations

from collections.abc import Sequence

_HEX = frozenset("0123456789abcdef")
_HEX_BYTES = b"0123456789abcdef"
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


def parse_ids(texts: Sequence[str]) -> list[int] | None:
    """The sequence numbers of many wire ids, or None if any cannot be one.

    What ``parse_id`` says of each, with one C-level character check for the
    whole batch: deleting the hex digits must leave nothing (any other character
    is left over; a non-ASCII one as ``?``). ``"".join`` would hide an empty id,
    so the shortest is checked too.
    """
    if not texts:
        return []
    if (
        min(map(len, texts)) < 1
        or max(map(len, texts)) > _MAX_ID_LEN
        or "".join(texts).encode("ascii", "replace").translate(None, _HEX_BYTES)
    ):
        return None
    return [int(t, 16) for t in texts]
