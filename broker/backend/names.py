"""Pages of a sorted list of queue names held whole, for a backend that lists its queue
names in one call (the Redis one): the same pages and cursors as the engine's own
index (broker/engine/names.py) gives the in-memory backend.
Must never: change the list.
"""

from __future__ import annotations

import bisect
from itertools import islice

from broker.engine.names import take


def page_of(
    names: list[str], prefix: str, after: str | None, limit: int
) -> tuple[list[str], str | None]:
    """``SortedNames.page`` over a sorted list held whole: the same page and cursor."""
    start = prefix if after is None or after < prefix else after
    i = bisect.bisect_left(names, start)
    if after is not None and i < len(names) and names[i] == after:
        i += 1
    return take(islice(names, i, None), prefix, limit)
