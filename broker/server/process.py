"""The broker's own process: its memory figure, and giving freed memory back.

Owns: resident memory (RSS, read when asked), and ``give_back_memory``: glibc's
``malloc_trim``, which returns the free pages inside its heap to the OS. Freed
buffers (the unfinished lines of many connections, say) leave holes in the
heap that glibc keeps resident otherwise: row 15 of issue 18 saw 1.5 GB still
held after the connections that held it had closed. Elsewhere (musl, macOS) it
does nothing.
Must never: cache, poll, or spawn anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Final

_STATM: Final = "/proc/self/statm"


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 4096


_PAGE: Final = _page_size()


def rss_bytes() -> int | None:
    """Resident set size in bytes (Linux: /proc/self/statm), or None where unknown."""
    try:
        with open(_STATM, "rb") as f:
            fields = f.read().split()
    except OSError:
        return None
    return int(fields[1]) * _PAGE


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - every Linux has a libc
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_TRIM: Final = _malloc_trim()


def give_back_memory() -> bool:
    """Return the free memory of the C heap to the OS (glibc); False where it cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
