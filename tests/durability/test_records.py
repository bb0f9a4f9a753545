"""Record framing and replay of raw files: round trips, torn tails at every byte, corrupt middles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.durability import records as rec
from broker.durability.files import segment_name, snapshot_name
from broker.durability.replay import CorruptLog, ReplayState, scan
from broker.durability.store import recover

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


def test_a_zero_filled_tail_is_torn() -> None:
    data, _ = encoded()
    result = scan(data + bytes(100), "f", ReplayState())
    assert result.torn == "zero-filled tail" and result.good_end == len(data)


def test_a_bad_checksum_in_the_last_record_is_torn() -> None:
    data, ends = encoded()
    broken = bytearray(data)
    broken[-1] ^= 0xFF
    result = scan(bytes(broken), "f", ReplayState())
    assert result.torn is not None and result.good_end == ends[-2]


def test_a_bad_checksum_in_the_last_record_before_zeros_is_torn() -> None:
    """With fsync always the segment is zero-filled ahead: a torn last frame has zeros after it."""
    data, ends = encoded()
    broken = bytearray(data + bytes(4096))
    broken[len(data) - 1] ^= 0xFF
    result = scan(bytes(broken), "f", ReplayState())
    assert result.torn == "checksum mismatch in the last frame"
    assert result.good_end == ends[-2]
    broken[-1] = 1  # not only zeros after it: corruption, not a torn write
    with pytest.raises(CorruptLog):
        scan(bytes(broken), "f", ReplayState())


@pytest.mark.parametrize("index", range(len(FRAMES) - 1))
@pytest.mark.parametrize("where", ["length", "check", "crc", "payload"])
def test_corruption_in_the_middle_names_file_and_offset(index: int, where: str) -> None:
    data, ends = encoded()
    start = ends[index - 1] if index else 0
    at = {"length": start, "check": start + 5, "crc": start + 9, "payload": start + 13}[where]
    broken = bytearray(data)
    broken[at] ^= 0x40
    with pytest.raises(CorruptLog) as info:
        scan(bytes(broken), "/data/log-00000001.wql", ReplayState())
    assert info.value.offset == start
    assert "/data/log-00000001.wql" in str(info.value) and f"offset {start}" in str(info.value)


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


def test_recover_truncates_the_zeros_filled_ahead_of_the_last_segment(tmp_path: Path) -> None:
    data, _ = encoded()
    _write(tmp_path / segment_name(1), data + bytes(8192))  # after a kill -9
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
