"""The HTTP API's phases: starting (503 until the backend is ready), serving, and the
graceful stop of protocol.md section 1 (503 ``shutting_down``, then closed)."""

from __future__ import annotations

import asyncio

import pytest

from broker.config import Config
from broker.http import HttpApi
from broker.server import Server
from tests.conftest import backend_for
from tests.http.support import Broker, Client, client_for, running_broker


async def test_before_the_backend_is_ready_everything_is_503() -> None:
    config = Config(host="127.0.0.1", port=0, http_port=0)
    server = Server(config, backend_for(config))
    api = HttpApi(config, server.backend)
    host, port = await api.listen(config.host, 0)
    try:
        async with client_for(f"http://{host}:{port}") as client:
            health = await client.get("/healthz")
            assert (health.status, health.json["error"]) == (503, "unavailable")
            assert health.headers["Retry-After"] == "1"
            assert "starting" in health.json["message"]
            stats = await client.get("/v1/stats")
            assert (stats.status, stats.json["error"]) == (503, "unavailable")
            await server.start()
            api.ready()
            assert (await client.get("/healthz")).json == {"ok": True}
            assert (await client.get("/v1/stats")).status == 200
    finally:
        server.add_frontend(api)
        await server.close()


async def test_a_stopping_api_refuses_new_work(broker: Broker, api: Client) -> None:
    broker.api.begin_stop()
    health = await api.get("/healthz")
    assert (health.status, health.json["error"]) == (503, "shutting_down")
    put = await api.post("/v1/queues/q/messages", {"body": 1})
    assert (put.status, put.json["error"]) == (503, "shutting_down")
    assert put.headers["Retry-After"] == "1"
    assert "not applied" in put.json["message"]


async def test_a_stop_answers_long_polls_and_closes_the_api() -> None:
    async with running_broker() as broker, client_for(broker.base) as api:
        assert (await api.post("/v1/queues/q/messages", {"body": 1})).status == 201
        waiting = asyncio.create_task(api.post("/v1/queues/empty/receive", {"wait": 20}))
        async with asyncio.timeout(10):
            await broker.spy.waiting.wait()
        await broker.server.close()  # the graceful stop, HTTP API included
        answered = await waiting
        assert (answered.status, answered.json) == (200, {"ok": True, "messages": []})
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", broker.http_port)
