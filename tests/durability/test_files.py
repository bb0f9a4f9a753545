"""The data directory's files: names, listings, creating and removing, modes and links."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.durability import files
from broker.durability.lock import DirLock


def test_names_read_back_as_their_numbers() -> None:
    for n in (1, 7, 12345678, 99999999):
        assert files.file_number(files.segment_name(n)) == n
        assert files.file_number(files.snapshot_name(n)) == n
    assert files.segment_name(3) == "log-00000003.wql"
    assert files.snapshot_name(3) == "snap-00000003.wqs"


@pytest.mark.parametrize(
    "name",
    [
        "LOCK",
        "log-1.wql",  # not eight digits
        "log-00000001.wqs",  # a segment number with the snapshot suffix
        "snap-00000001.wql",
        "log-00000001.wql.tmp",
        "snap-00000001.wqs.tmp",
        "log-0000000a.wql",
        "xlog-00000001.wql",
        "log-000000001.wql",
    ],
)
def test_other_names_are_not_log_files(name: str) -> None:
    assert files.file_number(name) is None


def test_a_listing_sorts_each_kind_and_leaves_other_files_alone(tmp_path: Path) -> None:
    for name in [
        files.segment_name(3),
        files.segment_name(1),
        files.segment_name(2),
        files.snapshot_name(2),
        files.unfinished_snapshot_name(3),
        "LOCK",
        "notes.txt",
        "notes.tmp",  # not a snapshot: never taken for an unfinished one (and deleted)
        "log-2.wql",
    ]:
        (tmp_path / name).write_bytes(b"")
    listing = files.list_files(str(tmp_path))
    assert listing.segments == [1, 2, 3]
    assert listing.snapshots == [2]
    assert listing.unfinished == ["snap-00000003.wqs.tmp"]
    assert listing.older_than(1) == []
    assert listing.older_than(2) == ["log-00000001.wql"]
    assert listing.older_than(3) == ["log-00000001.wql", "log-00000002.wql", "snap-00000002.wqs"]


def test_a_segment_is_created_once(tmp_path: Path) -> None:
    fd = files.create_segment(str(tmp_path), 4, append=False)
    os.close(fd)
    with pytest.raises(FileExistsError):
        files.create_segment(str(tmp_path), 4, append=True)


def test_an_appending_segment_writes_at_its_end(tmp_path: Path) -> None:
    fd = files.create_segment(str(tmp_path), 1, append=True)
    try:
        os.write(fd, b"one")
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"two")
    finally:
        os.close(fd)
    assert (tmp_path / files.segment_name(1)).read_bytes() == b"onetwo"


def test_a_snapshot_gets_its_name_only_when_installed(tmp_path: Path) -> None:
    directory = str(tmp_path)
    with files.create_snapshot(directory, 5) as f:
        f.write(b"state")
    assert files.list_files(directory).snapshots == []
    files.install_snapshot(directory, 5)
    listing = files.list_files(directory)
    assert listing.snapshots == [5] and listing.unfinished == []
    assert Path(files.snapshot_path(directory, 5)).read_bytes() == b"state"
    files.remove(directory, [files.snapshot_name(5)])
    assert os.listdir(directory) == []


# ------------------------------------------------------------ modes and links


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_every_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    directory = str(tmp_path)
    old = os.umask(0o000)
    try:
        os.close(files.create_segment(directory, 1, append=False))
        with files.create_snapshot(directory, 2) as f:
            f.write(b"state")
        files.install_snapshot(directory, 2)
        (tmp_path / files.segment_name(3)).write_bytes(b"0123456789")
        files.move_aside(files.segment_path(directory, 3), 4)
        lock = DirLock(directory)
        lock.release()
    finally:
        os.umask(old)
    made = {p.name: mode(p) for p in tmp_path.iterdir()}
    assert made.pop(files.segment_name(3)) == 0o600  # narrowed when it was opened
    assert made == {
        files.segment_name(1): 0o600,
        files.snapshot_name(2): 0o600,
        f"{files.segment_name(3)}.damaged-4": 0o600,
        "LOCK": 0o600,
    }


def test_a_file_an_older_version_made_0644_is_narrowed_when_read(tmp_path: Path) -> None:
    segment = tmp_path / files.segment_name(1)
    segment.write_bytes(b"x")
    segment.chmod(0o644)
    assert files.read(str(segment)) == b"x"
    assert mode(segment) == 0o600


def test_a_log_file_that_is_a_link_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o644)
    link = tmp_path / files.segment_name(1)
    link.symlink_to(victim)
    for use in (files.read, lambda p: files.truncate(p, 0), lambda p: files.move_aside(p, 1)):
        with pytest.raises(files.UnsafeFile, match=f"{link} is a symbolic link \\(to {victim}\\)"):
            use(str(link))
    assert victim.read_bytes() == b"precious" and mode(victim) == 0o644


def test_anything_but_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / files.segment_name(1)
    os.mkfifo(fifo)
    with pytest.raises(files.UnsafeFile, match="not a regular file"):
        files.read(str(fifo))  # and it does not block waiting for a writer


def test_a_link_planted_where_a_snapshot_is_written_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_bytes(b"precious")
    (tmp_path / files.unfinished_snapshot_name(4)).symlink_to(victim)
    with files.create_snapshot(str(tmp_path), 4) as f:
        f.write(b"state")
    files.install_snapshot(str(tmp_path), 4)
    assert victim.read_bytes() == b"precious"
    snapshot = Path(files.snapshot_path(str(tmp_path), 4))
    assert not snapshot.is_symlink() and snapshot.read_bytes() == b"state"


def test_a_lock_that_is_a_link_stops_the_start_and_its_target_is_not_written(
    tmp_path: Path,
) -> None:
    """Row 22: LOCK a symlink to another file; before, the pid was written into it."""
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_bytes(b"precious\n")
    (tmp_path / "LOCK").symlink_to(victim)
    with pytest.raises(files.UnsafeFile, match=f"{tmp_path / 'LOCK'} is a symbolic link"):
        DirLock(str(tmp_path))
    assert victim.read_bytes() == b"precious\n"


# ---------------------------------------------------------------- the directory


def test_a_new_data_directory_is_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        files.prepare_directory(str(tmp_path / "a" / "data"))
    finally:
        os.umask(old)
    assert mode(tmp_path / "a" / "data") == 0o700


def test_a_wide_directory_holding_only_wonderq_files_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in ["LOCK", files.segment_name(1), files.unfinished_snapshot_name(2)]:
        (data / name).write_bytes(b"")
    (data / f"{files.segment_name(1)}.damaged-7-2").write_bytes(b"")
    files.prepare_directory(str(data))
    assert mode(data) == 0o700
    assert f"data directory {data} had mode 0o755; tightened to 0700" in caplog.text


@pytest.mark.parametrize("why", ["other file", "sticky"])
def test_a_wide_directory_that_is_not_wonderqs_alone_is_left_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    """``--data-dir /tmp`` must never chmod /tmp."""
    data = tmp_path / "data"
    data.mkdir()
    wide = 0o1777 if why == "sticky" else 0o755
    data.chmod(wide)
    if why == "other file":
        (data / "notes.txt").write_bytes(b"")
    files.prepare_directory(str(data))
    assert stat.S_IMODE(data.stat().st_mode) == wide
    assert f"data directory {data} has mode {oct(wide)}" in caplog.text
    assert ("notes.txt" in caplog.text) == (why == "other file")


def test_a_file_that_cannot_be_narrowed_is_used_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    segment = tmp_path / files.segment_name(1)
    segment.write_bytes(b"x")
    segment.chmod(0o644)

    def refused(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refused)  # another user's file
    assert files.read(str(segment)) == b"x"
    assert f"{segment} has mode 0o644 and cannot be narrowed to 0600" in caplog.text
