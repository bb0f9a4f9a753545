"""Typed replies: one msgspec Struct per reply shape, and their encoding.

Owns: the shape of every reply of protocol.md section 4 (field names and their
order on the wire, the message states), ``encode_reply``: a reply to the bytes
of one JSON line (without the newline or the ``rid``, which the connection
splices in), and ``reply_lines``: a batch's replies as its lines, rids spliced
in. Backends return these; the TCP connection and the HTTP API encode them;
the HTTP API's OpenAPI schemas are generated from them.
Optional fields are ``UNSET`` when absent (never ``null``), so they are omitted.
Every Struct is ``gc=False``: replies hold no cycles and are built per request.
Must never: import the engine or a backend, do IO, or hold state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, Protocol

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from broker.errors import WonderQError
from broker.protocol.usage import USAGE

MessageState = Literal["ready", "delayed", "leased", "dead", "acked"]


class _Reply(Struct, kw_only=True, gc=False):
    """Every success reply starts with ``"ok": true``."""

    ok: bool = True


class Ok(_Reply, kw_only=True):
    """``{"ok":true}``: PING, QUIT, TOUCH, a single ACK, AUTH."""


OK: Final = Ok()


class ErrorReply(Struct, kw_only=True, gc=False):
    ok: bool = False
    error: str
    message: str


class PutReply(_Reply, kw_only=True):
    id: str
    duplicate: bool | UnsetType = UNSET  # true: a dedup id seen in the window; nothing stored


class PutManyReply(_Reply, kw_only=True):
    ids: list[str]
    duplicates: list[int]  # indexes of the entries that stored nothing (dedup)


class Delivered(Struct, kw_only=True, gc=False):
    """A message as GET delivers it."""

    id: str
    queue: str
    body: Raw
    attempts: int
    key: str | UnsetType = UNSET
    headers: dict[str, str] | UnsetType = UNSET


class GetReply(_Reply, kw_only=True):
    messages: list[Delivered]


EMPTY_GET: Final = GetReply(messages=[])


class AckManyReply(_Reply, kw_only=True):
    acked: int
    not_leased: list[str]
    not_found: list[str]


class NackReply(_Reply, kw_only=True):
    dead: bool | UnsetType = UNSET  # true when the NACK dead-lettered the message


class MessageView(Struct, kw_only=True, gc=False):
    """What INFO and PEEK show of a message (an acked one has id, queue and state only)."""

    id: str
    queue: str
    state: MessageState
    attempts: int | UnsetType = UNSET
    max_attempts: int | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    age: float | UnsetType = UNSET
    body: Raw | UnsetType = UNSET
    key: str | UnsetType = UNSET
    headers: dict[str, str] | UnsetType = UNSET
    lease_left: float | UnsetType = UNSET
    delay_left: float | UnsetType = UNSET
    holder: str | UnsetType = UNSET  # PEEK: the address of the connection holding the lease


class InfoReply(_Reply, kw_only=True):
    message: MessageView


class PeekReply(_Reply, kw_only=True):
    messages: list[MessageView]
    total: int


class QueueSettings(Struct, kw_only=True, gc=False, frozen=True):
    """A queue's settings: in CONFIG's reply every field (``null``: no limit); in
    STATS only those that differ from the server's defaults."""

    lease: float | UnsetType = UNSET
    max_attempts: int | UnsetType = UNSET
    max_length: int | UnsetType | None = UNSET
    rate: float | UnsetType | None = UNSET
    dedup_window: float | UnsetType = UNSET


class QueueStats(Struct, kw_only=True, gc=False):
    """One queue's figures in STATS (its totals count since the broker started)."""

    ready: int
    delayed: int
    leased: int
    dead: int
    waiting_consumers: int
    bytes: int
    oldest_ready_age: float | None
    put: int = 0
    acked: int = 0
    nacked: int = 0
    expired: int = 0
    released_on_disconnect: int = 0
    dead_lettered: int = 0
    redriven: int = 0
    purged: int = 0
    paused: bool = False
    settings: QueueSettings = QueueSettings()


class ConnectionView(Struct, kw_only=True, gc=False):
    """One open connection in ``STATS {"connections": true}``."""

    address: str
    leases: int
    waiting: int
    requests: int


class StatsReply(_Reply, kw_only=True):
    server: dict[str, Any]
    queues: dict[str, QueueStats]
    connections: list[ConnectionView] | UnsetType = UNSET
    next: str | UnsetType = UNSET  # more queues follow: the cursor of the next page


class QueuesReply(_Reply, kw_only=True):
    queues: list[str]
    next: str | UnsetType = UNSET  # more queues follow: the cursor of the next page


class PurgeReply(_Reply, kw_only=True):
    purged: int


class RedriveReply(_Reply, kw_only=True):
    redriven: int
    # with ``ids``: the named messages that did not move (leased by a consumer of the
    # dead-letter queue, or not in it)
    leased: list[str] | UnsetType = UNSET
    not_found: list[str] | UnsetType = UNSET


class RemoveReply(_Reply, kw_only=True):
    removed: int
    leased: list[str]
    not_found: list[str]


class DeleteReply(_Reply, kw_only=True):
    deleted: int


class ConfigReply(_Reply, kw_only=True):
    settings: QueueSettings


class CancelReply(_Reply, kw_only=True):
    cancelled: int


class HelpReply(_Reply, kw_only=True):
    ops: dict[str, str]  # op -> its usage line and what it does, in protocol.md order


#: HELP's reply: the same for everyone, built once from the table of usage lines
HELP: Final = HelpReply(ops={op: usage.help_line(op) for op, usage in USAGE.items()})


class Received(Delivered, kw_only=True):
    """A message as the HTTP API's receive delivers it: leased to ``receipt``."""

    receipt: str
    lease_left: float


class ReceiveReply(_Reply, kw_only=True):
    messages: list[Received]


class AckReceiptsReply(_Reply, kw_only=True):
    acked: int
    not_leased: list[str]  # stale receipts: the message was released or delivered again since
    not_found: list[str]


class NackReceiptsReply(_Reply, kw_only=True):
    nacked: int
    not_leased: list[str]
    not_found: list[str]
    dead: list[str]  # receipts whose message the NACK dead-lettered (counted in nacked)


class TouchReceiptsReply(_Reply, kw_only=True):
    touched: int
    not_leased: list[str]
    not_found: list[str]


class ReleaseReceiptsReply(_Reply, kw_only=True):
    released: int


Reply = (
    Ok
    | ErrorReply
    | PutReply
    | PutManyReply
    | GetReply
    | AckManyReply
    | NackReply
    | InfoReply
    | PeekReply
    | StatsReply
    | QueuesReply
    | PurgeReply
    | RedriveReply
    | RemoveReply
    | DeleteReply
    | ConfigReply
    | CancelReply
    | HelpReply
    | ReceiveReply
    | AckReceiptsReply
    | NackReceiptsReply
    | TouchReceiptsReply
    | ReleaseReceiptsReply
)


class HasRid(Protocol):
    """A request, as far as its reply line needs it."""

    @property
    def rid(self) -> str | int | None: ...


_encoder: Final = msgspec.json.Encoder()
_OK_BYTES: Final = b'{"ok":true}'


def encode_reply(reply: Reply) -> bytes:
    """One reply as JSON, without the newline (the connection adds ``rid`` and ``\\n``)."""
    if reply is OK:
        return _OK_BYTES
    return _encoder.encode(reply)


def reply_lines(requests: Iterable[HasRid], replies: Iterable[Reply | None]) -> bytes:
    """The reply lines of a batch, each request's reply with its rid (None: no reply
    now, a waiting GET's comes later), in order, each ending in a newline. One loop
    with ``encode_reply`` inlined: a pipelined batch runs it for every request."""
    out: list[bytes] = []
    append = out.append
    encode = _encoder.encode
    ok, ok_bytes = OK, _OK_BYTES
    for request, reply in zip(requests, replies, strict=True):
        if reply is None:
            continue
        encoded = ok_bytes if reply is ok else encode(reply)
        rid = request.rid
        append(encoded if rid is None else with_rid(encoded, rid))
    if not out:
        return b""
    append(b"")  # the last line's newline
    return b"\n".join(out)


def reply_line(encoded: bytes, rid: str | int | None) -> bytes:
    """One reply line: ``encoded`` (one JSON object) with the request's rid, and the newline."""
    if rid is None:
        return encoded + b"\n"
    return with_rid(encoded, rid) + b"\n"


def with_rid(encoded: bytes, rid: str | int) -> bytes:
    """``encoded`` (one JSON object) with ``"rid"`` as its last member."""
    rid_json = b"%d" % rid if type(rid) is int else _encoder.encode(rid)
    return encoded[:-1] + b',"rid":' + rid_json + b"}"


def error_reply(error: WonderQError) -> ErrorReply:
    """A failure reply (the connection adds the request's rid when it writes it)."""
    return ErrorReply(error=str(error.code), message=error.message)


def to_builtins(reply: Reply) -> dict[str, Any]:
    """A reply as plain dicts and lists (bodies decoded), as a client would read it."""
    out: dict[str, Any] = msgspec.json.decode(encode_reply(reply))
    return out
