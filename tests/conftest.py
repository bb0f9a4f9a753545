"""Shared fixtures: a real server on port 0 per test, a test certificate, and loop selection."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import uvloop

from broker.bench.cluster import LocalCluster
from broker.compiled import is_compiled
from broker.config import Config
from broker.engine import engine
from broker.server import Server
from broker.server import server as server_module
from tests.redis.servers import REDIS_URL_ENV, RedisServer, flush, require_redis
from tests.support import CertFiles, make_certificate


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Server tests run on uvloop (production) and on asyncio's own loop; others on asyncio's."""
    if "tests/server/" in str(item.path).replace("\\", "/"):
        return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``interpreted`` patches or spies on the engine's insides, which its
    compiled (native) classes refuse: it runs where the engine is pure Python (make
    pytest) and skips where it is compiled (make debug-pytest)."""
    marker = item.get_closest_marker("interpreted")
    if marker is not None and is_compiled(engine):
        pytest.skip(f"the engine is compiled here, and this test {marker.args[0]}")


#: what ``backend_kind`` sets for a test marked ``one_backend`` (``backend_for`` refuses it)
_ONE_BACKEND = "one_backend"

#: A test of a black-box suite (server, http, clients) that starts no test server on
#: ``backend_for`` (its brokers are processes, which never read the backend parameter,
#: or it builds its own in-memory ``Server``) runs once, in memory: on Redis it would
#: run the same code again. ``backend_for`` fails a test so marked, so the mark cannot
#: hide a server that would have run on Redis.
one_backend = pytest.mark.parametrize("backend_kind", ["memory"], indirect=True)
#: A test of tests/server whose brokers are processes (they run their own loop; the
#: test's loop only drives a line client) runs once, on asyncio's loop, not on both.
one_loop = pytest.mark.asyncio(loop_factories=["asyncio"])


def backend_for(config: Config) -> Any:
    """The backend a test server runs on: in memory, or Redis when the session says so."""
    url = os.environ.get(REDIS_URL_ENV)
    if url == _ONE_BACKEND:
        pytest.fail("a test marked one_backend started a test server: remove the mark")
    if url is None:
        return None
    from broker.backend.redis.backend import RedisBackend
    from broker.backend.redis.target import parse

    target = parse(url)
    flush(target.hosts[0][1])  # every test server starts on an empty Redis
    return RedisBackend(config, target)


@asynccontextmanager
async def running_server(**overrides: Any) -> AsyncIterator[Server]:
    config = Config(**{"host": "127.0.0.1", "port": 0, **overrides})
    server = Server(config, backend_for(config))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture
def server_factory() -> ServerFactory:
    return running_server


@pytest.fixture
def quick_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process stops give a peer that never closes 0.2 s, not DRAIN_MAX_S + CLOSE_S
    (3 s), before they abort it: for tests whose peer stays open on purpose. The stop
    takes the same steps (half-close, wait, abort); only the waits are shorter."""
    monkeypatch.setattr(server_module, "DRAIN_MAX_S", 0.1)
    monkeypatch.setattr(server_module, "CLOSE_S", 0.1)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with running_server() as srv:
        yield srv


@pytest.fixture(scope="session")
def test_cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate for 127.0.0.1 and localhost (needs the openssl CLI)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


# --------------------------------------------------------------- Redis backend


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (each test that uses it flushes it first)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One 3-master + 3-replica Redis Cluster on loopback for the session (tests use
    queue names of their own); every server is stopped by PID at the end."""
    require_redis()
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A Redis URL with nothing stored in it."""
    flush(redis_server.port)
    return redis_server.url


@pytest.fixture(params=["memory", "redis"])
def backend_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The black-box suites' one parameter: every server they start runs in memory, then
    on Redis (``backend_for``), so the two backends cannot drift apart."""
    if request.param == "redis":
        marker = request.node.get_closest_marker("memory_only")
        if marker is not None:
            pytest.skip(f"in-memory backend only: {marker.args[0]}")
        server: RedisServer = request.getfixturevalue("redis_server")
        monkeypatch.setenv(REDIS_URL_ENV, server.url)
    elif any("backend_kind" in m.args[0] for m in request.node.iter_markers("parametrize")):
        monkeypatch.setenv(REDIS_URL_ENV, _ONE_BACKEND)  # one_backend: see backend_for
    yield request.param
