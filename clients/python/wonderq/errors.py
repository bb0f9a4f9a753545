"""Client exceptions: one class per wire error code, plus the client's own failures.

Owns: the exception hierarchy users catch and ``error_class()``, the one place
that maps a wire code to its class. Must never: import anything else from the
package, or raise anything that is not a ``WonderQError``.

The wire classes have the same names as the broker's (``broker.errors``), so
a traceback reads the same on both sides; a test keeps the two code sets equal.
"""

from __future__ import annotations

import errno
import re
import socket
from enum import StrEnum
from typing import Any, Final


class ErrorCode(StrEnum):
    """Wire error codes (the ``"error"`` field of a failure reply, protocol.md section 5)."""

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
    """Base of every exception the client raises.

    ``message`` is the server's sentence for wire errors. ``code`` is the wire
    code: fixed per subclass, the raw string for a code this client does not
    know, and ``None`` for failures that happen on the client side.
    """

    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadJson(WonderQError):
    """The server could not read the line as a UTF-8 JSON object."""

    code = ErrorCode.BAD_JSON


class BadRequest(WonderQError):
    """A field is missing, unknown, of the wrong type, or out of its bounds."""

    code = ErrorCode.BAD_REQUEST


class UnknownOp(WonderQError):
    """The ``op`` names no operation (an older server, or a typo)."""

    code = ErrorCode.UNKNOWN_OP


class NotFound(WonderQError):
    """No such message (never existed, or acked and forgotten), or no such queue."""

    code = ErrorCode.NOT_FOUND


class NotLeased(WonderQError):
    """The message exists, but this connection does not hold its lease.

    The lease ran out, the message was released, another consumer holds it, or
    the connection that leased it was lost (a reconnect drops every lease).
    """

    code = ErrorCode.NOT_LEASED


class QueueFull(WonderQError):
    """The queue already holds the server's ``--max-queue-length`` messages."""

    code = ErrorCode.QUEUE_FULL


class TooLarge(WonderQError):
    """A body is larger than the server's ``--max-body``."""

    code = ErrorCode.TOO_LARGE


class LineTooLong(WonderQError):
    """A request line was longer than the server's ``--max-line``."""

    code = ErrorCode.LINE_TOO_LONG


class MemoryLimit(WonderQError):
    """The server's memory budget for bodies is spent; nothing was stored."""

    code = ErrorCode.MEMORY_LIMIT


class Unauthorized(WonderQError):
    """The connection has not authenticated, or the token is wrong."""

    code = ErrorCode.UNAUTHORIZED


class Unavailable(WonderQError):
    """The broker's store is unreachable; the request may or may not have been applied."""

    code = ErrorCode.UNAVAILABLE


class ShuttingDown(WonderQError):
    """The server is stopping and takes no new work."""

    code = ErrorCode.SHUTTING_DOWN


class ConnectionLost(WonderQError, ConnectionError):
    """The connection closed before the reply came (not a wire code).

    Raised on every call that was waiting when the connection went away, and on
    calls made after it (unless the client reconnects). A request that was sent
    may or may not have been applied. Every lease the connection held is
    released by the broker. Also a builtin ``ConnectionError``.
    """


class ConnectFailed(ConnectionLost):
    """No connection could be made: refused (no broker at that address), timed out, or
    the name did not resolve (not a wire code).

    A ``ConnectionLost`` (and so a ``ConnectionError``) too, so code that catches
    either also catches this. The message says what to check; for a refused
    connection, how to start a broker there. ``__cause__`` is the OS error.
    """


class ProtocolViolation(WonderQError):
    """The server sent something protocol.md does not allow (not a wire code)."""


class RequestTimeout(WonderQError, TimeoutError):
    """No reply came within the client's ``request_timeout`` (not a wire code).

    The request may still be applied; its late reply is discarded (and
    messages a late ``GET`` reply delivers are released at once).
    """


WIRE_ERRORS: Final[dict[ErrorCode, type[WonderQError]]] = {
    ErrorCode.BAD_JSON: BadJson,
    ErrorCode.BAD_REQUEST: BadRequest,
    ErrorCode.UNKNOWN_OP: UnknownOp,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.NOT_LEASED: NotLeased,
    ErrorCode.QUEUE_FULL: QueueFull,
    ErrorCode.TOO_LARGE: TooLarge,
    ErrorCode.LINE_TOO_LONG: LineTooLong,
    ErrorCode.MEMORY_LIMIT: MemoryLimit,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.SHUTTING_DOWN: ShuttingDown,
}
"""Every wire code and its class; ``error_class`` is the only reader."""

_BY_STRING: Final[dict[str, type[WonderQError]]] = {str(k): v for k, v in WIRE_ERRORS.items()}


def connect_failed(host: str, port: int, exc: OSError, timeout_s: float | None) -> ConnectFailed:
    """The ``ConnectFailed`` for an attempt to reach ``host:port`` that ended in ``exc``.

    ``exc`` is what the socket raised (a ``TimeoutError`` after ``timeout_s``).
    """
    where = f"{host}:{port}"
    if isinstance(exc, TimeoutError):
        limit = "" if timeout_s is None else f" within {timeout_s:g} s"
        return ConnectFailed(
            f"cannot connect to {where}: no answer{limit}; is that address reachable "
            "and is a WonderQ broker listening there?"
        )
    if _refused(exc):
        start = f"`wonderq serve --port {port}`"
        if host not in _LOCAL_HOSTS:
            start = f"`wonderq serve --host {host} --port {port}` on that machine"
        return ConnectFailed(
            f"cannot connect to {where}: connection refused: no broker is running at that "
            f"address (start one with {start})"
        )
    if isinstance(exc, socket.gaierror):
        return ConnectFailed(f"cannot connect to {where}: cannot resolve host {host!r} ({exc})")
    return ConnectFailed(f"cannot connect to {where}: {exc}")


_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", ""})


def _refused(exc: OSError) -> bool:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return True
    # asyncio reports several refused addresses (e.g. "localhost": ::1 and 127.0.0.1)
    # as one plain OSError("Multiple exceptions: [Errno 111] ..., [Errno 111] ...").
    codes = re.findall(r"\[Errno (\d+)\]", str(exc))
    return bool(codes) and all(int(code) == errno.ECONNREFUSED for code in codes)


def error_class(code: str) -> type[WonderQError]:
    """Return the exception class for a wire error code (``WonderQError`` if unknown)."""
    return _BY_STRING.get(code, WonderQError)


def error_from_reply(reply: dict[str, Any]) -> WonderQError:
    """Build the exception for a failure reply ``{"ok":false,"error":..,"message":..}``."""
    code = reply.get("error")
    message = reply.get("message")
    if not isinstance(message, str):
        message = "(the server gave no message)"
    if not isinstance(code, str):
        return ProtocolViolation(f"failure reply without an error code: {message}")
    cls = error_class(code)
    if cls is WonderQError:
        return WonderQError(message, code=code)
    return cls(message)
