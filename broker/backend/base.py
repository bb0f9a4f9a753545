"""The one interface between the server and queue state.

Owns: the contract every backend keeps (in-memory today; a shared Redis-backed
one later). It is batch-capable: ``execute`` takes every request parsed from
one read of a connection, so the in-memory path pays no coroutine per request.
It is async-capable: ``execute`` may return the replies, or an awaitable of
them (a remote store, or a durable log waiting for its fsync). Replies are
typed (``broker.protocol.replies``); only the protocol layer turns them into bytes. Waiting GETs and
the clock belong to the backend; it completes a waiting GET by calling the
connection's ``ReplySink.deliver``. Lease owners are opaque tokens.
Must never: write to sockets (the server does) or know the wire encoding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from broker.protocol.replies import Reply
from broker.protocol.requests import AnyRequest

#: One typed reply per request (the protocol layer encodes it), or ``None``: a GET
#: now waiting, whose reply comes later through ``ReplySink.deliver``.
Replies = list[Reply | None]

#: The attribute by which an awaitable that ``execute`` returned says its batch is
#: applied already (see ``applied``).
APPLIED: Final = "applied"


def applied(result: Awaitable[Replies]) -> bool:
    """Whether the batch whose replies ``result`` (what ``execute`` returned, not a list)
    will give is applied already: every change it makes is made, and only its replies
    wait (for a durable log's fsync, say). The awaitable says so with a true ``applied``
    attribute; a connection may then run its next batches before it completes, their
    replies written after its. Any other awaitable (a job that goes on in slices, a
    remote store) holds the connection's later requests back until it completes."""
    return getattr(result, APPLIED, False) is True


#: Extra figures for STATS' ``server`` section (connections, RSS, log size...).
StatsProvider = Callable[[], dict[str, Any]]


class StartError(Exception):
    """A backend cannot start (its store refuses it, say); ``serve`` prints it and exits 1."""


class ReplySink(Protocol):
    """What a backend may do to a connection: complete one of its waiting GETs.

    A sink MAY have ``room()``: how many bytes of replies its connection can take
    now, before its write buffer passes the high-water mark (the in-memory backend
    then serves its waiting GETs only while it has room; ``Backend.writable`` says
    when it changed). A sink MAY also have ``peer`` (its address) and
    ``requests_served``, which
    ``STATS {"connections": true}`` and ``PEEK``'s lease holder report; a
    backend reads them with ``getattr`` and a default, so a wrapping sink that
    does not forward them only loses those figures. It MAY have ``close()``: a
    backend whose shared store became unreachable closes its connections with it
    (the Redis backend does, before its peers reap the connections' leases).
    """

    def deliver(self, request: AnyRequest, reply: Reply) -> None: ...


class Backend(Protocol):
    def open(self, sink: ReplySink) -> object:
        """A connection arrived; return its opaque owner token."""

    def close(self, owner: object) -> None:
        """The connection is gone: release its leases and drop its waiting GETs at once."""

    def writable(self, owner: object) -> None:
        """The connection's write buffer passed its high-water mark, or drained below
        its low one (its sink's ``room()`` says how many bytes it can take now): a
        backend serves a waiting GET only to a connection with room."""

    def holds(self, owner: object) -> bool:
        """True while the connection holds a lease or has a GET waiting (it is not idle)."""

    def execute(
        self, owner: object, requests: Sequence[AnyRequest]
    ) -> Replies | Awaitable[Replies]:
        """Apply requests in order; one reply (or None for a waiting GET or RECEIVE) each.
        An awaitable of them may say the batch is applied already (``applied``): the
        connection then runs its next batches meanwhile; else it waits for it.

        Besides the TCP protocol's requests, a backend executes the HTTP API's
        receipt requests (``requests.ReceiptRequest``): messages received with
        ``Receive`` are each leased to a receipt, an owner of its own that only
        the receipt requests name (``broker/protocol/receipts.py``).
        """

    def add_stats_provider(self, provider: StatsProvider) -> None:
        """Merge ``provider()`` into STATS' ``server`` section."""

    async def start(self) -> None:
        """Begin timers (and open stores)."""

    async def drain(self) -> None:
        """Take no more work (the server is stopping; its connections are still open).

        From the first instant of this call, ``execute`` raises ``ShuttingDown``
        and applies nothing; every waiting GET is completed (empty) through its
        sink; it returns once every reply already owed can be sent (with a
        durable log under ``always``: the changes already applied are fsynced).
        ``close`` still works (connections close after this), and ``stop`` follows.
        """

    async def stop(self) -> None:
        """After every connection is closed: stop timers, write out and close stores."""
