"""Recovery of a damaged data directory: stop the start, or (``--recover``) move the damage aside.

``recover`` on directories written by hand from real frames: damage stops it and
changes nothing; ``go_on`` copies the damaged bytes into ``<file>.damaged-<offset>``
before it cuts the file, and replays what comes after.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.durability import records as rec
from broker.durability.files import UnsafeFile, segment_name, snapshot_name
from broker.durability.replay import CorruptLog
from broker.durability.store import recover


def msgs(*seqs: int) -> bytes:
    """One frame per message."""
    return b"".join(
        rec.frame([rec.encode(rec.Msg(seq, "q", b"%d" % seq, None, 0, 5, 1.0))]) for seq in seqs
    )


def zeroed_from_middle(data: bytes) -> tuple[bytes, int]:
    """``data`` zeroed from its middle to its end (row 23), and where its intact frames end."""
    half = len(data) // 2
    one = len(msgs(1))  # every frame of msgs(1..9) has this size
    return data[:half] + bytes(len(data) - half), half // one * one


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_damage_in_the_newest_segment_stops_the_start_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / segment_name(1)).write_bytes(msgs(1, 2, 3))
    damaged, end = zeroed_from_middle(msgs(4, 5, 6, 7, 8, 9))
    segment = tmp_path / segment_name(2)
    segment.write_bytes(damaged)
    before = listing(tmp_path)
    with pytest.raises(CorruptLog) as info:
        recover(str(tmp_path))
    text = str(info.value)
    assert f"corrupt log record in {segment} at offset {end}" in text, text
    assert "zeros to the end of the file" in text, text
    assert f"--recover to move the {len(damaged) - end} bytes from offset {end}" in text, text
    assert f"{segment}.damaged-{end}" in text, text
    assert listing(tmp_path) == before


def test_recover_moves_the_damage_aside_then_cuts_the_segment(tmp_path: Path) -> None:
    damaged, end = zeroed_from_middle(msgs(4, 5, 6, 7, 8, 9))
    segment = tmp_path / segment_name(1)
    segment.write_bytes(damaged)
    got = recover(str(tmp_path), go_on=True)
    aside = tmp_path / f"{segment_name(1)}.damaged-{end}"
    assert aside.read_bytes() == damaged[end:]
    assert stat.S_IMODE(aside.stat().st_mode) == 0o600
    assert segment.read_bytes() == damaged[:end]
    assert sorted(got.state.live) == [4, 5, 6][: end // len(msgs(1))]
    assert got.notes == [] and len(got.moved_aside) == 1
    assert str(aside) in got.moved_aside[0] and f"offset {end}" in got.moved_aside[0]
    again = recover(str(tmp_path))  # the cut is durable; the damaged file is not read
    assert again.notes == [] and again.moved_aside == []
    assert sorted(os.listdir(tmp_path)) == [segment_name(1), aside.name]


def test_recover_goes_on_past_damage_in_an_older_segment(tmp_path: Path) -> None:
    good = msgs(1, 2, 3)
    broken = bytearray(good)
    broken[len(msgs(1)) + 20] ^= 0x40  # inside message 2's frame
    (tmp_path / segment_name(1)).write_bytes(bytes(broken))
    (tmp_path / segment_name(2)).write_bytes(msgs(7, 8))
    with pytest.raises(CorruptLog, match="1 intact frames"):
        recover(str(tmp_path))
    got = recover(str(tmp_path), go_on=True)
    assert sorted(got.state.live) == [1, 7, 8]  # 2 and 3 were after the damage
    assert (tmp_path / f"{segment_name(1)}.damaged-{len(msgs(1))}").exists()


def test_a_second_move_aside_at_the_same_offset_gets_its_own_name(tmp_path: Path) -> None:
    damaged, end = zeroed_from_middle(msgs(1, 2, 3, 4))
    segment = tmp_path / segment_name(1)
    segment.write_bytes(damaged)
    taken = tmp_path / f"{segment_name(1)}.damaged-{end}"
    taken.write_bytes(b"an earlier one")
    recover(str(tmp_path), go_on=True)
    assert taken.read_bytes() == b"an earlier one"
    assert (tmp_path / f"{taken.name}-2").read_bytes() == damaged[end:]


def test_a_cut_snapshot_is_damage_too(tmp_path: Path) -> None:
    snap = rec.frame([rec.encode(rec.Meta(100))]) + msgs(50, 51)
    (tmp_path / snapshot_name(1)).write_bytes(snap[:-2])
    (tmp_path / segment_name(1)).write_bytes(msgs(60))
    with pytest.raises(CorruptLog, match=r"snap-00000001\.wqs.*snapshot is cut short"):
        recover(str(tmp_path))
    got = recover(str(tmp_path), go_on=True)
    assert sorted(got.state.live) == [50, 60]


def test_nothing_is_changed_before_every_file_was_read(tmp_path: Path) -> None:
    """Damage found in segment 1 is moved aside only after segment 2 was read: here
    segment 2 cannot be (a link), so segment 1 is left exactly as it was."""
    damaged, _ = zeroed_from_middle(msgs(1, 2, 3, 4))
    (tmp_path / segment_name(1)).write_bytes(damaged)
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_bytes(msgs(9))
    (tmp_path / segment_name(2)).symlink_to(victim)
    before = listing(tmp_path)
    with pytest.raises(UnsafeFile, match=rf"{segment_name(2)} is a symbolic link"):
        recover(str(tmp_path), go_on=True)
    assert listing(tmp_path) == before
