"""The data directory's files: what each is called, what is there, and how they are opened.

Owns: the names of the files that hold the state (``log-NNNNNNNN.wql``
segments, ``snap-NNNNNNNN.wqs`` snapshots, a snapshot being written is
``snap-NNNNNNNN.wqs.tmp``, damaged bytes moved aside are
``<file>.damaged-<offset>``, and ``LOCK``), reading a directory listing into
them, and every way a file of the directory is created, opened, cut, moved
aside or removed, so how that is done is decided in one place:
  - the directory is created 0700; an existing one with a wider mode is
    tightened to 0700 (with a warning) when it holds nothing but these files,
    and otherwise left as it is with a warning (it is not WonderQ's alone:
    ``--data-dir /tmp`` must never chmod /tmp);
  - every file is created 0600, and an existing one with a wider mode (an
    older WonderQ made them 0644) is narrowed to 0600 when it is opened;
  - no file is opened through a symbolic link (``O_NOFOLLOW``): a link where a
    file of the log or the lock should be stops the start with ``UnsafeFile``
    naming it, and its target is never read or written; only regular files
    are opened.
What the files mean and in which order they are read is ``store.py``'s; the
lock is ``lock.py``'s.
Must never: interpret a file's content, follow a link inside the directory, or
take a name it does not match exactly (anything else in the directory is left
alone).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from dataclasses import dataclass
from io import BufferedWriter

from broker.durability.replay import DurabilityError

log = logging.getLogger("wonderq.durability")

DIR_MODE = 0o700
FILE_MODE = 0o600
_GROUP_OR_OTHER = 0o077
LOCK_NAME = "LOCK"
DAMAGED_INFIX = ".damaged-"
_COPY_CHUNK = 1024 * 1024
UNFINISHED_SUFFIX = ".tmp"

# each name written once as a format and once as the pattern that reads it back
_SEGMENT_FORMAT = "log-{:08d}.wql"
_SEGMENT = re.compile(r"log-(\d{8})\.wql")
_SNAPSHOT_FORMAT = "snap-{:08d}.wqs"
_SNAPSHOT = re.compile(r"snap-(\d{8})\.wqs")
_UNFINISHED = re.compile(_SNAPSHOT.pattern + re.escape(UNFINISHED_SUFFIX))


def segment_name(n: int) -> str:
    return _SEGMENT_FORMAT.format(n)


def snapshot_name(n: int) -> str:
    return _SNAPSHOT_FORMAT.format(n)


def segment_path(directory: str, n: int) -> str:
    return os.path.join(directory, segment_name(n))


def snapshot_path(directory: str, n: int) -> str:
    return os.path.join(directory, snapshot_name(n))


#: every name WonderQ puts in a data directory (a directory holding others is not its own)
_OWN = re.compile(LOCK_NAME + r"|(log-\d{8}\.wql|snap-\d{8}\.wqs)(\.tmp|\.damaged-\d+(-\d+)?)?")


class UnsafeFile(DurabilityError):
    """A file of the data directory is a symbolic link, or not a regular file."""


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
        unfinished=sorted(n for n in names if _UNFINISHED.fullmatch(n)),
    )


def _numbers(names: list[str], pattern: re.Pattern[str]) -> list[int]:
    return sorted(int(m.group(1)) for n in names if (m := pattern.fullmatch(n)))


# ------------------------------------------------------ the directory


def prepare_directory(directory: str) -> None:
    """Create the data directory (0700), or tighten an existing one that is WonderQ's alone."""
    os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    st = os.stat(directory)
    mode = stat.S_IMODE(st.st_mode)
    if not mode & _GROUP_OR_OTHER:
        return
    others = sorted(n for n in os.listdir(directory) if not _OWN.fullmatch(n))
    if others or mode & stat.S_ISVTX:
        held = (
            f"holds other files ({', '.join(others[:3])})" if others else "is a shared (sticky) one"
        )
        log.warning(
            "data directory %s has mode %s (other users may list it) and %s, so it is left "
            "as it is; give WonderQ a directory of its own (it makes it 0700)",
            directory,
            oct(mode),
            held,
        )
        return
    try:
        os.chmod(directory, DIR_MODE)
    except PermissionError as exc:
        log.warning(
            "data directory %s has mode %s and cannot be tightened: %s", directory, oct(mode), exc
        )
        return
    log.warning("data directory %s had mode %s; tightened to 0700", directory, oct(mode))


# ----------------------------------------------------------- the files


def open_private(path: str, flags: int) -> int:
    """Open ``path`` as a regular file without following a link; created 0600, and an
    existing file with a wider mode is narrowed to 0600. Raises ``UnsafeFile`` for a
    link or anything but a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(
                f"{path} is a symbolic link (to {_target(path)}); WonderQ never follows a link "
                "in its data directory and did not touch its target: remove the link"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path} is not a regular file; remove it")
        if stat.S_IMODE(st.st_mode) & _GROUP_OR_OTHER:
            _narrow(fd, path, stat.S_IMODE(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _narrow(fd: int, path: str, mode: int) -> None:
    try:
        os.fchmod(fd, FILE_MODE)
    except PermissionError as exc:  # another user's file: say so, it is still usable
        log.warning("%s has mode %s and cannot be narrowed to 0600: %s", path, oct(mode), exc)
    else:
        log.info("%s had mode %s; narrowed to 0600", path, oct(mode))


def _target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def read(path: str) -> bytes:
    """The whole content of one file of the log."""
    with open(open_private(path, os.O_RDONLY), "rb") as f:
        return f.read()


def truncate(path: str, size: int) -> None:
    """Cut ``path`` to ``size`` bytes, durably."""
    fd = open_private(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def move_aside(path: str, offset: int) -> str:
    """Copy the bytes of ``path`` from ``offset`` on into a new file next to it, fsync
    it, then cut ``path`` at ``offset``: the path of the new file."""
    directory, name = os.path.split(path)
    src = open_private(path, os.O_RDONLY)
    try:
        aside, out = _create_aside(directory, f"{name}{DAMAGED_INFIX}{offset}")
        try:
            _copy(src, out, offset)
            os.fsync(out)
        except BaseException:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, aside))
            raise
        os.close(out)
    finally:
        os.close(src)
    fsync_dir(directory)
    truncate(path, offset)
    return os.path.join(directory, aside)


def _create_aside(directory: str, name: str) -> tuple[str, int]:
    """A new file named ``name`` (or ``name-2``, ``-3``... if taken): (its name, its fd)."""
    for n in range(1, 1000):
        candidate = name if n == 1 else f"{name}-{n}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            return candidate, open_private(os.path.join(directory, candidate), flags)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"{name} and 998 more names are taken", directory)


def _copy(src: int, out: int, offset: int) -> None:
    while chunk := os.pread(src, _COPY_CHUNK, offset):
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view) :]
        offset += len(chunk)


def create_segment(directory: str, n: int, *, append: bool) -> int:
    """Create segment ``n`` (it must not exist) for writing, and make its name durable.

    ``append``: every write goes to the end (``O_APPEND``); without it the
    writer places its frames with ``pwrite``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_APPEND if append else 0)
    fd = open_private(segment_path(directory, n), flags)
    try:
        fsync_dir(directory)
    except OSError:
        os.close(fd)
        raise
    return fd


def unfinished_snapshot_name(n: int) -> str:
    return snapshot_name(n) + UNFINISHED_SUFFIX


def create_snapshot(directory: str, n: int) -> BufferedWriter:
    """Create snapshot ``n``'s unfinished file for writing (a leftover of that name, or a
    link planted there, is removed first); ``install_snapshot`` gives it its name once it
    is fsynced."""
    path = os.path.join(directory, unfinished_snapshot_name(n))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return open(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb")


def install_snapshot(directory: str, n: int) -> None:
    """Rename the finished snapshot ``n`` into place, and make that durable."""
    os.replace(os.path.join(directory, unfinished_snapshot_name(n)), snapshot_path(directory, n))
    fsync_dir(directory)


def remove(directory: str, names: list[str]) -> None:
    """Delete ``names`` from ``directory`` (a link is removed, never followed), then
    fsync it once (if anything went)."""
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
