"""The sans-IO codec: request lines to typed requests.

Owns: decoding one line into a typed ``Request`` or an ``Invalid`` (the error
and the request's ``rid`` when it could be read). Bodies stay raw JSON
(``msgspec.Raw``). Replies are encoded by ``replies.py``. Given ``max_batch``,
a batch field (``ids``, ``messages``) longer than it is refused before its items
are built (``requests.batch_shape``): a line that could hold such a batch (at
least ``max_batch`` commas) is first read for its batch lengths only.
Must never: do IO, touch queue state, or raise for bad input (bad input is an
``Invalid`` result, never an exception).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from operator import attrgetter
from typing import Any, Final

import msgspec

from broker.errors import BadJson, BadRequest, LineTooLong, UnknownOp, WonderQError
from broker.protocol.bodies import body_problem, first_body_problem
from broker.protocol.framing import TOO_LONG, Frame
from broker.protocol.requests import (
    BATCH_FIELDS,
    HEADER_BYTES_MAX,
    OPS,
    QUEUE_NAME_CHARS,
    Ack,
    Configure,
    Delete,
    Get,
    Pause,
    Peek,
    Purge,
    Put,
    Receive,
    Redrive,
    Remove,
    Request,
    Resume,
    RidOnly,
    Stats,
    batch_shape,
)
from broker.protocol.shorthand import TOO_DEEP, to_json
from broker.protocol.usage import op_list

_decoder: Final = msgspec.json.Decoder(Request)
_BODY: Final = attrgetter("body")
_HEADERS: Final = attrgetter("headers")
_loose_decoder: Final = msgspec.json.Decoder()
_JSON_STARTS: Final = (b"{", b"[", b'"')
_QUEUE_RULE: Final = "queue names are 1-200 characters of letters, digits, '_', '-', '.', ':'"
_BAD_QUEUE: Final = _QUEUE_RULE + " - at `$.queue`"
_NAMES_QUEUE: Final = frozenset(
    {Put, Get, Peek, Purge, Redrive, Stats, Remove, Delete, Pause, Resume, Configure, Receive}
)


_rid_decoder: Final = msgspec.json.Decoder(RidOnly)


@lru_cache(maxsize=16)
def _shape_decoder(max_batch: int, field: str) -> msgspec.json.Decoder[msgspec.Struct]:
    return msgspec.json.Decoder(batch_shape(max_batch, field))


class Invalid:
    """A line that is not a valid request: the error to send, and its rid if known."""

    __slots__ = ("error", "rid")

    def __init__(self, error: WonderQError, rid: str | int | None = None) -> None:
        self.error = error
        self.rid = rid

    def __repr__(self) -> str:
        return f"Invalid({self.error.code}: {self.error.message!r}, rid={self.rid!r})"


def decode(frame: Frame, max_line: int, max_batch: int | None = None) -> Request | Invalid:
    """Decode one framed line (with ``max_batch``, batches are bounded first). Never raises."""
    if frame is TOO_LONG:
        return Invalid(LineTooLong(f"line is longer than the limit (max-line) of {max_line} bytes"))
    assert isinstance(frame, bytes)
    line = frame.lstrip()
    if not line.startswith(_JSON_STARTS):
        try:
            line = to_json(line, max_batch)
        except WonderQError as exc:
            return Invalid(exc)
    elif not line.isascii():
        try:
            line.decode()
        except UnicodeDecodeError as exc:
            return Invalid(BadJson(f"line is not valid UTF-8 (byte {exc.start})"))
    # a batch of n items takes 2n-1 bytes and n-1 commas at least
    if max_batch is not None and len(line) > 2 * max_batch and line.count(b",") >= max_batch:
        too_long = _batch_too_long(line, max_batch)
        if too_long is not None:
            return too_long
    try:
        request: Request = _decoder.decode(line)
    except (msgspec.DecodeError, RecursionError) as exc:  # (a ValidationError is a DecodeError)
        return _undecodable(line, exc)
    check = _CHECKS.get(type(request))  # check_shape, inlined: the hot path
    if check is not None:
        problem = check(request)
        if problem is not None:
            return Invalid(BadRequest(problem), request.rid)
    return request


def _undecodable(line: bytes, exc: Exception) -> Invalid:
    """The error for a line the typed decoder refused with ``exc``."""
    if isinstance(exc, RecursionError):  # msgspec's nesting limit (about 1000 levels)
        return Invalid(BadJson(TOO_DEEP))
    # a value of a wrong type or out of bounds; or valid JSON with a number no field can hold
    if isinstance(exc, msgspec.ValidationError) or "out of range" in str(exc):
        return _explain(line, str(exc))
    return Invalid(BadJson(f"line is not valid JSON: {exc}"))


def _batch_too_long(line: bytes, max_batch: int) -> Invalid | None:
    """The error for a batch field of more than ``max_batch`` items, found without
    building them; None when every batch fits (or the line is bad in another way,
    which the typed decoder then names)."""
    for field in BATCH_FIELDS:
        try:
            _shape_decoder(max_batch, field).decode(line)
        except msgspec.ValidationError as exc:
            if "of at most length" not in str(exc):
                continue  # not an array, say: the typed decoder names the problem
            try:
                rid = _rid_decoder.decode(line).rid
            except msgspec.DecodeError:  # a bad rid: the error goes without one
                rid = None
            return Invalid(
                BadRequest(
                    f"`{field}` holds more than {max_batch} {field}; "
                    f"the limit (max-batch) is {max_batch}"
                ),
                rid,
            )
        except (msgspec.DecodeError, RecursionError):
            return None  # not JSON: the typed decoder says where
    return None


def check_shape(request: Request) -> str | None:
    """Rules the types do not say: exactly one of two fields, a queue name's characters,
    what a body may hold, the size of a header block."""
    check = _CHECKS.get(type(request))
    return None if check is None else check(request)


# A queue name's characters: two C calls accept the commonest names (ASCII letters and
# digits) in a fifth of the time the set test takes; any other name gets the set test.


def _check_queue(request: Request) -> str | None:
    queue = request.queue  # type: ignore[union-attr]  # (every type checked here has one)
    if queue is None or (queue.isalnum() and queue.isascii()):
        return None
    return None if QUEUE_NAME_CHARS.issuperset(queue) else _BAD_QUEUE


def _check_put(put: Put) -> str | None:
    queue = put.queue
    if not (queue.isalnum() and queue.isascii()) and not QUEUE_NAME_CHARS.issuperset(queue):
        return _BAD_QUEUE
    body = put.body
    if put.messages is msgspec.UNSET:
        if body is msgspec.UNSET:
            return "PUT needs exactly one of `body` and `messages`"
        problem = body_problem(bytes(body))  # the commonest PUT: the body rule, inlined
        if problem is not None:
            return f"`body`: {problem}"
        return None if put.headers is None else _check_headers(put.headers, "")
    if body is not msgspec.UNSET:
        return "PUT needs exactly one of `body` and `messages`"
    messages = put.messages
    if not messages:
        return "`messages` must hold at least one message"
    found = first_body_problem(list(map(_BODY, messages)))  # every body, in one scan
    if found is not None:
        return f"`messages[{found[0]}].body`: {found[1]}"
    if any(map(_HEADERS, messages)):
        for i, item in enumerate(messages):
            problem = _check_headers(item.headers, f"messages[{i}].")
            if problem is not None:
                return problem
    return None


def _check_stats(stats: Stats) -> str | None:
    if stats.queue is None:
        return None
    if _check_queue(stats) is not None:
        return _BAD_QUEUE
    if stats.prefix or stats.limit is not None or stats.cursor is not None:
        return "STATS lists one `queue` or a page of queues (`prefix`, `limit`, `cursor`), not both"
    return None


def _check_ack(ack: Ack) -> str | None:
    if (ack.id is msgspec.UNSET) == (ack.ids is msgspec.UNSET):
        return "ACK needs exactly one of `id` and `ids`"
    return None


#: The check of each request type that has rules its type does not say (by type: one
#: dict lookup per request).
_CHECKS: Final[dict[type, Callable[[Any], str | None]]] = {
    **dict.fromkeys(_NAMES_QUEUE, _check_queue),
    Put: _check_put,
    Stats: _check_stats,
    Ack: _check_ack,
}


def _check_headers(headers: dict[str, str] | None, where: str) -> str | None:
    if headers:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in headers.items())
        if size > HEADER_BYTES_MAX:
            return (
                f"`{where}headers` hold {size} bytes of names and values; "
                f"the limit is {HEADER_BYTES_MAX}"
            )
    return None


def _explain(line: bytes, detail: str) -> Invalid:
    """Turn a typed-decoding failure into the most precise error, with the rid."""
    try:
        obj = _loose_decoder.decode(line)
    except msgspec.DecodeError as exc:
        if "out of range" in str(exc):
            return Invalid(BadRequest(detail))
        return Invalid(BadJson(f"line is not valid JSON: {detail}"))
    except RecursionError:  # the typed decoder failed early on a value nested too deeply
        if not line.startswith(b"{"):
            return Invalid(BadJson("a request must be a JSON object"))
        return Invalid(BadRequest(detail))
    if not isinstance(obj, dict):
        return Invalid(BadJson(f"a request must be a JSON object, not {type(obj).__name__}"))
    rid = obj.get("rid")
    if not (isinstance(rid, str) and len(rid) <= 64) and not (
        isinstance(rid, int) and not isinstance(rid, bool) and -(2**63) <= rid < 2**63
    ):
        rid = None
    op = obj.get("op")
    if isinstance(op, str) and op not in OPS:
        if op.upper() in OPS:
            return Invalid(UnknownOp(f"unknown op {op!r}; ops are upper case: {op.upper()!r}"), rid)
        return Invalid(
            UnknownOp(f"unknown op {op!r}; the ops are {op_list()} (HELP says what each does)"),
            rid,
        )
    if "matching regex" in detail:
        detail = _QUEUE_RULE + " - at " + detail.rpartition(" - at ")[2]
    return Invalid(BadRequest(detail), rid)
