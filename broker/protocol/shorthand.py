"""Telnet shorthand: ``OP arg...`` lines turned into JSON requests.

Owns: the table of positional arguments per op (protocol.md section 6), so a
person at ``nc`` can type ``PUT jobs hello`` instead of JSON. The result is a
JSON request line that goes through the one typed decoder, so the shorthand
gets exactly the same validation and error messages as JSON.
Must never: validate field values itself (the typed decoder does).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from broker.errors import BadJson, BadRequest, UnknownOp

TOO_DEEP: Final = "line is not valid JSON: it nests arrays/objects too deeply"

# op -> names of its positional arguments
_POSITIONAL: Final[dict[str, tuple[str, ...]]] = {
    "GET": ("queue", "max", "lease", "wait"),
    "NACK": ("id", "delay"),
    "TOUCH": ("id", "lease"),
    "INFO": ("id",),
    "STATS": ("queue",),
    "PEEK": ("queue", "state", "limit"),
    "QUEUES": (),
    "PURGE": ("queue",),
    "DELETE": ("queue",),
    "PAUSE": ("queue",),
    "RESUME": ("queue",),
    "CONFIG": ("queue",),
    "PING": (),
    "QUIT": (),
    "CANCEL": ("get",),
    "AUTH": ("token",),
}
_STRINGS: Final = frozenset(("queue", "id", "state", "token"))  # never read as numbers

_encode = msgspec.json.encode


def _scalar(token: str) -> Any:
    """A number if the token is one, else the string (the typed decoder judges)."""
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token


def _put(rest: str) -> bytes:
    queue, _, text = rest.partition(" ")
    if not queue or not text:
        raise BadRequest("shorthand PUT needs a queue and a body: PUT <queue> <body...>")
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        body = _encode(text)
    except RecursionError:
        raise BadJson(TOO_DEEP) from None
    else:
        body = text.encode()
    return b'{"op":"PUT","queue":' + _encode(queue) + b',"body":' + body + b"}"


def _ack(args: list[str]) -> dict[str, Any]:
    if not args:
        raise BadRequest("shorthand ACK needs at least one id: ACK <id> [<id>...]")
    if len(args) == 1:
        return {"op": "ACK", "id": args[0]}
    return {"op": "ACK", "ids": args}


def _queue_and_ids(op: str, args: list[str], ids_required: bool) -> dict[str, Any]:
    """``REDRIVE <queue> [<id>...]`` and ``REMOVE <queue> <id> [<id>...]``."""
    if not args or (ids_required and len(args) < 2):
        ids = "<id> [<id>...]" if ids_required else "[<id>...]"
        raise BadRequest(
            f"shorthand {op} needs a queue{' and ids' * ids_required}: {op} <queue> {ids}"
        )
    request: dict[str, Any] = {"op": op, "queue": args[0]}
    if len(args) > 1:
        request["ids"] = args[1:]
    return request


def to_json(line: bytes, max_batch: int | None = None) -> bytes:
    """Translate one shorthand line to a JSON request line; with ``max_batch``, a line of
    more arguments than a batch may hold is refused before they are split apart."""
    try:
        text = line.decode().strip()
    except UnicodeDecodeError as exc:
        raise BadJson(f"line is not valid UTF-8 (byte {exc.start})") from None
    op, _, rest = text.partition(" ")
    op = op.upper()
    rest = rest.strip()
    if op == "PUT":
        return _put(rest)
    if max_batch is None:
        args = rest.split()
    else:  # a queue and max_batch ids at most, and one more piece holding what is left
        args = rest.split(maxsplit=max_batch + 1)
        if len(args) > max_batch + 1:
            raise BadRequest(
                f"shorthand {op} holds more than {max_batch + 1} arguments; "
                f"the limit (max-batch) is {max_batch} ids"
            )
    if op == "ACK":
        return _encode(_ack(args))
    if op in ("REDRIVE", "REMOVE"):
        return _encode(_queue_and_ids(op, args, ids_required=op == "REMOVE"))
    names = _POSITIONAL.get(op)
    if names is None:
        raise UnknownOp(
            f"unknown op {op!r} (shorthand is 'OP arg...'; JSON requests start with '{{')"
        )
    if len(args) > len(names):
        raise BadRequest(
            f"shorthand {op} takes at most {len(names)} argument(s): "
            f"{op} {' '.join('<' + n + '>' for n in names)}"
        )
    request: dict[str, Any] = {"op": op}
    for name, arg in zip(names, args, strict=False):
        request[name] = arg if name in _STRINGS else _scalar(arg)
    return _encode(request)
