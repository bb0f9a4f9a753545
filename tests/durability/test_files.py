"""The data directory's file names: naming, reading a listing back, creating and removing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.durability import files


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
