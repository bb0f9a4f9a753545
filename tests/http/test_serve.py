"""``wonderq serve`` with the HTTP API: its startup lines, --no-http, https, a clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from broker.server.throttle import BURST
from tests.conftest import one_backend
from tests.support import BrokerProcess, CertFiles, run_python

#: every broker here is a `wonderq serve` process: the backend parameter reaches none
pytestmark = one_backend


async def test_serve_prints_the_http_line_after_the_tcp_one_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    async with await BrokerProcess.start_with(tmp_path / "broker.log") as broker:
        assert broker.host == "127.0.0.1"  # from its first line, "listening on HOST:PORT"
        line = await broker.stdout_line()
        assert line.startswith("http on 127.0.0.1:")
        http_port = int(line.rsplit(":", 1)[1])
        assert http_port not in (0, 7879)  # --port 0: a free port for HTTP too
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http_port}/healthz") as resp,
        ):
            assert (resp.status, await resp.json()) == (200, {"ok": True})
        assert await broker.stop() == 0
        # then how to reach it (tests/cli/test_welcome.py), the console's address included
        assert (await broker.stdout_line()).startswith("try it in another terminal: ")
        also = await broker.stdout_line()
        assert f"the web console at http://127.0.0.1:{http_port}/" in also
        assert await broker.stdout_line() == ""  # nothing else was printed


async def test_no_http_serves_tcp_alone(tmp_path: Path) -> None:
    async with await BrokerProcess.start_with(tmp_path / "broker.log", "--no-http") as broker:
        assert broker.host == "127.0.0.1"
        assert await broker.stop() == 0
        assert (await broker.stdout_line()).startswith("try it in another terminal: ")
        assert "web console" not in await broker.stdout_line()  # no HTTP, no console
        assert await broker.stdout_line() == ""


async def test_under_tls_the_line_says_https(tmp_path: Path, test_cert: CertFiles) -> None:
    args = ("--http-port", "0", "--tls-cert", str(test_cert.cert), "--tls-key", str(test_cert.key))
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *args) as broker:
        line = await broker.stdout_line()
        assert line.startswith("https on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        connector = aiohttp.TCPConnector(ssl=test_cert.client_context())
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"https://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200


async def test_a_busy_http_port_is_a_clear_error() -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        code, out, err = await run_python(
            "-m", "broker", "serve", "--port", "0", "--http-port", str(port)
        )
        assert code == 1
        assert f"http port {port}" in err and out == ""
    finally:
        blocker.close()


async def test_serve_throttles_wrong_http_tokens_with_its_tcp_throttle(tmp_path: Path) -> None:
    """``wonderq serve`` hands the HTTP API the TCP port's throttle of failed AUTHs."""
    token = "s3cret-s3cret-s3cret"
    args = ("--http-port", "0", "--token", token)
    async with await BrokerProcess.start_with(tmp_path / "broker.log", *args) as broker:
        line = await broker.stdout_line()
        base = f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}/v1/stats"
        async with aiohttp.ClientSession() as session:
            messages = []
            for _ in range(BURST + 1):
                async with session.get(base, headers={"Authorization": "Bearer guess"}) as resp:
                    messages.append((resp.status, (await resp.json())["message"]))
        assert messages[:BURST] == [(401, "wrong token")] * BURST
        assert messages[BURST][1].startswith("too many failed token attempts")
        assert await broker.stop() == 0
