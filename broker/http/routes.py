"""The route table: every path of the HTTP API, in one place.

Owns: ``ROUTES``, one ``Route`` per method and path: its handler, where each
field of its typed request comes from (``Shape``), its success statuses and
reply types, the error codes it may answer besides the common ones, whether
it changes the broker (``action``: refused cross-site; a read-only console
refuses it too), whether it needs the token, and its documentation with
examples. The same table builds the aiohttp router (``app.py``) and the
OpenAPI document (``openapi.py``), so the two cannot disagree.
Must never: hold handler logic (``endpoints.py``) or IO.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from broker.errors import ErrorCode
from broker.http import endpoints as ep
from broker.http.inputs import Shape
from broker.http.longpoll import receive
from broker.protocol import replies as rp
from broker.protocol import requests as rq

if TYPE_CHECKING:
    from broker.http.app import HttpApi

Handler = Callable[["HttpApi", "Route", web.Request], Awaitable[web.StreamResponse]]
#: a success body: a reply Struct, one of several, none, or a content type of plain text
Body = type | tuple[type, ...] | str | None

_PUT_FIELDS: Final = (
    "body",
    "messages",
    "key",
    "delay",
    "priority",
    "max_attempts",
    "dedup",
    "headers",
)
_ID: Final = "18f3c2a1b0c4d"
_RECEIPT: Final = "18f3c2a1b0c4d.2f41a3c9b7e1"
_SETTINGS: Final[Mapping[str, Any]] = {
    "lease": 30.0,
    "max_attempts": 5,
    "max_length": None,
    "rate": None,
    "dedup_window": 300.0,
}
_QUEUE_FIGURES: Final[Mapping[str, Any]] = {
    "ready": 1,
    "delayed": 0,
    "leased": 0,
    "dead": 0,
    "waiting_consumers": 0,
    "bytes": 23,
    "oldest_ready_age": 1.5,
    "put": 1,
    "acked": 0,
    "nacked": 0,
    "expired": 0,
    "released_on_disconnect": 0,
    "dead_lettered": 0,
    "redriven": 0,
    "purged": 0,
    "paused": False,
    "settings": {},
}


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the OpenAPI operationId
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    shape: Shape | None = None
    #: success status -> reply Struct (None: no body; a string: that content type, text)
    ok: Mapping[int, Body] = field(default_factory=lambda: {200: rp.Ok})
    replies_described: Mapping[int, str] = field(default_factory=dict)
    reply_examples: Mapping[int, Any] = field(default_factory=dict)
    example: Any = None  # of the request body
    body_required: bool = False
    errors: tuple[ErrorCode, ...] = ()  # besides the common ones (openapi.COMMON_ERRORS)
    action: bool = False  # changes the broker
    public: bool = False  # needs no token
    backend: bool = True  # runs requests (refused while starting or stopping)
    description: str = ""


ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "health",
        "GET",
        "/healthz",
        ep.health,
        "Is the broker serving?",
        "server",
        replies_described={200: "serving"},
        reply_examples={200: {"ok": True}},
        errors=(ErrorCode.UNAVAILABLE, ErrorCode.SHUTTING_DOWN),
        public=True,
        backend=False,
        description="503 while the broker starts (opens or replays its data) or stops. "
        "Needs no token.",
    ),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        ep.openapi,
        "This document",
        "server",
        ok={200: "application/json"},
        backend=False,
    ),
    Route(
        "metrics",
        "GET",
        "/metrics",
        ep.metrics,
        "Prometheus metrics",
        "server",
        ok={200: "text/plain"},
        description="The server's figures, totals per state and event over every queue, "
        "and per-queue series for the --metrics-queues deepest queues only.",
    ),
    Route(
        "put",
        "POST",
        "/v1/queues/{queue}/messages",
        ep.put,
        "Add one message, or a batch (PUT)",
        "messages",
        Shape(rq.Put, path=("queue",), body=_PUT_FIELDS),
        ok={201: (rp.PutReply, rp.PutManyReply), 200: (rp.PutReply, rp.PutManyReply)},
        replies_described={
            201: "stored: `{id}` for one message (with a Location header), "
            "`{ids, duplicates}` for a batch",
            200: "nothing stored: every message was a duplicate within the dedup window "
            '(`"duplicate": true` for one message)',
        },
        reply_examples={201: {"ok": True, "id": _ID}},
        example={"body": {"task": "resize", "image": 42}, "key": "acct-7"},
        body_required=True,
        errors=(ErrorCode.QUEUE_FULL, ErrorCode.MEMORY_LIMIT),
        action=True,
        description='Exactly one of `body` and `messages` (a batch: `[{"body":...}, ...]`, '
        "all or nothing).",
    ),
    Route(
        "receive",
        "POST",
        "/v1/queues/{queue}/receive",
        receive,
        "Lease messages, each to a receipt of its own (GET)",
        "receipts",
        Shape(rq.Receive, path=("queue",), body=("max", "lease", "wait")),
        ok={200: rp.ReceiveReply},
        reply_examples={
            200: {
                "ok": True,
                "messages": [
                    {
                        "id": _ID,
                        "queue": "jobs",
                        "body": {"task": "resize"},
                        "attempts": 1,
                        "receipt": _RECEIPT,
                        "lease_left": 30.0,
                    }
                ],
            }
        },
        example={"max": 10, "lease": 30, "wait": 20},
        action=True,
        description="Up to `max` messages (`[]` when none came), each leased to a receipt "
        "until `lease` seconds from now. With `wait` (at most 20 s) and nothing to deliver, "
        "the request waits for a message. A client that closes its connection while it "
        "waits leases nothing: what was already taken for it is given back, its attempt "
        "not counted.",
    ),
    Route(
        "ack",
        "POST",
        "/v1/ack",
        ep.op,
        "Delete received messages, by receipt (ACK)",
        "receipts",
        Shape(rq.AckReceipts, body=("receipts",)),
        ok={200: rp.AckReceiptsReply},
        reply_examples={200: {"ok": True, "acked": 1, "not_leased": [], "not_found": []}},
        example={"receipts": [_RECEIPT]},
        body_required=True,
        action=True,
        description="Each receipt on its own: acked, or listed under `not_leased` (stale: the "
        "message was acked, released or delivered again since) or `not_found`.",
    ),
    Route(
        "nack",
        "POST",
        "/v1/nack",
        ep.op,
        "Give received messages back, by receipt (NACK)",
        "receipts",
        Shape(rq.NackReceipts, body=("receipts", "delay")),
        ok={200: rp.NackReceiptsReply},
        reply_examples={
            200: {"ok": True, "nacked": 1, "not_leased": [], "not_found": [], "dead": []}
        },
        example={"receipts": [_RECEIPT], "delay": 5},
        body_required=True,
        action=True,
        description="Ready again now (or after `delay` seconds); `dead` lists the receipts "
        "whose message used its last attempt and went to `<queue>.dead`.",
    ),
    Route(
        "touch",
        "POST",
        "/v1/touch",
        ep.op,
        "Extend leases, by receipt (TOUCH)",
        "receipts",
        Shape(rq.TouchReceipts, body=("receipts", "lease")),
        ok={200: rp.TouchReceiptsReply},
        reply_examples={200: {"ok": True, "touched": 1, "not_leased": [], "not_found": []}},
        example={"receipts": [_RECEIPT], "lease": 120},
        body_required=True,
        action=True,
    ),
    Route(
        "delete_message",
        "DELETE",
        "/v1/messages/{id}",
        ep.delete_message,
        "Delete one received message by its receipt (ACK)",
        "receipts",
        Shape(ep.MessageReceipt, path=("id",), query=("receipt",)),
        ok={204: None},
        replies_described={204: "acked"},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.NOT_LEASED),
        action=True,
        description="409 `not_leased` if the receipt is stale (the message was acked, released "
        "or delivered again since), 404 `not_found` if there is no such message.",
    ),
    Route(
        "info",
        "GET",
        "/v1/messages/{id}",
        ep.op,
        "One message, without changing it (INFO)",
        "messages",
        Shape(rq.Info, path=("id",)),
        ok={200: rp.InfoReply},
        reply_examples={
            200: {
                "ok": True,
                "message": {
                    "id": _ID,
                    "queue": "jobs",
                    "state": "ready",
                    "attempts": 0,
                    "max_attempts": 5,
                    "priority": 0,
                    "age": 1.5,
                    "body": {"task": "resize"},
                },
            }
        },
        errors=(ErrorCode.NOT_FOUND,),
    ),
    Route(
        "queues",
        "GET",
        "/v1/queues",
        ep.queue_list,
        "Queues with their STATS figures, by name, a page at a time",
        "queues",
        Shape(ep.QueuePage, query=("prefix", "after", "limit")),
        ok={200: ep.QueueList},
        reply_examples={200: {"ok": True, "queues": {"jobs": _QUEUE_FIGURES}}},
        description="Queues in name order, those starting with `prefix`, after `after`; "
        "`next` (present when more follow) is the `after` of the next page.",
    ),
    Route(
        "queue",
        "GET",
        "/v1/queues/{queue}",
        ep.queue,
        "One queue's STATS figures",
        "queues",
        Shape(rq.Stats, path=("queue",), name="Queue"),
        ok={200: ep.QueueReply},
        reply_examples={200: {"ok": True, "queue": {**_QUEUE_FIGURES, "settings": {"rate": 10.0}}}},
        errors=(ErrorCode.NOT_FOUND,),
        description="With `paused` and `settings`: the settings that differ from the "
        "server's defaults (all of them: `GET .../settings`).",
    ),
    Route(
        "peek",
        "GET",
        "/v1/queues/{queue}/messages",
        ep.op,
        "A queue's messages, without leasing them (PEEK)",
        "queues",
        Shape(rq.Peek, path=("queue",), query=("state", "limit")),
        ok={200: rp.PeekReply},
        reply_examples={200: {"ok": True, "messages": [], "total": 0}},
        errors=(ErrorCode.NOT_FOUND,),
    ),
    Route(
        "purge",
        "POST",
        "/v1/queues/{queue}/purge",
        ep.op,
        "Delete a queue's ready and delayed messages (PURGE)",
        "queues",
        Shape(rq.Purge, path=("queue",)),
        ok={200: rp.PurgeReply},
        reply_examples={200: {"ok": True, "purged": 3}},
        action=True,
    ),
    Route(
        "redrive",
        "POST",
        "/v1/queues/{queue}/redrive",
        ep.op,
        "Move dead letters back to the queue (REDRIVE)",
        "queues",
        Shape(rq.Redrive, path=("queue",), body=("ids",)),
        ok={200: rp.RedriveReply},
        reply_examples={200: {"ok": True, "redriven": 1, "leased": [], "not_found": []}},
        example={"ids": [_ID]},
        action=True,
        description="Every ready message of `<queue>.dead`, or only those named in `ids` "
        "(then the reply lists those that did not move: `leased` by a consumer of "
        "`<queue>.dead`, or `not_found` in it), attempts reset.",
    ),
    Route(
        "remove",
        "POST",
        "/v1/queues/{queue}/remove",
        ep.op,
        "Delete chosen ready or delayed messages (REMOVE)",
        "queues",
        Shape(rq.Remove, path=("queue",), body=("ids",)),
        ok={200: rp.RemoveReply},
        reply_examples={200: {"ok": True, "removed": 1, "leased": [], "not_found": []}},
        example={"ids": [_ID]},
        body_required=True,
        errors=(ErrorCode.NOT_FOUND,),
        action=True,
        description="Each id in turn: removed, or listed under `leased` (a consumer holds it: "
        "it is never removed this way) or `not_found`. A dead letter is removed by naming "
        "`<queue>.dead`. 404 if the queue does not exist.",
    ),
    Route(
        "pause",
        "POST",
        "/v1/queues/{queue}/pause",
        ep.op,
        "Stop delivering a queue's messages (PAUSE)",
        "queues",
        Shape(rq.Pause, path=("queue",)),
        reply_examples={200: {"ok": True}},
        action=True,
        description="The queue still takes messages and keeps its leases; receives get "
        "nothing (or wait) until it resumes. Creates the queue if needed.",
    ),
    Route(
        "resume",
        "POST",
        "/v1/queues/{queue}/resume",
        ep.op,
        "Deliver a paused queue's messages again (RESUME)",
        "queues",
        Shape(rq.Resume, path=("queue",)),
        reply_examples={200: {"ok": True}},
        errors=(ErrorCode.NOT_FOUND,),
        action=True,
        description="Waiting receives are served at once. 404 if the queue does not exist.",
    ),
    Route(
        "delete_queue",
        "DELETE",
        "/v1/queues/{queue}",
        ep.op,
        "Delete a queue and every message in it (DELETE)",
        "queues",
        Shape(rq.Delete, path=("queue",), query=("dead",)),
        ok={200: rp.DeleteReply},
        reply_examples={200: {"ok": True, "deleted": 3}},
        errors=(ErrorCode.NOT_FOUND,),
        action=True,
        description="Ready, delayed and leased messages alike (`deleted` counts them), with "
        "the queue's settings, paused flag and dedup ids; waiting receives get `[]`. "
        "`<queue>.dead` stays unless `dead=true`. 404 if the queue does not exist.",
    ),
    Route(
        "settings",
        "GET",
        "/v1/queues/{queue}/settings",
        ep.op,
        "A queue's settings (CONFIG)",
        "queues",
        Shape(rq.Configure, path=("queue",), name="ReadSettings"),
        ok={200: rp.ConfigReply},
        reply_examples={200: {"ok": True, "settings": _SETTINGS}},
        errors=(ErrorCode.NOT_FOUND,),
        description="The settings the queue works with (`null`: no limit).",
    ),
    Route(
        "configure",
        "PATCH",
        "/v1/queues/{queue}/settings",
        ep.op,
        "Change a queue's settings (CONFIG)",
        "queues",
        Shape(rq.Configure, path=("queue",), body=rq.SETTING_FIELDS),
        ok={200: rp.ConfigReply},
        reply_examples={200: {"ok": True, "settings": {**_SETTINGS, "rate": 10.0}}},
        example={"rate": 10, "lease": None},
        errors=(ErrorCode.NOT_FOUND,),
        action=True,
        description="A field with a value sets it, `null` resets it to the server's default, "
        "a field left out stays. Creates the queue if needed; an empty body only reads "
        "(404 if the queue does not exist). Replies with every setting after the change.",
    ),
    Route(
        "stats",
        "GET",
        "/v1/stats",
        ep.op,
        "The server's figures and a page of queues' (STATS)",
        "server",
        Shape(rq.Stats, query=("connections", "prefix", "limit", "cursor")),
        ok={200: rp.StatsReply},
        reply_examples={
            200: {"ok": True, "server": {"version": "1.0.0"}, "queues": {"jobs": _QUEUE_FIGURES}}
        },
    ),
)

#: what ``--metrics-port`` serves
METRICS_ROUTES: Final = tuple(r for r in ROUTES if r.name in ("health", "metrics"))
