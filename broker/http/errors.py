"""HTTP statuses of the broker's error codes, and the one error body.

Owns: the table from each wire error code (``broker.errors.ErrorCode``) to its
HTTP status, every code exactly one; the error response
``{"ok":false,"error":CODE,"message":TEXT}`` (with ``Retry-After`` when a
retry later may succeed); and turning aiohttp's own refusals (no such path, a
method the path does not take, a body over the limit) into that body.
Must never: decide what is an error (the codec, the backend and the engine
do), or answer an error in any other shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

from broker.errors import (
    ERROR_CLASSES,
    BadRequest,
    ErrorCode,
    NotFound,
    TooLarge,
    WonderQError,
)
from broker.protocol.replies import ErrorReply, encode_reply, error_reply

JSON: Final = "application/json"

#: the HTTP status of each wire error code
STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_OP: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_LEASED: 409,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.LINE_TOO_LONG: 413,
    ErrorCode.MEMORY_LIMIT: 503,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.SHUTTING_DOWN: 503,
}
assert set(STATUS) == set(ErrorCode), "every wire code needs exactly one HTTP status"

#: seconds a client should wait before retrying, for the statuses where a retry may succeed
RETRY_AFTER_S: Final[Mapping[int, int]] = {429: 1, 503: 1}


def error_response(error: WonderQError, headers: Mapping[str, str] | None = None) -> web.Response:
    """The one error body, with the status of its code."""
    status = STATUS[error.code]
    out = dict(headers or {})
    if status in RETRY_AFTER_S:
        out["Retry-After"] = str(RETRY_AFTER_S[status])
    if status == 401:
        out["WWW-Authenticate"] = 'Bearer realm="wonderq"'
    return web.Response(
        body=encode_reply(error_reply(error)), status=status, content_type=JSON, headers=out
    )


def forbidden(error: WonderQError) -> web.Response:
    """``error`` refused with 403: the request was understood and authorized, and this
    server does not take it (a read-only console's action)."""
    response = error_response(error)
    response.headers.popall("WWW-Authenticate", None)
    response.set_status(403)
    return response


def raise_for(reply: object) -> None:
    """Raise the error a backend's failure reply stands for (nothing for a success)."""
    if isinstance(reply, ErrorReply):
        raise ERROR_CLASSES[ErrorCode(reply.error)](reply.message)


def from_aiohttp(exc: web.HTTPException, max_body: int) -> web.Response:
    """aiohttp's own refusal (routing, method, body size) in the broker's error body."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(
            TooLarge(f"the request body is larger than the limit (max-line) of {max_body} bytes")
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error_response(
            BadRequest(f"{exc.method} is not allowed on this path; it takes {allowed}"),
            {"Allow": allowed},
        )
        response.set_status(405)
        return response
    if isinstance(exc, web.HTTPNotFound):
        return error_response(NotFound("no such path; the API is described at /openapi.json"))
    response = error_response(BadRequest(exc.reason))
    response.set_status(exc.status)
    return response
