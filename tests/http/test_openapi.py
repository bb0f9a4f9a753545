"""/openapi.json: a valid OpenAPI 3.1 document of exactly the route table, whose examples
match its own schemas and are taken by the server."""

from __future__ import annotations

from typing import Any

import jsonschema
import msgspec
import pytest
from openapi_spec_validator import validate

from broker.http.openapi import document
from broker.http.routes import ROUTES
from tests.conftest import one_backend
from tests.http.support import Client


@pytest.mark.parametrize("token", [False, True])
@one_backend  # starts no broker
def test_the_document_is_valid_openapi_3_1(token: bool) -> None:
    doc = msgspec.json.decode(document(ROUTES, token=token, tls=False))
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_the_document_describes_exactly_the_route_table() -> None:
    doc = msgspec.json.decode(document(ROUTES, token=False, tls=False))
    described = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert described == {(r.method, r.path) for r in ROUTES}
    assert len({r.name for r in ROUTES}) == len(ROUTES)


def examples(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """Every (where, schema, example) of the document's request bodies and responses."""
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            bodies = [("request", op.get("requestBody", {}))]
            bodies += [(status, r) for status, r in op["responses"].items()]
            for where, part in bodies:
                media = part.get("content", {}).get("application/json", {})
                if "example" in media:
                    out.append((f"{method} {path} {where}", media["schema"], media["example"]))
    return out


def test_every_example_matches_its_schema() -> None:
    doc = msgspec.json.decode(document(ROUTES, token=True, tls=False))
    found = examples(doc)
    assert len(found) > 3 * len(ROUTES)
    for where, schema, example in found:
        root = {**schema, "components": doc["components"]}
        errors = list(jsonschema.Draft202012Validator(root).iter_errors(example))
        assert not errors, (where, errors)


async def test_every_request_example_is_taken_by_the_server(api: Client) -> None:
    for route in ROUTES:
        if route.example is None:
            continue
        path = route.path.replace("{queue}", "jobs")
        got = await api.request(route.method, path, json=route.example)
        assert got.status in (200, 201), (route.name, got.json)


async def test_the_served_document_is_the_generated_one(api: Client) -> None:
    assert api.raw == msgspec.json.decode(document(ROUTES, token=False, tls=False))
