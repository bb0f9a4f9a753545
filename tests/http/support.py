"""A broker with its HTTP API on free ports, and an HTTP client that checks every
response against the server's own ``/openapi.json`` (openapi-core for documented
operations; the error body's schema, with jsonschema, for a path or method the
document cannot describe: an unknown path, a wrong method)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import jsonschema
import msgspec
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse

from broker.config import Config
from broker.http import HttpApi
from broker.protocol.requests import Receive, ReleaseReceipts
from broker.server import Server
from tests.conftest import backend_for

TIMEOUT_S = 10.0
_specs: dict[bytes, OpenAPI] = {}


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class Client:
    """An aiohttp session bound to one broker; every response is validated."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, spec: OpenAPI, raw: dict[str, Any]
    ) -> None:
        self.session = session
        self.base = base
        self.spec = spec
        self.raw = raw
        self.validated = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        body = msgspec.json.encode(json) if json is not None else data
        async with asyncio.timeout(TIMEOUT_S):
            async with self.session.request(
                method, self.base + path, data=body, params=params, headers=headers
            ) as resp:
                got = Response(resp.status, dict(resp.headers), await resp.read())
        self.check(method, path, params, got)
        return got

    def check(
        self, method: str, path: str, params: Mapping[str, str] | None, got: Response
    ) -> None:
        """Validate ``got`` against the document (raises if it does not match)."""
        content_type = got.headers.get("Content-Type", "").split(";")[0]
        request = MockRequest(self.base, method, path, args=dict(params or {}))
        response = MockResponse(
            got.body, got.status, headers=dict(got.headers), content_type=content_type
        )
        try:
            self.spec.validate_response(request, response)
        except (PathNotFound, OperationNotFound):
            assert got.status in (401, 404, 405), (method, path, got.status)
            error_schema = {**self.raw["components"]["schemas"]["ErrorReply"]}
            jsonschema.validate(got.json, error_schema)
        self.validated += 1

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json=json, **kw)


def spec_of(raw_bytes: bytes) -> OpenAPI:
    spec = _specs.get(raw_bytes)
    if spec is None:
        spec = _specs[raw_bytes] = OpenAPI.from_dict(msgspec.json.decode(raw_bytes))
    return spec


@asynccontextmanager
async def client_for(
    base: str,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    document: bytes | None = None,
) -> AsyncIterator[Client]:
    """A validating client; the document is the server's ``/openapi.json`` unless given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else False)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        if document is None:
            async with asyncio.timeout(TIMEOUT_S), session.get(base + "/openapi.json") as resp:
                assert resp.status == 200, await resp.text()
                document = await resp.read()
        yield Client(session, base, spec_of(document), msgspec.json.decode(document))


class Spy:
    """A backend seen through: events when a receive starts waiting and when its owner closes.

    Tests await these instead of sleeping until the server has got that far (on
    Redis, when its replies come).
    """

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.waiting = asyncio.Event()  # a RECEIVE now waits
        self.closed = asyncio.Event()  # an owner other than the API's own was closed
        self.released = asyncio.Event()  # a RELEASE_RECEIPTS was answered

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def execute(self, owner: object, requests: Sequence[Any]) -> Any:
        result = self._backend.execute(owner, requests)
        if isinstance(result, list):
            self._seen(requests, result)
        else:  # a backend that answers later (Redis): when it does

            def answered(done: Any) -> None:
                if not done.cancelled() and done.exception() is None:
                    self._seen(requests, done.result())

            result.add_done_callback(answered)
        return result

    def _seen(self, requests: Sequence[Any], replies: Sequence[Any]) -> None:
        if any(
            type(r) is Receive and reply is None for r, reply in zip(requests, replies, strict=True)
        ):
            self.waiting.set()
        if any(type(r) is ReleaseReceipts for r in requests):
            self.released.set()

    def close(self, owner: object) -> None:
        self._backend.close(owner)
        self.closed.set()


@dataclass
class Broker:
    server: Server
    api: HttpApi
    http_port: int
    base: str
    spy: Spy

    @property
    def tcp_port(self) -> int:
        return self.server.port


@asynccontextmanager
async def running_broker(
    *, ssl_context: ssl.SSLContext | None = None, **overrides: Any
) -> AsyncIterator[Broker]:
    """A TCP server and its HTTP API on free loopback ports, stopped gracefully after."""
    config = Config(**{"host": "127.0.0.1", "port": 0, "http_port": 0, **overrides})
    server = Server(config, backend_for(config), ssl=ssl_context)
    spy = Spy(server.backend)
    api = HttpApi(config, spy, ssl=ssl_context, throttle=server.auth_throttle)
    server.add_frontend(api)
    host, port = await api.listen(config.host, config.http_listen_port)
    try:
        await server.start()
        api.ready()
        yield Broker(server, api, port, f"{api.scheme}://{host}:{port}", spy)
    finally:
        await server.close()
        await api.close()
