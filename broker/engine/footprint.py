"""What the engine holds, in bytes: message bodies and an estimate of everything kept with them.

Owns: the per-object constants ``--max-memory`` counts, and ``Footprint.footprint()``:
the bodies held (exactly) plus, for each thing the engine keeps, its measured
cost. The constants were measured with tracemalloc (``bench/footprint.py -n
100000``, Python 3.11, 64-bit: bytes Python allocated per object, beyond what
is counted apart), rounded up, plus what the measurement shared that a broker
does not (each body is a bytes object of its own: 33 bytes beyond its length;
a waiting GET holds its request and reply token):

  kind (what it keeps)                                    measured  constant
  compact message (seq, put time, body slots; the arrays grow   24  COMPACT 72
    by about an eighth at a time)
  message object (Message, id entry, ready/delayed/leased         MESSAGE 440
    place: heap and aged entries, deadline entry, lease set)  380-401
  key (its string, its chain, the chain's entry; + len)          159  KEY 160
  waiting GET (Waiter, its queue's and owner's entries,          550  WAITER 800
    deadline entry; + the request and token the backend keeps)
  acked id (history entry and order slot)                        61  ACKED 80
  queue (Queue and its containers, table and name index;       3996  QUEUE 4100
    its paged chains and delayed set: +376, paged.py)
  dedup id (its entries in the queue and the window's deque)    258  DEDUP 400
    for an 18-character id; ids are at most 128 characters

Headers are counted by their names and values (``HEADERS`` for the dict, and
``HEADER`` per entry on top of its characters). The process's resident memory
also holds the allocator's slack and what is not the engine's (connections,
buffers, the interpreter): tests/server/test_memory_accounting.py fills a
broker with the costliest small messages (1-byte bodies, keyed and delayed)
and checks that its RSS grows by about the limit, not by many times it. At
``--max-memory 32m`` and ``128m``, a broker filled to the limit with 1-byte
messages grew its RSS by 1.07 to 1.11 times the limit (keyed and delayed, or
with a priority) and 1.20 (plain, with COMPACT at 60; 72 since).
Must never: walk the engine's messages (every term is a counter times a
constant), or be read on the hot path when ``--max-memory`` is not set.
"""

from __future__ import annotations

from typing import Final

from broker.engine.message import Message
from broker.engine.state import EngineState

COMPACT: Final = 72
MESSAGE: Final = 440
KEY: Final = 160
HEADERS: Final = 240
HEADER: Final = 130
WAITER: Final = 800
ACKED: Final = 80
QUEUE: Final = 4100
DEDUP: Final = 400


def headers_cost(headers: dict[str, str]) -> int:
    """What a message's headers take, beyond its object."""
    return HEADERS + sum(len(name) + len(value) + HEADER for name, value in headers.items())


def extra_cost(msg: Message) -> int:
    """What a message's key and headers take, beyond its object (0 without either)."""
    cost = 0 if msg.key is None else KEY + len(msg.key)
    if msg.headers is not None:
        cost += headers_cost(msg.headers)
    return cost


class Footprint(EngineState):
    def footprint(self) -> int:
        """About how many bytes the engine holds: bodies, and the constants above."""
        tally = self._tally
        return (
            tally.bytes
            + tally.n_compact * COMPACT
            + len(self._messages) * MESSAGE
            + self._extra
            + tally.waiting * WAITER
            + len(self._acked_order) * ACKED
            + len(self._queues) * QUEUE
            + self._dedup.n * DEDUP
        )
