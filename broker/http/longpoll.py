"""Receiving over HTTP: one receive (with a long poll) and the client that may leave.

Owns: ``receive``, the handler of ``POST /v1/queues/{queue}/receive``. Each
receive runs under a backend owner of its own (``Backend.open`` with a ``Poll``
as its sink; STATS lists it, with the client's address, while it runs), and
its messages are each leased to a receipt. With ``wait`` > 0 and nothing
deliverable, the backend's waiting GET holds it (woken by events, never
polling) and completes it through ``Poll.deliver``. When the client goes away
(aiohttp cancels the handler on ``connection_lost``), the wait is dropped by
closing the owner, and messages already taken for it, whether they came before
the cancellation, after it (a delivery held for an fsync), or went unwritten,
are given back with ``ReleaseReceipts``: ready again, the attempt not counted.
Must never: lose track of a delivery (every ``ReceiveReply`` is either written
to its client or released), or poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp import web

from broker.backend.base import Replies
from broker.http.endpoints import parse, respond
from broker.http.errors import raise_for
from broker.protocol.replies import Reply
from broker.protocol.requests import AnyRequest

if TYPE_CHECKING:
    from broker.http.app import HttpApi
    from broker.http.routes import Route


class Poll:
    """The sink of one receive: its reply arrives once, however it comes."""

    __slots__ = ("_api", "future", "peer", "requests_served")

    def __init__(self, api: HttpApi, peer: str) -> None:
        self._api = api
        self.peer = peer
        self.requests_served = 1
        self.future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    def start(self, result: Replies | Awaitable[Replies]) -> None:
        """What ``execute`` returned: the reply, a waiting receive (None), or an awaitable."""
        if isinstance(result, list):
            if result[0] is not None:
                self.settle(result[0])
            return
        asyncio.ensure_future(result).add_done_callback(self._executed)

    def _executed(self, done: asyncio.Future[Replies]) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None:
            if not self.future.done():
                self.future.set_exception(exc)
            return
        reply = done.result()[0]
        if reply is not None:
            self.settle(reply)

    def settle(self, reply: Reply) -> None:
        """The receive's reply; released at once if its client is gone already."""
        if self.future.done():
            self._api.release(reply)
        else:
            self.future.set_result(reply)

    def deliver(self, request: AnyRequest, reply: Reply) -> None:
        """The backend completed the waiting receive."""
        self.settle(reply)

    def abandon(self) -> None:
        """The client went away before its reply was written: release what it got."""
        fut = self.future
        if not fut.done():
            fut.cancel()  # a reply that still comes is released by ``settle``
        elif not fut.cancelled() and fut.exception() is None:
            self._api.release(fut.result())


def _peer(request: web.Request) -> str:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if peer else "?"


async def receive(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    req = await parse(route, request)
    poll = Poll(api, _peer(request))
    owner = api.backend.open(poll)
    try:
        poll.start(api.backend.execute(owner, [req]))
        reply = await poll.future  # cancelled if the client closes while it waits
        raise_for(reply)
        response = respond(reply)
        await response.prepare(request)
        await response.write_eof()
        return response
    except BaseException:  # cancelled, the write failed, or an error reply
        poll.abandon()
        raise
    finally:
        api.backend.close(owner)
