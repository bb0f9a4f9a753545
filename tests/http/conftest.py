"""Fixtures: a broker with its HTTP API on free ports, and a validating client; every
test runs on each backend (``backend_kind``: in memory, then on Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.http.support import Broker, Client, client_for, running_broker


@pytest.fixture(autouse=True)
def _every_backend(backend_kind: str) -> str:
    return backend_kind


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with running_broker() as b:
        yield b


@pytest.fixture
async def api(broker: Broker) -> AsyncIterator[Client]:
    async with client_for(broker.base) as client:
        yield client
