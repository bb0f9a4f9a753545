"""The data directory's lock: one server per ``--data-dir``.

Owns: the file ``LOCK`` in the data directory, held with ``fcntl.flock`` for
the life of the process (the kernel drops it when the process dies, even by
``kill -9``, so a crash never leaves a stale lock). The holder's pid is written
into it for the error message. It is opened as every file of the directory is
(``files.open_private``): never through a symbolic link (a ``LOCK`` that is a
link stops the start with an error naming it, and its target is not written),
mode 0600.
Must never: wait for the lock (a second server fails at once), or write
through a link.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from broker.durability import files
from broker.durability.replay import DurabilityError


class DataDirLocked(DurabilityError):
    pass


class DirLock:
    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, files.LOCK_NAME)
        self._fd = files.open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise DataDirLocked(
                f"data directory {directory} is in use by another wonderq server "
                f"(pid {holder}); stop it first, or use another --data-dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
