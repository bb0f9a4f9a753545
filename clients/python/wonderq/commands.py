"""Pure request builders and reply parsers, one pair per operation.

Owns: the field names and result shapes of protocol.md section 4, so the
asyncio and blocking clients only move requests and replies. Must never: do
IO, keep state, or check bounds the server checks (the server is the one
judge of a request; its ``bad_request`` message names the field at fault).
What it does check is what the server never sees: a value JSON cannot carry
(``values.check_json``), which msgspec would otherwise convert on the way out.
Optional arguments left as ``None`` are not sent, so the server's defaults apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Final, TypeVar

import msgspec

from .errors import ProtocolViolation
from .protocol import Reply, Request
from .results import (
    AckResult,
    Envelope,
    MessageInfo,
    PeekResult,
    PutManyResult,
    PutResult,
    QueueSettings,
    RedriveResult,
    RemoveResult,
    Stats,
    WireMessage,
)
from .values import check_json

T = TypeVar("T")


def _fields(request: Request, **optional: object) -> Request:
    for name, value in optional.items():
        if value is not None:
            request[name] = value
    return request


def put(
    queue: str,
    body: Any,
    *,
    key: str | None = None,
    delay: float | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    dedup: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Request:
    """A single PUT. Its options are ``Envelope``'s fields (a test keeps the two lists equal).

    Raises ``TypeError``/``ValueError`` (``values.check_json``) for a body or an
    option that JSON cannot carry, naming it.
    """
    check_json(body, "body")
    return _checked_fields(
        {"op": "PUT", "queue": queue, "body": body},
        "",
        key=key,
        delay=delay,
        priority=priority,
        max_attempts=max_attempts,
        dedup=dedup,
        headers=headers,
    )


def put_many(queue: str, bodies: Iterable[Any]) -> Request:
    """A batch PUT: plain bodies, or ``Envelope``s for per-message options (``bodies[i].delay``)."""
    messages: list[Request] = []
    for index, item in enumerate(bodies):
        if not isinstance(item, Envelope):
            check_json(item, f"bodies[{index}]")
            messages.append({"body": item})
            continue
        where = f"bodies[{index}]."
        check_json(item.body, f"{where}body")
        options = {name: getattr(item, name) for name in ENVELOPE_OPTIONS}
        messages.append(_checked_fields({"body": item.body}, where, **options))
    return {"op": "PUT", "queue": queue, "messages": messages}


ENVELOPE_OPTIONS: Final = tuple(name for name in Envelope.__struct_fields__ if name != "body")
"""The per-message options of PUT: ``Envelope``'s fields besides ``body`` (the one table)."""


def _checked_fields(request: Request, where: str, **optional: object) -> Request:
    for name, value in optional.items():
        if value is not None:
            if isinstance(value, Mapping) and not isinstance(value, dict):
                value = dict(value)  # headers given as any mapping
            check_json(value, where + name)
            request[name] = value
    return request


def get(queue: str, *, max: int = 1, lease: float | None = None, wait: float = 0) -> Request:
    request: Request = {"op": "GET", "queue": queue}
    if max != 1:
        request["max"] = max
    if wait:
        request["wait"] = wait
    return _fields(request, lease=lease)


def ack(msg_id: str) -> Request:
    return {"op": "ACK", "id": msg_id}


def ack_many(ids: Iterable[str]) -> Request:
    return {"op": "ACK", "ids": list(ids)}


def nack(msg_id: str, delay: float | None = None) -> Request:
    return _fields({"op": "NACK", "id": msg_id}, delay=delay)


def touch(msg_id: str, lease: float | None = None) -> Request:
    return _fields({"op": "TOUCH", "id": msg_id}, lease=lease)


def info(msg_id: str) -> Request:
    return {"op": "INFO", "id": msg_id}


def stats(queue: str | None = None) -> Request:
    return _fields({"op": "STATS"}, queue=queue)


def peek(queue: str, *, state: str | None = None, limit: int | None = None) -> Request:
    return _fields({"op": "PEEK", "queue": queue}, state=state, limit=limit)


class Listing:
    """The pages of one QUEUES listing: send ``request()``, give its reply to ``take()``,
    until ``done``; ``names`` then holds every queue name, in order."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix
        self.names: list[str] = []
        self.cursor: str | None = None
        self.done = False

    def request(self) -> Request:
        return _fields({"op": "QUEUES"}, prefix=self.prefix, cursor=self.cursor)

    def take(self, reply: Reply) -> None:
        self.names += _field(reply, "queues", list[str])
        cursor = reply.get("next")
        if cursor is not None and (not isinstance(cursor, str) or cursor == self.cursor):
            raise ProtocolViolation(f"QUEUES reply has a bad next page: {cursor!r}")
        self.cursor = cursor
        self.done = cursor is None


def purge(queue: str) -> Request:
    return {"op": "PURGE", "queue": queue}


def redrive(queue: str, ids: Iterable[str] | None = None) -> Request:
    request: Request = {"op": "REDRIVE", "queue": queue}
    if ids is not None:
        request["ids"] = list(ids)
    return request


def remove(queue: str, ids: Iterable[str]) -> Request:
    return {"op": "REMOVE", "queue": queue, "ids": list(ids)}


def delete(queue: str, *, dead: bool = False) -> Request:
    request: Request = {"op": "DELETE", "queue": queue}
    if dead:
        request["dead"] = True
    return request


def pause(queue: str) -> Request:
    return {"op": "PAUSE", "queue": queue}


def resume(queue: str) -> Request:
    return {"op": "RESUME", "queue": queue}


class Keep(Enum):
    """The type of ``KEEP``: a ``config`` setting left as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""A ``config`` argument's default: the setting is not changed (``None`` resets it)."""

SETTINGS: Final = tuple(QueueSettings.__struct_fields__)
"""The per-queue settings ``config`` reads and changes (a test keeps them equal to its arguments)."""


def config(
    queue: str,
    *,
    lease: float | Keep | None = KEEP,
    max_attempts: int | Keep | None = KEEP,
    max_length: int | Keep | None = KEEP,
    rate: float | Keep | None = KEEP,
    dedup_window: float | Keep | None = KEEP,
) -> Request:
    """CONFIG: each setting not ``KEEP`` is sent (``None`` as ``null``, which resets it)."""
    request: Request = {"op": "CONFIG", "queue": queue}
    changes = {
        "lease": lease,
        "max_attempts": max_attempts,
        "max_length": max_length,
        "rate": rate,
        "dedup_window": dedup_window,
    }
    for name, value in changes.items():
        if value is not KEEP:
            check_json(value, name)
            request[name] = value
    return request


def ping() -> Request:
    return {"op": "PING"}


def auth(token: str) -> Request:
    return {"op": "AUTH", "token": token}


def _field(reply: Reply, name: str, kind: type[T]) -> T:
    try:
        return msgspec.convert(reply[name], kind)
    except (KeyError, msgspec.ValidationError) as exc:
        raise ProtocolViolation(f"reply field {name!r} is missing or malformed: {exc}") from None


def _whole(reply: Reply, kind: type[T], op: str) -> T:
    try:
        return msgspec.convert(reply, kind)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"{op} reply is malformed: {exc}") from None


def parse_put(reply: Reply) -> PutResult:
    return _whole(reply, PutResult, "PUT")


def parse_put_many(reply: Reply) -> PutManyResult:
    if "duplicates" not in reply:  # a broker from before idempotent PUT
        return PutManyResult(ids=_field(reply, "ids", list[str]), duplicates=[])
    return _whole(reply, PutManyResult, "PUT")


def parse_remove(reply: Reply) -> RemoveResult:
    return _whole(reply, RemoveResult, "REMOVE")


def parse_redrive(reply: Reply) -> RedriveResult:
    return _whole(reply, RedriveResult, "REDRIVE")


def parse_settings(reply: Reply) -> QueueSettings:
    return _field(reply, "settings", QueueSettings)


def parse_messages(reply: Reply) -> list[WireMessage]:
    return _field(reply, "messages", list[WireMessage])


def parse_ack_many(reply: Reply) -> AckResult:
    return _whole(reply, AckResult, "batch ACK")


def parse_dead(reply: Reply) -> bool:
    """NACK: True if the message was moved to its dead-letter queue."""
    return reply.get("dead") is True


def parse_info(reply: Reply) -> MessageInfo:
    return _field(reply, "message", MessageInfo)


def parse_stats(reply: Reply) -> Stats:
    return _whole(reply, Stats, "STATS")


def parse_peek(reply: Reply) -> PeekResult:
    return _whole(reply, PeekResult, "PEEK")


def parse_count(reply: Reply, name: str) -> int:
    return _field(reply, name, int)
