"""The OpenAPI 3.1 document of the HTTP API, generated from the route table.

Owns: turning routes (``routes.Route``) into the document served at
``/openapi.json``: each route's path, query and body parameters with the
schemas msgspec generates from the request Structs they are made of (so the
document states the same bounds the decoder enforces), its success replies
with the schemas of the reply Structs the backend returns, its error statuses
(``errors.STATUS``, with the one error body), and an example of each request
and reply. Nothing here is written by hand but the prose and the examples.
Must never: describe a route that is not in the table it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec

from broker import __version__
from broker.errors import ErrorCode
from broker.http.errors import JSON, RETRY_AFTER_S, STATUS
from broker.protocol.replies import ErrorReply

if TYPE_CHECKING:
    from broker.http.routes import Body, Route

REF: Final = "#/components/schemas/{name}"

DESCRIPTION: Final = (
    "WonderQ's HTTP API: every operation of the TCP protocol (protocol.md) as JSON over "
    "HTTP, with the same field names, bounds and error codes. A message received over "
    "HTTP is leased to a receipt (a string returned with it, new on every delivery) "
    "instead of a connection; ACK, NACK and TOUCH name receipts. Every success body has "
    '`"ok": true`; every failure body is `{"ok": false, "error": CODE, "message": TEXT}`. '
    "A request a browser sends (with an Origin or Sec-Fetch-Site header) must name the "
    "broker in its Host by an IP address, localhost, or a name given to serve --http-hosts: "
    "another gets 403 `unauthorized` (a guard against DNS rebinding)."
)

READ_ONLY: Final = (
    " The web console of this server is read-only (serve --console-read-only): an action "
    "sent by a browser (with an Origin or Sec-Fetch-Site header) gets 403 `unauthorized`; "
    "scripts and clients are not affected."
)
HOST_EXAMPLE: Final = (
    "a browser reached this broker as 'evil.example', a name it does not serve (a guard "
    "against DNS rebinding): add it with serve --http-hosts evil.example"
)
READ_ONLY_EXAMPLE: Final = (
    "the console is read-only (serve --console-read-only): a browser may not change the "
    "broker; scripts and clients may"
)

#: codes every route but the public ones may answer
COMMON_ERRORS: Final = (
    ErrorCode.BAD_REQUEST,
    ErrorCode.BAD_JSON,
    ErrorCode.TOO_LARGE,
    ErrorCode.UNAVAILABLE,
    ErrorCode.SHUTTING_DOWN,
)


#: an example message of each error code, for the document
_EXAMPLES: Final[Mapping[str, str]] = {
    "bad_json": "the request body is not valid JSON: malformed number",
    "bad_request": "Expected `int` >= 1 - at `$.max`",
    "unknown_op": "unknown op",
    "not_found": "no message with id 'ffff'",
    "not_leased": "receipt '18f3c2a1b0c4d.2a' is stale: the message was delivered again since",
    "queue_full": "queue 'jobs' holds 1000 messages; the limit (max_length) is 1000",
    "too_large": "the request body is 2000000 bytes; the limit (max-line) is 1048576",
    "line_too_long": "line is longer than the limit (max-line) of 1048576 bytes",
    "memory_limit": "the broker holds about 999800 bytes (message bodies and what it keeps "
    "with them) and this PUT needs about 300; the limit (max-memory) is 1000000",
    "unauthorized": "this server needs a token: send 'Authorization: Bearer <token>'",
    "unavailable": "the broker is starting (opening or replaying its data); try again shortly",
    "shutting_down": "the server is shutting down; the request was not applied",
}
assert set(_EXAMPLES) == {code.value for code in ErrorCode}


def document(routes: Sequence[Route], *, token: bool, tls: bool, read_only: bool = False) -> bytes:
    """The OpenAPI document of ``routes`` as JSON (``token``: a bearer token is required;
    ``read_only``: the console is read-only, so a browser's actions get 403)."""
    types: list[Any] = [ErrorReply]
    for route in routes:
        for reply in route.ok.values():
            types.extend(_types(reply))
        if route.shape is not None:
            types.extend(t for t in (route.shape.path, route.shape.query, route.shape.body) if t)
    _, schemas = msgspec.json.schema_components(types, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, schemas, token, read_only)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    for route in routes:  # path and query Structs become parameters, not components
        if route.shape is not None:
            for part in (route.shape.path, route.shape.query):
                if part is not None:
                    schemas.pop(part.__name__, None)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "WonderQ", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    if tls:
        doc["info"]["description"] += " This server speaks HTTPS only."
    if read_only:
        doc["info"]["description"] += READ_ONLY
    return msgspec.json.encode(doc)


def _operation(
    route: Route, schemas: Mapping[str, Any], token: bool, read_only: bool
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        op["description"] = route.description
    shape = route.shape
    parameters: list[dict[str, Any]] = []
    if shape is not None:
        if shape.path is not None:
            parameters += _parameters(schemas[shape.path.__name__], "path")
        if shape.query is not None:
            parameters += _parameters(schemas[shape.query.__name__], "query")
        if shape.body is not None:
            body: dict[str, Any] = {"schema": {"$ref": REF.format(name=shape.body.__name__)}}
            if route.example is not None:
                body["example"] = route.example
            op["requestBody"] = {"required": route.body_required, "content": {JSON: body}}
    if parameters:
        op["parameters"] = parameters
    op["responses"] = _responses(route, token)
    if not route.public:  # a browser naming another host; a read-only console's action
        example = READ_ONLY_EXAMPLE if read_only and route.action else HOST_EXAMPLE
        op["responses"]["403"] = _failure(403, [ErrorCode.UNAUTHORIZED.value], example)
    if route.public:
        op["security"] = []
    return op


def _parameters(schema: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": field,
        }
        for name, field in schema["properties"].items()
    ]


def _responses(route: Route, token: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, reply in route.ok.items():
        out[str(status)] = _success(route, status, reply)
    codes: list[ErrorCode] = list(route.errors)
    if not route.public:
        codes += COMMON_ERRORS
        if token or route.action:  # an action is refused from another web site
            codes.append(ErrorCode.UNAUTHORIZED)
    for status, names in sorted(_by_status(codes).items()):
        out[str(status)] = _failure(status, names)
    return out


def _types(reply: Body) -> tuple[type, ...]:
    if isinstance(reply, type):
        return (reply,)
    return reply if isinstance(reply, tuple) else ()


def _success(route: Route, status: int, reply: Body) -> dict[str, Any]:
    described = route.replies_described.get(status, "success")
    if reply is None:
        return {"description": described}
    if isinstance(reply, str):  # a content type with a plain string body (metrics)
        return {"description": described, "content": {reply: {"schema": {"type": "string"}}}}
    refs = [{"$ref": REF.format(name=t.__name__)} for t in _types(reply)]
    media: dict[str, Any] = {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}
    example = route.reply_examples.get(status)
    if example is not None:
        media["example"] = example
    return {"description": described, "content": {JSON: media}}


def _by_status(codes: Iterable[ErrorCode]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for code in codes:
        names = out.setdefault(STATUS[code], [])
        if code.value not in names:
            names.append(code.value)
    return out


def _failure(status: int, codes: list[str], message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": "error: " + ", ".join(f"`{c}`" for c in codes),
        "content": {
            JSON: {
                "schema": {"$ref": REF.format(name="ErrorReply")},
                "example": {
                    "ok": False,
                    "error": codes[0],
                    "message": message or _EXAMPLES[codes[0]],
                },
            }
        },
    }
    if status in RETRY_AFTER_S:
        out["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        }
    return out
