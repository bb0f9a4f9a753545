"""Typed requests: one msgspec Struct per op, with every field's type and bounds.

Owns: the shape of every request of protocol.md section 4 and the static bounds
of every field (config-dependent limits such as max-body are the engine's).
Decoding into these types is the validation: a failure names the field.
``body`` stays raw JSON bytes (``msgspec.Raw``): the broker never decodes a
message body, it stores and returns it verbatim.
Every Struct is ``gc=False`` (not tracked by the cyclic collector): a request holds
strings, numbers, raw bodies and lists or dicts of them, never a cycle, and a batch
PUT decodes one per message.
Must never: import the engine or do IO.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Final, Literal

from msgspec import UNSET, Meta, Raw, Struct, UnsetType, defstruct

QUEUE_NAME_MAX: Final = 200
KEY_MAX: Final = 256
RID_MAX: Final = 64
LEASE_MAX_S: Final = 43_200.0
DELAY_MAX_S: Final = 31_536_000.0
WAIT_MAX_S: Final = 3_600.0
PRIORITY_MIN: Final = -(2**31)
PRIORITY_MAX: Final = 2**31 - 1
MAX_ATTEMPTS_MAX: Final = 1_000_000
ID_MAX: Final = 64
TOKEN_MAX: Final = 4096
PEEK_LIMIT_MAX: Final = 1000
PEEK_LIMIT_DEFAULT: Final = 10
DEDUP_MAX: Final = 128
HEADERS_MAX: Final = 64  # entries; their names and values hold at most HEADER_BYTES_MAX
HEADER_BYTES_MAX: Final = 8192
HEADER_NAME_MAX: Final = 256
RATE_MAX: Final = 1_000_000.0  # deliveries per second
DEDUP_WINDOW_MAX_S: Final = 86_400.0
MAX_LENGTH_MAX: Final = 2**53
LIST_LIMIT_MAX: Final = 1000  # queues in one STATS or QUEUES reply
LIST_LIMIT_DEFAULT: Final = 1000

#: The characters of a queue name. The codec checks them after decoding (a set test
#: costs about a third of msgspec's regex ``pattern`` on this hot path); the length
#: bounds stay on the type.
QUEUE_NAME_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
)
QueueName = Annotated[str, Meta(min_length=1, max_length=QUEUE_NAME_MAX)]
Key = Annotated[str, Meta(min_length=1, max_length=KEY_MAX)]
MessageId = Annotated[str, Meta(min_length=1, max_length=ID_MAX)]
Rid = Annotated[str, Meta(max_length=RID_MAX)] | Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Lease = Annotated[float, Meta(gt=0, le=LEASE_MAX_S)]
Delay = Annotated[float, Meta(ge=0, le=DELAY_MAX_S)]
Wait = Annotated[float, Meta(ge=0, le=WAIT_MAX_S)]
Priority = Annotated[int, Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
MaxAttempts = Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS_MAX)]
Count = Annotated[int, Meta(ge=1)]
DedupId = Annotated[str, Meta(min_length=1, max_length=DEDUP_MAX)]
HeaderName = Annotated[str, Meta(min_length=1, max_length=HEADER_NAME_MAX)]
#: at most HEADERS_MAX entries here; their total size (HEADER_BYTES_MAX) is the codec's check
Headers = Annotated[dict[HeaderName, str], Meta(max_length=HEADERS_MAX)]
Rate = Annotated[float, Meta(gt=0, le=RATE_MAX)]
DedupWindow = Annotated[float, Meta(gt=0, le=DEDUP_WINDOW_MAX_S)]
MaxLength = Annotated[int, Meta(ge=1, le=MAX_LENGTH_MAX)]


class _Request(Struct, tag_field="op", forbid_unknown_fields=True, kw_only=True, gc=False):
    rid: Rid | None = None


class PutItem(Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    body: Raw
    key: Key | None = None
    delay: Delay = 0.0
    priority: Priority = 0
    max_attempts: MaxAttempts | None = None
    dedup: DedupId | None = None
    headers: Headers | None = None


class Put(_Request, tag="PUT"):
    queue: QueueName
    body: Raw | UnsetType = UNSET
    messages: Annotated[list[PutItem], Meta(min_length=1)] | UnsetType = UNSET
    key: Key | None = None
    delay: Delay = 0.0
    priority: Priority = 0
    max_attempts: MaxAttempts | None = None
    dedup: DedupId | None = None
    headers: Headers | None = None


class Get(_Request, tag="GET"):
    queue: QueueName
    max: Count = 1
    lease: Lease | None = None
    wait: Wait = 0.0


class Ack(_Request, tag="ACK"):
    id: MessageId | UnsetType = UNSET
    ids: Annotated[list[MessageId], Meta(min_length=1)] | UnsetType = UNSET


class Nack(_Request, tag="NACK"):
    id: MessageId
    delay: Delay = 0.0


class Touch(_Request, tag="TOUCH"):
    id: MessageId
    lease: Lease | None = None


class Info(_Request, tag="INFO"):
    id: MessageId


#: how many queues one STATS or QUEUES reply lists (None: LIST_LIMIT_DEFAULT)
ListLimit = Annotated[int, Meta(ge=1, le=LIST_LIMIT_MAX)]
#: the start of the queue names to list ("" lists every queue)
Prefix = Annotated[str, Meta(max_length=QUEUE_NAME_MAX)]
#: where a listing goes on: the ``next`` of the reply before (opaque to clients)
Cursor = Annotated[str, Meta(min_length=1, max_length=QUEUE_NAME_MAX)]


class Stats(_Request, tag="STATS"):
    """The server's figures and one queue's (``queue``), or a page of queues' (the rest)."""

    queue: QueueName | None = None
    prefix: Prefix = ""
    limit: ListLimit | None = None
    cursor: Cursor | None = None
    connections: bool = False


PeekState = Literal["ready", "delayed", "leased", "dead"]


class Peek(_Request, tag="PEEK"):
    queue: QueueName
    state: PeekState | None = None
    limit: Annotated[int, Meta(ge=1, le=PEEK_LIMIT_MAX)] = PEEK_LIMIT_DEFAULT


class Queues(_Request, tag="QUEUES"):
    """A page of queue names, in order: those starting with ``prefix``, after ``cursor``."""

    prefix: Prefix = ""
    limit: ListLimit | None = None
    cursor: Cursor | None = None


class Purge(_Request, tag="PURGE"):
    queue: QueueName


class Redrive(_Request, tag="REDRIVE"):
    """Move messages of ``<queue>.dead`` back to ``queue``: all of them, or the ``ids``."""

    queue: QueueName
    ids: Annotated[list[MessageId], Meta(min_length=1)] | None = None


class Remove(_Request, tag="REMOVE"):
    """Delete chosen ready or delayed messages of a queue (never a leased one)."""

    queue: QueueName
    ids: Annotated[list[MessageId], Meta(min_length=1)]


class Delete(_Request, tag="DELETE"):
    """Delete a queue, every message in it, and its settings (its ``.dead`` queue if ``dead``)."""

    queue: QueueName
    dead: bool = False


class Pause(_Request, tag="PAUSE"):
    queue: QueueName


class Resume(_Request, tag="RESUME"):
    queue: QueueName


class Configure(_Request, tag="CONFIG"):
    """Read a queue's settings, or change some: a value sets a field, ``null`` resets it
    to the server default, an absent field stays as it is."""

    queue: QueueName
    lease: Lease | UnsetType | None = UNSET
    max_attempts: MaxAttempts | UnsetType | None = UNSET
    max_length: MaxLength | UnsetType | None = UNSET
    rate: Rate | UnsetType | None = UNSET
    dedup_window: DedupWindow | UnsetType | None = UNSET

    def changes(self) -> bool:
        """True when the request sets or resets a field (False: it only reads)."""
        return any(getattr(self, f) is not UNSET for f in SETTING_FIELDS)


#: the per-queue settings CONFIG reads and writes, in reply order
SETTING_FIELDS: Final = ("lease", "max_attempts", "max_length", "rate", "dedup_window")


class Ping(_Request, tag="PING"):
    pass


class Quit(_Request, tag="QUIT"):
    pass


class Help(_Request, tag="HELP"):
    """The list of ops, one line each (``usage.USAGE``)."""


class Auth(_Request, tag="AUTH"):
    """Answered by the server's auth gate, never by a backend."""

    token: Annotated[str, Meta(max_length=TOKEN_MAX)]


class Cancel(_Request, tag="CANCEL"):
    """End this connection's waiting GET whose ``rid`` is ``get`` (it replies at once, empty)."""

    get: Rid


class RidOnly(Struct):
    """A request's rid alone (every other field skipped unread): the rid of a line the
    codec refused, when it can be read."""

    rid: Rid | None = None


Request = (
    Put
    | Get
    | Ack
    | Nack
    | Touch
    | Info
    | Stats
    | Peek
    | Queues
    | Purge
    | Redrive
    | Remove
    | Delete
    | Pause
    | Resume
    | Configure
    | Ping
    | Quit
    | Cancel
    | Help
    | Auth
)

REQUEST_TYPES: Final[tuple[type[_Request], ...]] = (
    Put,
    Get,
    Ack,
    Nack,
    Touch,
    Info,
    Stats,
    Peek,
    Queues,
    Purge,
    Redrive,
    Remove,
    Delete,
    Pause,
    Resume,
    Configure,
    Ping,
    Quit,
    Cancel,
    Help,
    Auth,
)
OPS: Final[frozenset[str]] = frozenset(str(t.__struct_config__.tag) for t in REQUEST_TYPES)


#: the request fields that hold a batch, at most ``--max-batch`` items each
BATCH_FIELDS: Final = ("ids", "messages")  # ids first: the cheaper items to send


@lru_cache(maxsize=16)
def batch_shape(max_batch: int, field: str) -> type[Struct]:
    """A request's batch ``field`` alone, as an array of at most ``max_batch`` items.

    Decoding a line into this type checks the length of that field without
    building its items: the array decodes into an ``array_like`` Struct of
    ``max_batch`` optional raw fields, and msgspec stops at the first item past
    them ("Expected `array` of at most length N"). Every other field and every
    item is skipped or kept raw, unread. Built once per field and value of
    ``--max-batch`` (msgspec checks a list's ``max_length`` only after building
    every item: 8 ms for 100,000 ids in a 1 MiB line, where this takes 0.02 ms).
    """
    items = defstruct(
        f"{field.capitalize()}Items",
        [(f"i{n}", Raw | UnsetType, UNSET) for n in range(max_batch)],
        array_like=True,
        forbid_unknown_fields=True,
    )
    return defstruct(f"{field.capitalize()}Shape", [(field, items | None, None)])


# ------------------------------------------------------------------ receipts
# The HTTP API's own requests: a message received over HTTP is leased to a
# receipt (``broker/protocol/receipts.py``), not to a connection. None of these
# is in ``Request``, so the TCP decoder can never produce one: over TCP, leases
# stay connection-scoped, and a connection cannot name a receipt.

RECEIVE_WAIT_MAX_S: Final = 20.0
RECEIPT_MAX: Final = 128
ReceiptText = Annotated[str, Meta(min_length=1, max_length=RECEIPT_MAX)]
Receipts = Annotated[list[ReceiptText], Meta(min_length=1)]


class Receive(_Request, tag="RECEIVE"):
    """A GET whose messages are each leased to a receipt of its own."""

    queue: QueueName
    max: Count = 1
    lease: Lease | None = None
    wait: Annotated[float, Meta(ge=0, le=RECEIVE_WAIT_MAX_S)] = 0.0


class AckReceipts(_Request, tag="ACK_RECEIPTS"):
    """ACK the messages whose current receipts these are (each handled on its own)."""

    receipts: Receipts


class NackReceipts(_Request, tag="NACK_RECEIPTS"):
    """NACK the messages whose current receipts these are, ready again after ``delay``."""

    receipts: Receipts
    delay: Delay = 0.0


class TouchReceipts(_Request, tag="TOUCH_RECEIPTS"):
    """Extend the leases of these receipts to ``lease`` seconds from now."""

    receipts: Receipts
    lease: Lease | None = None


class ReleaseReceipts(_Request, tag="RELEASE_RECEIPTS"):
    """Give back messages whose delivery never reached the client, their attempt not counted."""

    receipts: Receipts


ReceiptRequest = Receive | AckReceipts | NackReceipts | TouchReceipts | ReleaseReceipts

#: Every request a backend executes: the TCP protocol's, and the HTTP API's own.
AnyRequest = Request | ReceiptRequest
