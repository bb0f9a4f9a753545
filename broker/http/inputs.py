"""HTTP input (path, query string, JSON body) to the typed requests of the protocol.

Owns: ``Shape``: which fields of a request type come from the path, which from
the query string and which from the JSON body. The path, query and body types
are generated from the request Struct's own fields (same types, bounds and
defaults), so the HTTP API validates exactly as the TCP decoder does and the
OpenAPI document shows the same bounds; a field the request does not have is
an error naming it, as over TCP. After decoding, the codec's ``check_shape``
applies the rules types cannot say (a queue name's characters, exactly one of
``body`` and ``messages``, what a body may hold).
Must never: apply a request, or accept a field the TCP protocol would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import msgspec
from msgspec import Struct

from broker.errors import BadJson, BadRequest
from broker.protocol.codec import check_shape
from broker.protocol.requests import Request

_AT: Final = " - at `$"


def struct_of(name: str, source: type[Struct], names: Sequence[str]) -> type[Struct]:
    """A Struct named ``name`` with the fields ``names`` of ``source`` (types, bounds, defaults)."""
    by_name = {f.name: f for f in msgspec.structs.fields(source)}
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field_name in names:
        f = by_name[field_name]
        if f.required:
            fields.append((f.name, f.type))
        else:
            fields.append((f.name, f.type, f.default))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True)


def decode_json(data: bytes, kind: type[Struct]) -> Struct:
    """A JSON body as ``kind``: ``bad_json`` if it is not a JSON object, ``bad_request``
    naming the field otherwise. An empty body is ``{}``."""
    try:
        return msgspec.json.decode(data or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if _AT not in text and text.startswith("Expected `object`"):
            raise BadJson(f"the request body must be a JSON object: {text}") from None
        raise BadRequest(text) from None
    except msgspec.DecodeError as exc:
        if "out of range" in str(exc):  # valid JSON, but a number no field can hold
            raise BadRequest(str(exc)) from None
        raise BadJson(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadJson("the request body nests too deeply") from None


def convert(values: Mapping[str, str], kind: type[Struct], where: str) -> Struct:
    """Text values (a query string, path parameters) as ``kind``; ``bad_request`` naming
    the parameter (``where`` says which part of the URL it was in)."""
    try:
        return msgspec.convert(dict(values), kind, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc).replace("Object contains unknown field", f"unknown {where} parameter")
        raise BadRequest(text.replace(_AT, f" - in the {where} at `$")) from None


class Shape:
    """Where each field of one request type comes from in an HTTP request."""

    __slots__ = ("body", "path", "query", "request")

    def __init__(
        self,
        request: type[Struct],
        *,
        path: Sequence[str] = (),
        query: Sequence[str] = (),
        body: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        self.request = request
        base = name or request.__name__
        self.path = struct_of(f"{base}Path", request, path) if path else None
        self.query = struct_of(f"{base}Query", request, query) if query else None
        self.body = struct_of(f"{base}Body", request, body) if body else None

    def build(self, path: Mapping[str, str], query: Mapping[str, str], data: bytes) -> Any:
        """The typed request, validated as the TCP decoder validates it."""
        values: dict[str, Any] = {}
        if self.path is not None:
            values.update(_values(convert(path, self.path, "path")))
        if self.query is not None:
            values.update(_values(convert(query, self.query, "query")))
        elif query:
            raise BadRequest(f"unknown query parameter `{next(iter(query))}`")
        if self.body is not None:
            values.update(_values(decode_json(data, self.body)))
        elif data.strip():
            raise BadRequest("this request takes no body")
        request = self.request(**values)
        problem = check_shape(cast(Request, request))  # other Structs pass unchecked
        if problem is not None:
            raise BadRequest(problem)
        return request


def _values(struct: Struct) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}
