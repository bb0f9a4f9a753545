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

from collections.abc import Iterable
from typing import Any, Final, TypeVar

import msgspec

from .errors import ProtocolViolation
from .protocol import Reply, Request
from .results import AckResult, Envelope, MessageInfo, PeekResult, Stats, WireMessage
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


def queues() -> Request:
    return {"op": "QUEUES"}


def purge(queue: str) -> Request:
    return {"op": "PURGE", "queue": queue}


def redrive(queue: str) -> Request:
    return {"op": "REDRIVE", "queue": queue}


def ping() -> Request:
    return {"op": "PING"}


def auth(token: str) -> Request:
    return {"op": "AUTH", "token": token}


def _field(reply: Reply, name: str, kind: type[T]) -> T:
    try:
        return msgspec.convert(reply[name], kind)
    except (KeyError, msgspec.ValidationError) as exc:
        raise ProtocolViolation(f"reply field {name!r} is missing or malformed: {exc}") from None


def parse_id(reply: Reply) -> str:
    return _field(reply, "id", str)


def parse_ids(reply: Reply) -> list[str]:
    return _field(reply, "ids", list[str])


def parse_messages(reply: Reply) -> list[WireMessage]:
    return _field(reply, "messages", list[WireMessage])


def parse_ack_many(reply: Reply) -> AckResult:
    try:
        return msgspec.convert(reply, AckResult)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"batch ACK reply is malformed: {exc}") from None


def parse_dead(reply: Reply) -> bool:
    """NACK: True if the message was moved to its dead-letter queue."""
    return reply.get("dead") is True


def parse_info(reply: Reply) -> MessageInfo:
    return _field(reply, "message", MessageInfo)


def parse_stats(reply: Reply) -> Stats:
    try:
        return msgspec.convert(reply, Stats)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"STATS reply is malformed: {exc}") from None


def parse_peek(reply: Reply) -> PeekResult:
    try:
        return msgspec.convert(reply, PeekResult)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"PEEK reply is malformed: {exc}") from None


def parse_queues(reply: Reply) -> list[str]:
    return _field(reply, "queues", list[str])


def parse_count(reply: Reply, name: str) -> int:
    return _field(reply, name, int)
