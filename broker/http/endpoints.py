"""The handlers of the HTTP API's routes (which route takes which is ``routes.ROUTES``).

Owns: turning one HTTP request into typed requests (through the route's
``Shape``), running them through the API's backend owner, and the reply into
a response: its status (201 for a stored PUT), its headers, and the few
replies the API composes from several protocol replies (a page of queues, one
queue with its settings). Replies are the backend's typed Structs encoded by
msgspec, so every field has the name it has over TCP.
Must never: apply anything except through ``HttpApi.run``/``call``, or build
an error body itself (errors are raised; ``errors.py`` renders them).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from broker.errors import BadRequest, NotFound, NotLeased
from broker.http.app import OPENAPI, read_body
from broker.http.errors import JSON, error_response
from broker.http.metrics import Tally, exposition
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.codec import check_shape
from broker.protocol.names import COUNTERS, DEAD_SUFFIX
from broker.protocol.receipts import message_id_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broker.http.app import HttpApi
    from broker.http.routes import Route

QUEUE_PAGE_MAX: Final = 1000
#: the figures ``GET /v1/queues`` sums over the queues it lists (``totals``)
SUMMED: Final = ("ready", "delayed", "leased", "dead", "waiting_consumers", "bytes", *COUNTERS)
#: what a page of queues may be sorted by: the name, a STATS figure, the rate limit
SORTS: Final = ("name", *SUMMED, "oldest_ready_age", "paused", "rate")
QueueOrder = StrEnum("QueueOrder", [(name, name) for name in SORTS])  # type: ignore[misc]
_NAME_TEXT = Annotated[str, Meta(max_length=rq.QUEUE_NAME_MAX)]


class QueuePage(Struct, kw_only=True, forbid_unknown_fields=True):
    """A page of ``GET /v1/queues``: in name order after ``after`` (a page of STATS), or,
    over every queue (a pass over all of them), those that contain ``contains`` in
    ``sort`` order (then by name) from ``offset``, with their ``count`` and ``totals``;
    ``dead_queues`` false leaves out each ``<q>.dead`` whose ``q`` exists (its messages
    are ``q``'s ``dead`` figure). Both start with ``prefix``."""

    prefix: _NAME_TEXT = ""
    contains: _NAME_TEXT = ""
    sort: QueueOrder = QueueOrder("name")
    desc: bool = False
    dead_queues: bool = True
    totals: bool = False
    offset: Annotated[int, Meta(ge=0)] = 0
    after: rq.QueueName | None = None
    limit: Annotated[int, Meta(ge=1, le=QUEUE_PAGE_MAX)] = QUEUE_PAGE_MAX


class PeekPage(Struct, kw_only=True, forbid_unknown_fields=True):
    """``GET /v1/queues/{queue}/messages``: PEEK, a page at a time (``offset``)."""

    queue: rq.QueueName
    state: rq.PeekState | None = None
    limit: Annotated[int, Meta(ge=1, le=rq.PEEK_LIMIT_MAX)] = rq.PEEK_LIMIT_DEFAULT
    offset: Annotated[int, Meta(ge=0, lt=rq.PEEK_LIMIT_MAX)] = 0


class MessageReceipt(Struct, kw_only=True, forbid_unknown_fields=True):
    """``DELETE /v1/messages/{id}?receipt=R``: ACK one message by its current receipt."""

    id: rq.MessageId
    receipt: rq.ReceiptText


class QueueList(Struct, kw_only=True, gc=False):
    """A page of queues' STATS figures, by name; ``order``: their names in the order asked
    for; ``server``: STATS' server figures; ``next``: the ``after`` of the next page (name
    order); over every queue, ``count``: the queues that match (on every page) and
    ``totals``: their figures summed."""

    ok: bool = True
    queues: dict[str, rp.QueueStats]
    order: list[str]
    server: dict[str, Any]
    count: int | UnsetType = UNSET
    totals: dict[str, int] | UnsetType = UNSET
    next: str | UnsetType = UNSET


class QueueReply(Struct, kw_only=True, gc=False):
    """One queue's STATS figures."""

    ok: bool = True
    queue: rp.QueueStats


def respond(
    reply: Struct, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(reply), status=status, content_type=JSON, headers=headers
    )


async def parse(route: Route, request: web.Request) -> Any:
    """The route's typed request, from the URL and the body."""
    assert route.shape is not None
    return route.shape.build(request.match_info, request.query, await read_body(request))


async def op(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    """One protocol request, its reply as it is."""
    return respond(await api.call(await parse(route, request)))


async def put(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    """PUT: 201 when something was stored, 200 when every message was a duplicate."""
    reply = await api.call(await parse(route, request))
    if isinstance(reply, rp.PutReply):
        if reply.duplicate is True:
            return respond(reply)
        return respond(reply, 201, {"Location": f"/v1/messages/{reply.id}"})
    assert isinstance(reply, rp.PutManyReply)
    return respond(reply, 200 if len(reply.duplicates) == len(reply.ids) else 201)


async def delete_message(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    """ACK one message: 204, or the error of its receipt (409 stale, 404 no such message)."""
    named: MessageReceipt = await parse(route, request)
    if message_id_of(named.receipt) != named.id:
        raise BadRequest(f"receipt {named.receipt!r} is not a receipt of message {named.id}")
    reply = await api.call(rq.AckReceipts(receipts=[named.receipt]))
    assert isinstance(reply, rp.AckReceiptsReply)
    if reply.not_leased:
        raise NotLeased(
            f"receipt {named.receipt!r} is stale: the message was acked, released or "
            "delivered again since"
        )
    if reply.not_found:
        raise NotFound(f"no message with id {named.id!r}")
    return web.Response(status=204)


async def queue_list(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    """A page of STATS (its cursor is the name after which the page starts: ``after``)."""
    page: QueuePage = await parse(route, request)
    every = _needs_every_queue(page)
    if page.after is not None and every:
        raise BadRequest(
            "`after` pages in name order alone: with `sort`, `desc`, `contains`, "
            "`dead_queues`, `totals` or `offset`, page with `offset`"
        )
    if not every:
        stats = await api.call(rq.Stats(prefix=page.prefix, limit=page.limit, cursor=page.after))
        assert isinstance(stats, rp.StatsReply)
        order = list(stats.queues)
        return respond(
            QueueList(queues=stats.queues, order=order, server=stats.server, next=stats.next)
        )
    stats = await every_queue(api, page.prefix)
    queues = stats.queues
    names = sorted(name for name in queues if _listed(page, name, queues))
    totals = dict.fromkeys(SUMMED, 0)
    for name in names:
        figures = queues[name]
        for figure in SUMMED:
            totals[figure] += getattr(figures, figure)
    if page.sort != "name" or page.desc:
        names.sort(key=_sort_key(page.sort, queues), reverse=page.desc)  # ties stay by name
    shown = names[page.offset : page.offset + page.limit]
    return respond(
        QueueList(
            queues={name: queues[name] for name in shown},
            order=shown,
            count=len(names),
            totals=totals,
            server=stats.server,
        )
    )


def _needs_every_queue(page: QueuePage) -> bool:
    """Whether the page needs every queue's figures: sorted, filtered, counted or summed."""
    plain = page.sort == "name" and not page.desc and not page.offset and not page.contains
    return page.totals or not plain or not page.dead_queues


def _listed(page: QueuePage, name: str, queues: dict[str, rp.QueueStats]) -> bool:
    if page.contains not in name:
        return False
    if page.dead_queues or not name.endswith(DEAD_SUFFIX):
        return True
    return name.removesuffix(DEAD_SUFFIX) not in queues  # a dead queue whose queue is gone


async def stats_pages(api: HttpApi, prefix: str = "") -> AsyncIterator[rp.StatsReply]:
    """STATS of every queue (whose name starts with ``prefix``), a page per call, and the
    loop's other work between two pages: the in-memory backend answers at once, so
    awaiting its reply alone would never let the loop run (100 pages of 1000 queues
    held it 0.65 s)."""
    cursor: str | None = None
    while True:
        page = await api.call(rq.Stats(prefix=prefix, limit=rq.LIST_LIMIT_MAX, cursor=cursor))
        assert isinstance(page, rp.StatsReply)
        yield page
        if not isinstance(page.next, str):
            return
        cursor = page.next
        await asyncio.sleep(0)  # the others' turn


async def every_queue(api: HttpApi, prefix: str = "") -> rp.StatsReply:
    """STATS of every queue (whose name starts with ``prefix``) in one reply."""
    stats: rp.StatsReply | None = None
    async for page in stats_pages(api, prefix):
        if stats is None:
            stats = page
        else:
            stats.queues.update(page.queues)
            stats.server = page.server
    assert stats is not None
    stats.next = UNSET
    return stats


def _sort_key(sort: str, queues: dict[str, rp.QueueStats]) -> Any:
    """The key of ``sort`` (a STATS figure or a setting); None (no oldest ready message,
    no rate limit) sorts below every number."""
    if sort == "name":
        return None
    if sort == "rate":
        return lambda name: _number(queues[name].settings.rate)
    return lambda name: _number(getattr(queues[name], sort))


def _number(value: Any) -> float:
    return -1.0 if value is None or value is UNSET else float(value)


async def peek(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    """PEEK from ``offset``: the first ``offset + limit`` messages, less the first ``offset``."""
    page: PeekPage = await parse(route, request)
    wanted = page.offset + page.limit
    if wanted > rq.PEEK_LIMIT_MAX:
        raise BadRequest(
            f"offset + limit is {wanted}; at most {rq.PEEK_LIMIT_MAX}: PEEK lists the first "
            f"{rq.PEEK_LIMIT_MAX} messages of a state"
        )
    request_ = rq.Peek(queue=page.queue, state=page.state, limit=wanted)
    problem = check_shape(request_)
    if problem is not None:
        raise BadRequest(problem)
    reply = await api.call(request_)
    assert isinstance(reply, rp.PeekReply)
    return respond(rp.PeekReply(messages=reply.messages[page.offset :], total=reply.total))


async def queue(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    stats_request: rq.Stats = await parse(route, request)
    stats = await api.call(stats_request)
    assert isinstance(stats, rp.StatsReply) and stats_request.queue is not None
    return respond(QueueReply(queue=stats.queues[stats_request.queue]))


async def health(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    problem = api.health()
    if problem is not None:
        return error_response(problem)
    return respond(rp.OK)


async def openapi(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[OPENAPI], content_type=JSON)


async def metrics(api: HttpApi, route: Route, request: web.Request) -> web.StreamResponse:
    tally = Tally(api.config.metrics_queues)
    async for page in stats_pages(api):  # (the loop runs other work between pages)
        tally.add(page)
    body, content_type = exposition(tally, api.histograms())
    return web.Response(body=body, headers={"Content-Type": content_type})
