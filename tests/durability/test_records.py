"""Record framing and replay of raw files: round trips, torn tails at every byte, corrupt middles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.durability import records as rec
from broker.durability.files import segment_name, snapshot_name
from broker.durability.replay import CorruptLog, ReplayState, scan
from broker.durability.store import recover
from broker.durability.tail import FILL_BYTE

FILL = bytes([FILL_BYTE])

RECORDS: list[rec.Record] = [
    rec.Msg(10, "q", b'"a"', None, 0, 5, 1000.5),
    rec.Msg(11, "q", b'{"n":1}', "k", -3, 2, 1000.6, 2000.0),
    rec.Lease([10, 11], [1, 1]),
    rec.Release(11, 1, 0.0),
    rec.Lease([11], [2]),
    rec.Dead(11, "q.dead", 12, 2),
    rec.Ack(10),
    rec.Msg(13, "q", b"[1,2]", None, 0, 5, 1000.7),
    rec.Purge([13]),
    rec.Redrive("q", [11], [14]),
    rec.Meta(20),
]


FRAMES = [RECORDS[0:2], RECORDS[2:3], RECORDS[3:6], RECORDS[6:7], RECORDS[7:10], RECORDS[10:]]


def encoded() -> tuple[bytes, list[int]]:
    """FRAMES back to back, and the offset where each one ends."""
    out, ends = b"", []
    for records in FRAMES:
        out += frame(records)
        ends.append(len(out))
    return out, ends


def frame(records: list[rec.Record]) -> bytes:
    return rec.frame([rec.encode(r) for r in records])


def test_each_record_type_round_trips_in_a_frame() -> None:
    for records in [*FRAMES, RECORDS]:
        framed = frame(records)
        length, check, _ = rec.HEADER.unpack_from(framed)
        assert rec.length_ok(length, check) and len(framed) == rec.HEADER_SIZE + length
        assert rec.decode_frame(framed[rec.HEADER_SIZE :]) == records


def test_replay_folds_records_into_live_state() -> None:
    data, _ = encoded()
    state = ReplayState()
    result = scan(data, "f", state)
    assert result.torn is None and result.records == len(RECORDS) and result.good_end == len(data)
    assert state.reordered  # a dead-letter and a redrive moved message 11
    assert list(state.live) == [11]
    m = state.live[11]
    assert (m.queue, m.order, m.attempts, m.due_wall) == ("q", 14, 0, 0.0)
    assert state.hi == 19  # Meta(next_seq=20) is the highest


def test_a_tail_cut_at_every_byte_offset_is_torn_and_keeps_every_whole_frame() -> None:
    data, ends = encoded()
    for cut in range(len(data)):
        state = ReplayState()
        result = scan(data[:cut], "f", state)
        whole = [e for e in ends if e <= cut]
        assert result.good_end == (whole[-1] if whole else 0), cut
        assert result.records == sum(len(f) for f in FRAMES[: len(whole)]), cut
        assert (result.torn is None) == (cut in whole or cut == 0), cut


def test_the_fill_ahead_of_the_data_is_torn_and_zeros_are_damage() -> None:
    """With fsync always a segment is filled ahead with FILL_BYTE: never zeros."""
    data, _ = encoded()
    result = scan(data + FILL * 100, "f", ReplayState())
    assert result.torn == "the space filled ahead of the data" and result.good_end == len(data)
    result = scan(data + bytes(100), "f", ReplayState())
    assert result.torn is None and result.good_end == len(data)
    assert (
        result.damage
        == "bad frame length (0 vs check 0); then 88 bytes of zeros to the end of the file"
    )


def test_a_bad_checksum_in_the_last_record_is_torn() -> None:
    data, ends = encoded()
    broken = bytearray(data)
    broken[-1] ^= 0xFF
    result = scan(bytes(broken), "f", ReplayState())
    assert result.torn is not None and result.good_end == ends[-2]


def test_a_bad_checksum_in_the_last_record_before_the_fill_is_torn() -> None:
    """With fsync always a torn last frame has the fill after it; anything else is damage."""
    data, ends = encoded()
    broken = bytearray(data + FILL * 4096)
    broken[len(data) - 1] ^= 0xFF
    result = scan(bytes(broken), "f", ReplayState())
    assert result.torn == "checksum mismatch in the last frame" and result.damage is None
    assert result.good_end == ends[-2]
    broken[-1] = 1  # not only fill after it: damage, not a torn write
    result = scan(bytes(broken), "f", ReplayState())
    assert result.torn is None and result.damage is not None
    assert result.damage.startswith("checksum mismatch; then 4096 bytes that hold no intact frame")


@pytest.mark.parametrize("index", range(len(FRAMES) - 1))
@pytest.mark.parametrize("where", ["length", "check", "crc", "payload"])
def test_corruption_in_the_middle_is_damage_at_its_frame(index: int, where: str) -> None:
    data, ends = encoded()
    start = ends[index - 1] if index else 0
    at = {"length": start, "check": start + 5, "crc": start + 9, "payload": start + 13}[where]
    broken = bytearray(data)
    broken[at] ^= 0x40
    result = scan(bytes(broken), "/data/log-00000001.wql", ReplayState())
    assert result.good_end == start and result.torn is None
    assert result.damage is not None
    if where in ("crc", "payload"):  # the header holds: the frames after it are found
        later = FRAMES[index + 1 :]
        frames = f"{len(later)} intact frames ({sum(len(f) for f in later)} records)"
        assert frames in result.damage, result.damage


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def test_recover_truncates_a_torn_tail_of_the_last_segment(tmp_path: Path) -> None:
    data, ends = encoded()
    _write(tmp_path / segment_name(1), data)
    _write(tmp_path / segment_name(2), data[: ends[1] + 7])
    got = recover(str(tmp_path))
    assert got.next_segment == 3 and len(got.notes) == 1
    assert "log-00000002.wql" in got.notes[0] and f"offset {ends[1]}" in got.notes[0]
    assert (tmp_path / segment_name(2)).stat().st_size == ends[1]
    assert recover(str(tmp_path)).notes == []  # the truncation is durable


def test_recover_truncates_the_fill_ahead_of_the_last_segment(tmp_path: Path) -> None:
    data, _ = encoded()
    _write(tmp_path / segment_name(1), data + FILL * 8192)  # after a kill -9
    got = recover(str(tmp_path))
    assert len(got.notes) == 1 and "did not stop cleanly" in got.notes[0], got.notes
    assert (tmp_path / segment_name(1)).stat().st_size == len(data)
    assert got.state.records == len(RECORDS)


def test_recover_refuses_a_torn_record_before_the_last_segment(tmp_path: Path) -> None:
    data, _ = encoded()
    _write(tmp_path / segment_name(1), data[:-3])
    _write(tmp_path / segment_name(2), data)
    with pytest.raises(CorruptLog, match=r"log-00000001\.wql"):
        recover(str(tmp_path))
    assert (tmp_path / segment_name(1)).stat().st_size == len(data) - 3  # nothing touched


def test_recover_refuses_a_missing_segment(tmp_path: Path) -> None:
    data, _ = encoded()
    _write(tmp_path / segment_name(1), data)
    _write(tmp_path / segment_name(3), data)
    with pytest.raises(CorruptLog, match=r"log-00000002\.wql.*missing"):
        recover(str(tmp_path))


def test_recover_uses_the_newest_snapshot_and_removes_leftovers(tmp_path: Path) -> None:
    snap = frame([rec.Meta(100)]) + frame([rec.Msg(50, "q", b"1", None, 0, 5, 1.0)])
    _write(tmp_path / segment_name(1), frame([rec.Msg(40, "q", b"0", None, 0, 5, 1.0)]))
    _write(tmp_path / snapshot_name(2), snap)
    _write(tmp_path / segment_name(2), frame([rec.Ack(50)]))
    _write(tmp_path / segment_name(3), frame([rec.Msg(60, "q", b"2", None, 0, 5, 1.0)]))
    _write(tmp_path / (snapshot_name(3) + ".tmp"), b"half a snapshot")
    got = recover(str(tmp_path))
    assert list(got.state.live) == [60] and got.state.hi == 99 and got.next_segment == 4
    assert sorted(os.listdir(tmp_path)) == [segment_name(2), segment_name(3), snapshot_name(2)]


def test_recover_refuses_a_cut_snapshot(tmp_path: Path) -> None:
    snap = frame([rec.Meta(100), rec.Msg(50, "q", b"1", None, 0, 5, 1.0)])
    _write(tmp_path / snapshot_name(1), snap[:-2])
    _write(tmp_path / segment_name(1), b"")
    with pytest.raises(CorruptLog, match=r"snap-00000001\.wqs"):
        recover(str(tmp_path))
