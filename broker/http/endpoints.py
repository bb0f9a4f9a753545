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

from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from broker.errors import BadRequest, NotFound, NotLeased
from broker.http.app import OPENAPI, read_body
from broker.http.errors import JSON, error_response
from broker.http.metrics import exposition
from broker.protocol import replies as rp
from broker.protocol import requests as rq
from broker.protocol.receipts import message_id_of

if TYPE_CHECKING:
    from broker.http.app import HttpApi
    from broker.http.routes import Route

QUEUE_PAGE_MAX: Final = 1000


class QueuePage(Struct, kw_only=True, forbid_unknown_fields=True):
    """A page of ``GET /v1/queues``: names in order, after ``after``, starting with ``prefix``."""

    prefix: Annotated[str, Meta(max_length=rq.QUEUE_NAME_MAX)] = ""
    after: rq.QueueName | None = None
    limit: Annotated[int, Meta(ge=1, le=QUEUE_PAGE_MAX)] = QUEUE_PAGE_MAX


class MessageReceipt(Struct, kw_only=True, forbid_unknown_fields=True):
    """``DELETE /v1/messages/{id}?receipt=R``: ACK one message by its current receipt."""

    id: rq.MessageId
    receipt: rq.ReceiptText


class QueueList(Struct, kw_only=True, gc=False):
    """Each queue's STATS figures, by name; ``next``: the ``after`` of the next page."""

    ok: bool = True
    queues: dict[str, rp.QueueStats]
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
    stats = await api.call(rq.Stats(prefix=page.prefix, limit=page.limit, cursor=page.after))
    assert isinstance(stats, rp.StatsReply)
    return respond(QueueList(queues=stats.queues, next=stats.next))


async def every_queue(api: HttpApi) -> rp.StatsReply:
    """STATS of every queue, a page per call (the loop runs other work between pages)."""
    stats = await api.call(rq.Stats(limit=rq.LIST_LIMIT_MAX))
    assert isinstance(stats, rp.StatsReply)
    cursor = stats.next
    while isinstance(cursor, str):
        page = await api.call(rq.Stats(limit=rq.LIST_LIMIT_MAX, cursor=cursor))
        assert isinstance(page, rp.StatsReply)
        stats.queues.update(page.queues)
        stats.server, cursor = page.server, page.next
    stats.next = UNSET
    return stats


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
    stats = await every_queue(api)
    body, content_type = exposition(stats, api.histograms(), api.config.metrics_queues)
    return web.Response(body=body, headers={"Content-Type": content_type})
