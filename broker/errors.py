"""The one error hierarchy of the broker.

Owns: every error code that can appear on the wire, and the exception class
for each. Every failure the broker reports is one of these; each class maps
one to one to a wire code (``ErrorCode``) and to a client exception class of
the same name in ``wonderq.errors``.

Must never: import anything from the rest of the broker (every layer imports
this module, so it sits at the bottom).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """Wire error codes (the ``"error"`` field of a failure reply)."""

    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    NOT_FOUND = "not_found"
    NOT_LEASED = "not_leased"
    QUEUE_FULL = "queue_full"
    TOO_LARGE = "too_large"
    LINE_TOO_LONG = "line_too_long"
    MEMORY_LIMIT = "memory_limit"
    UNAUTHORIZED = "unauthorized"
    UNAVAILABLE = "unavailable"
    SHUTTING_DOWN = "shutting_down"


class WonderQError(Exception):
    """Base of every broker error; ``code`` is the wire code."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadJson(WonderQError):
    """The line is not a UTF-8 JSON object."""

    code = ErrorCode.BAD_JSON


class BadRequest(WonderQError):
    """A field is missing, of the wrong type, or out of its bounds."""

    code = ErrorCode.BAD_REQUEST


class UnknownOp(WonderQError):
    """The ``op`` names no operation."""

    code = ErrorCode.UNKNOWN_OP


class NotFound(WonderQError):
    """No such message (never existed, or acked and forgotten)."""

    code = ErrorCode.NOT_FOUND


class NotLeased(WonderQError):
    """The message exists but this connection does not hold its lease."""

    code = ErrorCode.NOT_LEASED


class QueueFull(WonderQError):
    """The queue holds ``--max-queue-length`` messages already."""

    code = ErrorCode.QUEUE_FULL


class TooLarge(WonderQError):
    """A message body is larger than ``--max-body``."""

    code = ErrorCode.TOO_LARGE


class LineTooLong(WonderQError):
    """A request line is longer than ``--max-line``."""

    code = ErrorCode.LINE_TOO_LONG


class MemoryLimit(WonderQError):
    """What the broker holds would pass ``--max-memory``, or a new queue ``--max-queues``."""

    code = ErrorCode.MEMORY_LIMIT


class Unauthorized(WonderQError):
    """The connection has not authenticated, or the token is wrong."""

    code = ErrorCode.UNAUTHORIZED


class Unavailable(WonderQError):
    """The backing store cannot be reached; the request may or may not have been applied."""

    code = ErrorCode.UNAVAILABLE


class ShuttingDown(WonderQError):
    """The server is shutting down and takes no new work."""

    code = ErrorCode.SHUTTING_DOWN


ERROR_CLASSES: dict[ErrorCode, type[WonderQError]] = {
    cls.code: cls
    for cls in (
        BadJson,
        BadRequest,
        UnknownOp,
        NotFound,
        NotLeased,
        QueueFull,
        TooLarge,
        LineTooLong,
        MemoryLimit,
        Unauthorized,
        Unavailable,
        ShuttingDown,
    )
}
assert set(ERROR_CLASSES) == set(ErrorCode), "every wire code needs exactly one class"
