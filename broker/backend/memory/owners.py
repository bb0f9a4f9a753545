"""What the in-memory backend knows of a connection, and of one of its waiting GETs.

Owns: ``Owner``, the opaque lease-owner token the backend gives a connection
(with the sink its waiting GETs are delivered to), and ``Wait``, the engine's
token for a waiting GET (the request, and when it began to wait).
Must never: hold queue state (the engine does) or write to a connection but
through its sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from broker.backend.base import ReplySink
from broker.protocol import requests as rq


class Wait(NamedTuple):
    """The engine's token for a waiting GET: the request, and when it began to wait."""

    request: rq.Get | rq.Receive
    since: float


class Owner:
    """The opaque lease-owner token of one connection; ``room``, if its sink says, the
    bytes its connection can take before its write buffer passes the high-water mark."""

    __slots__ = ("n", "room", "sink")

    def __init__(self, n: int, sink: ReplySink) -> None:
        self.n = n
        self.sink = sink
        self.room: Callable[[], int] | None = getattr(sink, "room", None)

    def __repr__(self) -> str:
        return f"Owner#{self.n}"

    @property
    def peer(self) -> str:
        """The connection's address (``?`` for a sink that does not say)."""
        return str(getattr(self.sink, "peer", "?"))
