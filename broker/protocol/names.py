"""Wire names that every layer reports: the per-queue counters and the dead-letter suffix.

Owns: names clients see in replies (protocol.md section 4). The engine counts
under these names and the backends report them as they are.
Must never: import anything (every layer may import this module).
"""

from __future__ import annotations

from typing import Final

#: The per-queue totals since start, in STATS order.
COUNTERS: Final = (
    "put",
    "acked",
    "nacked",
    "expired",
    "released_on_disconnect",
    "dead_lettered",
    "redriven",
    "purged",
)

#: ``<queue>`` + this is the queue's dead-letter queue.
DEAD_SUFFIX: Final = ".dead"
