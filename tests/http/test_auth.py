"""The token (Bearer, on every path but /healthz), the cross-site rule, and HTTPS."""

from __future__ import annotations

import aiohttp
import pytest

from tests.hardening.conftest import CertFiles, test_cert  # noqa: F401  (the fixture)
from tests.http.support import TIMEOUT_S, Client, client_for, running_broker

TOKEN = "s3cret-s3cret-s3cret"


async def plain_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers)


async def test_every_path_but_healthz_needs_the_token() -> None:
    async with running_broker(token=TOKEN) as broker:
        for path in ("/v1/stats", "/openapi.json", "/metrics", "/v1/queues/q", "/nope"):
            status, headers = await plain_get(broker.base + path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Bearer")
        assert (await plain_get(broker.base + "/healthz"))[0] == 200
        wrong = {"Authorization": "Bearer guess"}
        assert (await plain_get(broker.base + "/v1/stats", wrong))[0] == 401
        basic = {"Authorization": "Basic czNjcmV0"}
        assert (await plain_get(broker.base + "/v1/stats", basic))[0] == 401
        async with client_for(broker.base, token=TOKEN) as api:
            assert (await api.get("/v1/stats")).status == 200
            assert (await api.post("/v1/queues/q/messages", {"body": 1})).status == 201
            assert api.raw["security"] == [{"bearer": []}]
            refused = await api.get("/v1/stats", headers={"Authorization": "Bearer nope"})
            assert (refused.status, refused.json) == (
                401,
                {"ok": False, "error": "unauthorized", "message": "wrong token"},
            )


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


async def test_https_with_the_servers_certificate(test_cert: CertFiles) -> None:  # noqa: F811
    async with running_broker(ssl_context=test_cert.server_context()) as broker:
        assert broker.base.startswith("https://")
        async with client_for(broker.base, ssl_context=test_cert.client_context()) as api:
            assert (await api.post("/v1/queues/q/messages", {"body": 1})).status == 201
            assert "HTTPS only" in api.raw["info"]["description"]
        with pytest.raises(aiohttp.ClientError):
            await plain_get(broker.base.replace("https://", "http://") + "/healthz")
