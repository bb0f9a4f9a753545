"""What STATS costs Redis: the first page of a listing counts every queue afresh (its
totals exact); a STATS that names a queue, or a later page, asks its own queues and
takes the totals of a count at most ``TOTALS_MAX_AGE_S`` old. Before, every STATS
asked every registered queue: a listing of P pages cost P times the registry, and
the console's queue page, which names its queue once a second, the whole registry
once a second. Library ops are counted on the node's link to Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.backend.redis import stats as stats_module
from broker.server import Server
from tests.conftest import running_server
from tests.redis.servers import REDIS_URL_ENV
from tests.support import LineClient

N = 30


@pytest.fixture
async def counted(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """A server on Redis with N queues of one message each, and the count of the
    ``stats`` library ops its backend sends from now on (``ops``)."""
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    async with running_server() as srv, await LineClient.connect(srv.port) as c:
        for i in range(N):
            await c.call(op="PUT", queue=f"q{i:02}", body=i)
        ops: list[str] = []
        backend: Any = srv.backend
        real = backend.call_future

        def call_future(tag: str, args: list[Any]) -> Any:
            if args[0] == "stats":
                ops.append(args[1])
            return real(tag, args)

        monkeypatch.setattr(backend, "call_future", call_future)
        yield srv, c, ops


async def test_a_first_page_counts_every_queue_and_later_pages_only_theirs(
    counted: tuple[Server, LineClient, list[str]],
) -> None:
    _, c, ops = counted
    first = await c.call(op="STATS", limit=10)
    assert list(first["queues"]) == [f"q{i:02}" for i in range(10)]
    assert first["server"]["messages"] == N and first["server"]["queues"] == N
    assert len(ops) == N  # the totals: every queue, afresh
    ops.clear()
    second = await c.call(op="STATS", limit=10, cursor=first["next"])
    assert list(second["queues"]) == [f"q{i:02}" for i in range(10, 20)]
    assert second["server"]["messages"] == N  # the first page's count, a moment old
    assert sorted(ops) == list(second["queues"])  # its own ten, nothing else


async def test_a_named_stats_asks_its_queue_while_the_count_is_recent(
    counted: tuple[Server, LineClient, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, c, ops = counted
    await c.call(op="STATS", limit=1)
    ops.clear()
    for _ in range(5):  # the console's queue page, once a second
        named = await c.call(op="STATS", queue="q07")
        assert named["queues"]["q07"]["ready"] == 1 and named["server"]["messages"] == N
    assert ops == ["q07"] * 5
    ops.clear()
    monkeypatch.setattr(stats_module, "TOTALS_MAX_AGE_S", -1.0)  # the count is too old
    await c.call(op="STATS", queue="q07")
    assert sorted(ops) == sorted([*(f"q{i:02}" for i in range(N)), "q07"])  # counted again
