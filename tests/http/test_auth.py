"""The token (Bearer, on every path but /healthz), the cross-site rule, and HTTPS."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from broker.http.openapi import document
from broker.http.routes import ROUTES
from broker.server.throttle import BURST
from tests.http.support import Client, client_for, running_broker
from tests.support import CertFiles

TOKEN = "s3cret-s3cret-s3cret"


async def test_every_path_but_healthz_needs_the_token() -> None:
    doc = document(ROUTES, token=True, tls=False)
    async with running_broker(token=TOKEN) as broker, client_for(broker.base, document=doc) as anon:
        for path in ("/v1/stats", "/openapi.json", "/metrics", "/v1/queues/q", "/nope"):
            got = await anon.get(path)
            assert (got.status, got.json["error"]) == (401, "unauthorized"), path
            assert got.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await anon.get("/healthz")).status == 200
        for wrong in ("Bearer guess", "Basic czNjcmV0", "s3cret-s3cret-s3cret"):
            got = await anon.get("/v1/stats", headers={"Authorization": wrong})
            assert got.status == 401, wrong
        put = await anon.post("/v1/queues/q/messages", {"body": 1})
        assert put.status == 401
        async with client_for(broker.base, token=TOKEN) as api:
            assert (await api.get("/v1/stats")).status == 200
            assert (await api.post("/v1/queues/q/messages", {"body": 1})).status == 201
            assert api.raw["security"] == [{"bearer": []}]
            refused = await api.get("/v1/stats", headers={"Authorization": "Bearer nope"})
            assert (refused.status, refused.json) == (
                401,
                {"ok": False, "error": "unauthorized", "message": "wrong token"},
            )
            assert (await api.get("/v1/queues/q")).json["queue"]["ready"] == 1


async def test_wrong_tokens_are_throttled_per_address_across_both_ports() -> None:
    """A source that guessed wrong BURST times is refused before its token is compared,
    over HTTP and on the TCP port alike; requests without a token are no guesses."""
    doc = document(ROUTES, token=True, tls=False)
    async with running_broker(token=TOKEN) as broker, client_for(broker.base, document=doc) as anon:
        for _ in range(3 * BURST):  # no Authorization: refused, and no guess counted
            assert (await anon.get("/v1/stats")).status == 401
        async with client_for(broker.base, token=TOKEN) as api:
            assert (await api.get("/v1/stats")).status == 200
        for _ in range(BURST):
            got = await anon.get("/v1/stats", headers={"Authorization": "Bearer guess"})
            assert (got.status, got.json["message"]) == (401, "wrong token")
        right = {"Authorization": f"Bearer {TOKEN}"}
        refused = await anon.get("/v1/stats", headers=right)  # even the right one, now
        assert refused.status == 401 and refused.json["error"] == "unauthorized"
        assert refused.json["message"].startswith("too many failed token attempts")
        assert int(refused.headers["Retry-After"]) >= 1
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.tcp_port)
        try:
            writer.write(json.dumps({"op": "AUTH", "token": TOKEN}).encode() + b"\n")
            line = await asyncio.wait_for(reader.readline(), 10)
            reply = json.loads(line)
            assert reply["error"] == "unauthorized" and "too many failed" in reply["message"]
        finally:
            writer.close()
        assert (await anon.get("/healthz")).status == 200  # needs no token: never throttled


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
)
async def test_an_action_from_another_site_is_refused(api: Client, headers: dict[str, str]) -> None:
    got = await api.post("/v1/queues/q/messages", {"body": 1}, headers=headers)
    assert (got.status, got.json["error"]) == (401, "unauthorized")
    assert "may not change the broker" in got.json["message"]
    assert (await api.get("/v1/queues")).json["queues"] == {}
    assert (await api.get("/v1/stats", headers=headers)).status == 200  # reading is not an action


async def test_an_action_from_this_origin_is_taken(api: Client) -> None:
    host = api.base.removeprefix("http://")
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": api.base, "Host": host}):
        got = await api.post("/v1/queues/q/messages", {"body": 1}, headers=headers)
        assert got.status == 201, got.json


@pytest.mark.parametrize("browser", [{"Sec-Fetch-Site": "same-origin"}, {"Origin": "x"}])
async def test_a_browser_must_name_the_broker_by_an_address_or_a_known_name(
    api: Client, browser: dict[str, str]
) -> None:
    """DNS rebinding: a page whose name now points at 127.0.0.1 is same-origin to itself;
    its Host names it, and the broker refuses it, for reads too."""
    port = api.base.rsplit(":", 1)[1]
    rebound = {**browser, "Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    for got in (
        await api.get("/v1/stats", headers=rebound),
        await api.post("/v1/queues/q/messages", {"body": 1}, headers=rebound),
    ):
        assert (got.status, got.json["error"]) == (403, "unauthorized")
        assert "serve --http-hosts evil.example" in got.json["message"]
    assert (await api.get("/v1/queues")).json["queues"] == {}
    scripted = await api.get("/v1/stats", headers={"Host": f"evil.example:{port}"})
    assert scripted.status == 200  # not a browser: curl and clients name what they like
    for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        assert (await api.get("/v1/stats", headers={**browser, "Host": host})).status == 200


async def test_http_hosts_lets_a_browser_use_a_name() -> None:
    async with (
        running_broker(http_hosts="queues.internal, other.internal") as broker,
        client_for(broker.base) as api,
    ):
        port = broker.base.rsplit(":", 1)[1]
        headers = {"Sec-Fetch-Site": "same-origin", "Host": f"queues.internal:{port}"}
        assert (await api.get("/v1/stats", headers=headers)).status == 200
        headers["Host"] = f"evil.example:{port}"
        assert (await api.get("/v1/stats", headers=headers)).status == 403


async def test_https_with_the_servers_certificate(test_cert: CertFiles) -> None:
    async with running_broker(ssl_context=test_cert.server_context()) as broker:
        assert broker.base.startswith("https://")
        async with client_for(broker.base, ssl_context=test_cert.client_context()) as api:
            assert (await api.post("/v1/queues/q/messages", {"body": 1})).status == 201
            assert "HTTPS only" in api.raw["info"]["description"]
        plain = broker.base.replace("https://", "http://") + "/healthz"
        async with aiohttp.ClientSession() as session:  # no response to validate: it fails
            with pytest.raises(aiohttp.ClientError):
                await session.get(plain)
