"""The data directory's file names: what each log file is called, and what is there.

Owns: the names of the files that hold the state (``log-NNNNNNNN.wql``
segments, ``snap-NNNNNNNN.wqs`` snapshots, a snapshot being written is
``snap-NNNNNNNN.wqs.tmp``), reading a directory listing into them, creating a
segment, removing files, and fsyncing the directory after a name changed. Every
file of the log is created and removed here, so how that is done (modes,
links) is decided in one place. What the files mean and in which order they
are read is ``store.py``'s; the lock file is ``lock.py``'s.
Must never: interpret a file's content, or take a name it does not match
exactly (anything else in the directory is left alone).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from io import BufferedWriter

UNFINISHED_SUFFIX = ".tmp"

# each name written once as a format and once as the pattern that reads it back
_SEGMENT_FORMAT = "log-{:08d}.wql"
_SEGMENT = re.compile(r"log-(\d{8})\.wql")
_SNAPSHOT_FORMAT = "snap-{:08d}.wqs"
_SNAPSHOT = re.compile(r"snap-(\d{8})\.wqs")


def segment_name(n: int) -> str:
    return _SEGMENT_FORMAT.format(n)


def snapshot_name(n: int) -> str:
    return _SNAPSHOT_FORMAT.format(n)


def segment_path(directory: str, n: int) -> str:
    return os.path.join(directory, segment_name(n))


def snapshot_path(directory: str, n: int) -> str:
    return os.path.join(directory, snapshot_name(n))


def file_number(name: str) -> int | None:
    """The number of a segment or snapshot file name, None for any other name."""
    m = _SEGMENT.fullmatch(name) or _SNAPSHOT.fullmatch(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class Listing:
    """The log files of one directory listing, each kind sorted by number."""

    segments: list[int]
    snapshots: list[int]
    unfinished: list[str]  # names ending in ``.tmp``: snapshots never finished

    def older_than(self, k: int) -> list[str]:
        """The names of the segments and snapshots numbered below ``k``."""
        return [segment_name(n) for n in self.segments if n < k] + [
            snapshot_name(n) for n in self.snapshots if n < k
        ]


def list_files(directory: str) -> Listing:
    names = os.listdir(directory)
    return Listing(
        segments=_numbers(names, _SEGMENT),
        snapshots=_numbers(names, _SNAPSHOT),
        unfinished=sorted(n for n in names if n.endswith(UNFINISHED_SUFFIX)),
    )


def _numbers(names: list[str], pattern: re.Pattern[str]) -> list[int]:
    return sorted(int(m.group(1)) for n in names if (m := pattern.fullmatch(n)))


def create_segment(directory: str, n: int, *, append: bool) -> int:
    """Create segment ``n`` (it must not exist) for writing, and make its name durable.

    ``append``: every write goes to the end (``O_APPEND``); without it the
    writer places its frames with ``pwrite``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_APPEND if append else 0)
    fd = os.open(segment_path(directory, n), flags, 0o644)
    try:
        fsync_dir(directory)
    except OSError:
        os.close(fd)
        raise
    return fd


def unfinished_snapshot_name(n: int) -> str:
    return snapshot_name(n) + UNFINISHED_SUFFIX


def create_snapshot(directory: str, n: int) -> BufferedWriter:
    """Open snapshot ``n``'s unfinished file for writing (a leftover of that name is
    overwritten); ``install_snapshot`` gives it its name once it is fsynced."""
    return open(os.path.join(directory, unfinished_snapshot_name(n)), "wb")


def install_snapshot(directory: str, n: int) -> None:
    """Rename the finished snapshot ``n`` into place, and make that durable."""
    os.replace(os.path.join(directory, unfinished_snapshot_name(n)), snapshot_path(directory, n))
    fsync_dir(directory)


def remove(directory: str, names: list[str]) -> None:
    """Delete ``names`` from ``directory``, then fsync it once (if anything went)."""
    for name in names:
        os.unlink(os.path.join(directory, name))
    if names:
        fsync_dir(directory)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
