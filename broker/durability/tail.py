"""The end of a log file: an interrupted write (a torn tail) or damage.

Owns: the rule that tells the two apart, applied where the frames of a file
stop being readable (offset ``pos``: the end of the last intact frame), and the
fill byte the ``--fsync always`` writer writes ahead of the data. A write that
a crash interrupted leaves at most its one frame unfinished, and after it only
what was there before the write: nothing, or the fill ahead of the data. So what
follows ``pos`` is a **torn tail** when it is

  - shorter than a frame header, or
  - a valid frame header whose frame runs past the end of the file, or
  - a valid frame header whose frame fails its checksum, followed by nothing
    or by fill bytes only, or
  - fill bytes only (the crash came between two writes), or after a frame
    header cut short (the fill shows through the rest of it).

Anything else is **damage**: a bad header, or a frame failing its checksum,
followed by anything but fill (zeros where frames were, other bytes, or further
intact frames: acknowledged records after the bad spot), or a frame whose
checksum holds but that does not decode. The broker never writes zeros into a
log (the fill is ``FILL_BYTE``, never a valid header), so zeros past one frame
are never a torn write. What a file of each kind may end in (the newest segment
of a run may be torn; older segments and snapshots never) is ``store.py``'s.
Limits, by design: a file cut short (at a frame boundary, or inside its last
frame) and zeros in the crc or body of the very last frame look like a torn
write (at most one frame is taken for one); and a file system that, after a
power loss, shows blocks never written as zeros would make an ``everysec`` or
``no`` tail look damaged: the start stops (conservative), and ``--recover``
moves the zeros aside.
Must never: read a file or decide what to do about its end (the caller does).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

import msgspec

from broker.durability.records import HEADER, HEADER_SIZE, decode_frame, length_ok

#: what the ``always`` writer fills a segment with ahead of its data (loop_writer.py);
#: four of them are never a valid frame header (the length copy is inverted)
FILL_BYTE: Final = 0xFF
#: the torn tail a crash leaves between two writes (``always``): the fill alone
FILL_ONLY: Final = "the space filled ahead of the data"
_CANDIDATE = b"\xff\xff\xff\xff"  # a length and its inverted copy XOR to this
_SEARCH_WINDOW = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ending:
    """How the readable part of a file ends at ``pos``: ``torn`` xor ``damage`` says why."""

    torn: str | None
    damage: str | None


def classify(data: bytes, pos: int) -> Ending:
    """The ending of ``data`` (one file's bytes) where its frames stop being readable."""
    end = len(data)
    if end - pos < HEADER_SIZE:
        return Ending("incomplete frame header at end of file", None)
    length, check, crc = HEADER.unpack_from(data, pos)
    if not length_ok(length, check):
        if _only_fill(data, pos):
            return Ending(FILL_ONLY, None)
        if _only_fill(data, pos + HEADER_SIZE):  # a real header would have its frame after it
            return Ending("frame header cut short by the fill ahead of the data", None)
        after = _after(data, pos + HEADER_SIZE)
        return Ending(None, f"bad frame length ({length} vs check {check}); {after}")
    stop = pos + HEADER_SIZE + length
    if stop > end:
        return Ending("last frame runs past the end of the file", None)
    payload = memoryview(data)[pos + HEADER_SIZE : stop]
    if zlib.crc32(payload) != crc:
        if _only_fill(data, stop):
            return Ending("checksum mismatch in the last frame", None)
        return Ending(None, f"checksum mismatch; {_after(data, stop)}")
    try:
        decode_frame(payload)
    except msgspec.DecodeError as exc:
        return Ending(None, f"undecodable frame ({exc}); {_after(data, stop)}")
    raise ValueError(f"the frame at {pos} is intact: nothing ends there")


def _only_fill(data: bytes, pos: int) -> bool:
    return data.count(FILL_BYTE, pos) == len(data) - pos


def _after(data: bytes, pos: int) -> str:
    """What follows a bad spot, for the message: zeros, or the intact frames found."""
    rest = len(data) - pos
    if rest == 0:
        return "nothing after it"
    if data.count(0, pos) == rest:
        return f"then {rest} bytes of zeros to the end of the file"
    frames, records = intact_frames(data, pos)
    if frames:
        return f"then {rest} bytes holding {frames} intact frames ({records} records)"
    return f"then {rest} bytes that hold no intact frame"


def intact_frames(data: bytes, pos: int) -> tuple[int, int]:
    """(frames, records) of the intact frames found anywhere in ``data[pos:]``.

    A header is a length and its inverted copy, whose bytes XOR to ``ff ff ff ff``:
    each window's XOR with itself shifted by four bytes is searched for that in C,
    so a damaged segment of hundreds of MB is searched in about a second.
    """
    frames = records = 0
    skip_to = pos  # frames found do not overlap
    for at in range(pos, len(data) - HEADER_SIZE + 1, _SEARCH_WINDOW):
        window = data[at : at + _SEARCH_WINDOW + HEADER_SIZE]
        n = len(window) - 4
        xor = (
            int.from_bytes(window[:n], "little") ^ int.from_bytes(window[4:], "little")
        ).to_bytes(n, "little")
        i = xor.find(_CANDIDATE)
        while 0 <= i < _SEARCH_WINDOW:
            start = at + i
            found = _frame_at(data, start) if start >= skip_to else None
            if found is not None:
                frames, records = frames + 1, records + found[1]
                skip_to = found[0]
            i = xor.find(_CANDIDATE, i + 1)
    return frames, records


def _frame_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """(end, records) of an intact frame at ``pos``, or None."""
    if len(data) - pos < HEADER_SIZE:
        return None
    length, check, crc = HEADER.unpack_from(data, pos)
    stop = pos + HEADER_SIZE + length
    if not length_ok(length, check) or stop > len(data):
        return None
    payload = memoryview(data)[pos + HEADER_SIZE : stop]
    if zlib.crc32(payload) != crc:
        return None
    try:
        return stop, len(decode_frame(payload))
    except msgspec.DecodeError:
        return stop, 0
