"""What travels between a node and the Functions library, and the ids clients see.

Owns: hash tags (every queue and its ``.dead`` queues share one: a short hash
of the base name, so a queue and its dead letters live in one Redis Cluster
slot), message ids (``<tag>-<hex>``: the tag routes an ACK to its slot without a
lookup), turning the library's results into typed replies, and the wording of
the errors the library reports as codes (the same words as the in-memory
backend's).
Must never: do IO or hold state.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from broker.config import Config
from broker.errors import NotFound, NotLeased, QueueFull, WonderQError
from broker.protocol import replies as rp
from broker.protocol.names import DEAD_SUFFIX
from broker.protocol.receipts import format_receipt

TAG_LEN: Final = 8
_HEX: Final = frozenset("0123456789abcdef")
NODES_KEY: Final = "wq:{nodes}"

encode = msgspec.msgpack.Encoder().encode
decode = msgspec.msgpack.Decoder().decode


def defaults(config: Config) -> list[Any]:
    """The node's defaults, as every call's head carries them to the library (``C.d``)."""
    return [
        config.lease_s * 1000,
        config.max_attempts,
        config.max_queue_length,
        config.acked_history,
        config.dedup_window_s,
        config.max_dedup_ids,
        config.forget_after_s * 1000,
    ]


def base_of(queue: str) -> str:
    """The queue whose dead letters ``queue`` holds, if any (``a.dead.dead`` -> ``a``)."""
    while queue.endswith(DEAD_SUFFIX):
        queue = queue[: -len(DEAD_SUFFIX)]
    return queue


def tag_of(queue: str) -> str:
    """The hash tag of ``queue`` (8 hex digits; the same for ``queue`` and ``queue.dead``)."""
    return hashlib.blake2b(base_of(queue).encode(), digest_size=TAG_LEN // 2).hexdigest()


def tag_key(tag: str) -> str:
    """The prefix of every key of a tag (``{tag}`` is what Redis Cluster hashes)."""
    return f"wq:{{{tag}}}"


def format_id(tag: str, seq: str) -> str:
    return f"{tag}-{seq}"


def split_id(text: str) -> tuple[str, str] | None:
    """``(tag, seq)`` of a wire id, or None if it cannot be one of ours."""
    tag, sep, seq = text.partition("-")
    if (
        not sep
        or len(tag) != TAG_LEN
        or not 0 < len(seq) <= 16
        or not _HEX.issuperset(tag)
        or not _HEX.issuperset(seq)
    ):
        return None
    return tag, seq


def failed(res: Any) -> bool:
    """True if an op's result is the library's error (``{'e', code, ...}``)."""
    return type(res) is list and res[0] == "e"


def no_message(text: str) -> NotFound:
    return NotFound(f"no message with id {text!r}")


def no_queue(queue: str) -> NotFound:
    return NotFound(f"no queue named {queue!r}")


def lease_error(status: int, text: str) -> WonderQError:
    """The error of a lease status the library reports (1 acked, 2 not leased, 3 not found)."""
    if status == 1:
        return NotLeased(f"message {text} was acked already")
    if status == 2:
        return NotLeased(f"message {text} is not leased by this connection")
    return no_message(text)


def queue_full(queue: str, held: int, limit: int, by_setting: bool) -> QueueFull:
    name = "max_length" if by_setting else "max-queue-length"
    return QueueFull(f"queue {queue!r} holds {held} messages; the limit ({name}) is {limit}")


def body(ref: int | str, bodies: list[bytes]) -> msgspec.Raw:
    """A body the library returned: an index into the call's bulk strings (1-based),
    or the text itself (a delivery stored for a node)."""
    if isinstance(ref, str):
        return msgspec.Raw(ref.encode())
    return msgspec.Raw(bodies[ref - 1])


def delivered(tag: str, item: list[Any], bodies: list[bytes]) -> rp.Delivered:
    """A message as GET delivers it, from the library's ``{id, queue, attempts, key,
    headers, body, ...}``."""
    seq, queue, attempts, key, headers, ref = item[:6]
    out = rp.Delivered(
        id=format_id(tag, seq), queue=queue, body=body(ref, bodies), attempts=attempts
    )
    if key:
        out.key = key
    if headers:
        out.headers = headers
    return out


def received(tag: str, item: list[Any], bodies: list[bytes], now_ms: float) -> rp.Received:
    """A message as RECEIVE delivers it over HTTP: ``delivered``'s, with its receipt (the
    library's nonce) and the seconds its lease has left at Redis time ``now_ms``."""
    seq, queue, attempts, key, headers, ref, nonce, due = item
    message_id = format_id(tag, seq)
    out = rp.Received(
        id=message_id,
        queue=queue,
        body=body(ref, bodies),
        attempts=attempts,
        receipt=format_receipt(message_id, int(nonce, 16)),
        lease_left=round(max(0.0, due - now_ms) / 1000, 6),
    )
    if key:
        out.key = key
    if headers:
        out.headers = headers
    return out


def receipt_owner(nonce: int) -> str:
    """The lease owner the library gave a receipt's delivery (``~`` and its nonce)."""
    return f"~{nonce:x}"


_STATES: Final = {"r": "ready", "d": "delayed", "l": "leased", "dead": "dead"}


def message_view(tag: str, item: list[Any], bodies: list[bytes]) -> rp.MessageView:
    """INFO's and PEEK's view of a message, from the library's ``view``."""
    seq, queue, state, attempts, max_attempts, priority, age_ms, ref, key, headers, left, holder = (
        item
    )
    out = rp.MessageView(
        id=format_id(tag, seq),
        queue=queue,
        state=_STATES[state],  # type: ignore[arg-type]  # one of MessageState
        attempts=attempts,
        max_attempts=max_attempts,
        priority=priority,
        age=round(age_ms / 1000, 6),
        body=body(ref, bodies),
    )
    if key:
        out.key = key
    if headers:
        out.headers = headers
    if state == "l":
        out.lease_left = round(left / 1000, 6)
        if holder:
            out.holder = str(holder).split("/", 2)[-1]
    elif state == "d":
        out.delay_left = round(left / 1000, 6)
    return out


def settings(values: list[Any]) -> rp.QueueSettings:
    """A queue's settings from the library's ``{lease, max_attempts, max_length, rate,
    dedup_window}`` (false: the node's default)."""
    lease, max_attempts, max_length, rate, window = values
    return rp.QueueSettings(
        lease=float(lease) if lease is not False else msgspec.UNSET,
        max_attempts=int(max_attempts) if max_attempts is not False else msgspec.UNSET,
        max_length=int(max_length) if max_length is not False else msgspec.UNSET,
        rate=float(rate) if rate is not False else msgspec.UNSET,
        dedup_window=float(window) if window is not False else msgspec.UNSET,
    )
