"""Shared fixtures: a real server on port 0 per test, a test certificate, and loop selection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import uvloop

from broker.config import Config
from broker.server import Server
from tests.support import CertFiles, make_certificate


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Server tests run on uvloop (production) and on asyncio's own loop; others on asyncio's."""
    if "tests/server/" in str(item.path).replace("\\", "/"):
        return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@asynccontextmanager
async def running_server(**overrides: Any) -> AsyncIterator[Server]:
    config = Config(**{"host": "127.0.0.1", "port": 0, **overrides})
    server = Server(config)
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
async def server() -> AsyncIterator[Server]:
    async with running_server() as srv:
        yield srv


@pytest.fixture(scope="session")
def test_cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate for 127.0.0.1 and localhost (needs the openssl CLI)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))
