"""Figures about the broker's own process, read when asked (never on a timer).

Owns: resident memory (RSS). Must never: cache, poll, or spawn anything.
"""

from __future__ import annotations

import os
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
