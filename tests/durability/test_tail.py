"""How a log file ends: an interrupted write (torn) or damage (``tail.py``'s rule).

Each file is built from real frames; every damage is tried at every byte offset.
"""

from __future__ import annotations

import zlib

import pytest

from broker.durability import records as rec
from broker.durability import tail
from broker.durability.records import HEADER_SIZE
from broker.durability.tail import FILL_BYTE, classify, intact_frames

FILL = bytes([FILL_BYTE])


def frames(n: int, body: bytes = b'"x"') -> tuple[bytes, list[int]]:
    """``n`` one-record frames back to back, and the offset where each one starts."""
    out, starts = b"", []
    for seq in range(1, n + 1):
        starts.append(len(out))
        out += rec.frame([rec.encode(rec.Msg(seq, "q", body, None, 0, 5, 1.0))])
    return out, starts


def frame_at(starts: list[int], offset: int) -> int:
    """The start of the frame holding ``offset``."""
    return max(s for s in starts if s <= offset)


def test_zeros_from_any_offset_to_the_end_are_damage_unless_inside_the_last_frame() -> None:
    """Row 23: a log zeroed from somewhere in the middle to its end. Zeros are never
    a torn write, except in the crc or body of the very last frame (at most one frame)."""
    data, starts = frames(12)
    last_checked = starts[-1] + 8  # past the last frame's length and its copy: its crc, its body
    for z in range(len(data)):
        zeroed = data[:z] + bytes(len(data) - z)
        if zeroed == data:  # the last bytes of a record are zeros already
            continue
        changed = next(i for i in range(z, len(data)) if data[i])  # the first byte zeroed
        ending = classify(zeroed, frame_at(starts, changed))
        if changed >= last_checked:
            assert ending.torn == "checksum mismatch in the last frame", z
            assert ending.damage is None, z
        else:
            assert ending.torn is None and ending.damage is not None, z
            assert ending.damage.endswith("bytes of zeros to the end of the file"), z


def test_the_fill_from_any_offset_to_the_end_is_a_torn_write() -> None:
    """With --fsync always a crash leaves the frame being written, then the fill."""
    data, starts = frames(12)
    for z in range(len(data)):
        filled = data[:z] + FILL * (len(data) - z + 1000)
        ending = classify(filled, frame_at(starts, z))
        assert ending.damage is None and ending.torn is not None, z


def test_garbage_then_intact_frames_is_damage_that_counts_them() -> None:
    data, starts = frames(6)
    broken = data[: starts[2] + 3] + b"\x01\x02" + data[starts[2] + 5 :]  # a bad length
    ending = classify(broken, starts[2])
    assert ending.damage is not None and ending.torn is None
    assert "holding 3 intact frames (3 records)" in ending.damage, ending.damage


def test_an_intact_checksum_over_an_undecodable_payload_is_damage() -> None:
    data, _ = frames(2)
    junk = b"\xc1\xc1\xc1"  # never valid msgpack
    bad = rec.HEADER.pack(len(junk), len(junk) ^ 0xFFFFFFFF, zlib.crc32(junk))
    ending = classify(data + bad + junk, len(data))
    assert ending.damage is not None and ending.damage.startswith("undecodable frame")


def test_a_short_remainder_is_a_torn_header() -> None:
    data, _ = frames(2)
    for extra in range(1, HEADER_SIZE):
        assert classify(data + bytes(extra), len(data)).torn is not None


def test_an_intact_frame_is_not_an_ending() -> None:
    data, _ = frames(2)
    with pytest.raises(ValueError, match="intact"):
        classify(data, 0)


@pytest.mark.parametrize("window", [16, 61, 4096])
def test_intact_frames_are_found_across_search_windows(
    monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    monkeypatch.setattr(tail, "_SEARCH_WINDOW", window)
    data, starts = frames(40, body=b'"' + b"y" * 37 + b'"')
    garbage = b"\x07" * 33
    assert intact_frames(garbage + data, 0) == (40, 40)
    assert intact_frames(data, starts[10] + 1) == (29, 29)  # from inside frame 11
    assert intact_frames(bytes(100) + FILL * 100, 0) == (0, 0)
