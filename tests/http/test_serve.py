"""``wonderq serve`` with the HTTP API: its startup lines, --no-http, https, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.hardening.conftest import CertFiles, test_cert  # noqa: F401  (the fixture)

START_TIMEOUT_S = 20.0


@asynccontextmanager
async def serve(
    tmp_path: Path, *args: str
) -> AsyncIterator[tuple[list[str], asyncio.subprocess.Process]]:
    """``python -m broker serve --port 0 ARGS``: its first stdout lines once it is ready."""
    env = {k: v for k, v in os.environ.items() if k != "WONDERQ_TOKEN"}
    with (tmp_path / "broker.log").open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broker", "serve", "--port", "0", *args,
            stdout=asyncio.subprocess.PIPE, stderr=err, env=env,
        )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = []
        async with asyncio.timeout(START_TIMEOUT_S):
            lines.append((await proc.stdout.readline()).decode().strip())
            if "--no-http" not in args:
                lines.append((await proc.stdout.readline()).decode().strip())
        yield lines, proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT_S):
            await proc.wait()


async def test_serve_prints_the_http_line_after_the_tcp_one_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path) as (lines, proc):
        assert lines[0].startswith("listening on 127.0.0.1:")
        assert lines[1].startswith("http on 127.0.0.1:")
        http_port = int(lines[1].rsplit(":", 1)[1])
        assert http_port not in (0, 7879)  # --port 0: a free port for HTTP too
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http_port}/healthz") as resp,
        ):
            assert (resp.status, await resp.json()) == (200, {"ok": True})
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT_S):
            assert await proc.wait() == 0
        assert proc.stdout is not None
        assert await proc.stdout.read() == b""


async def test_no_http_serves_tcp_alone(tmp_path: Path) -> None:
    async with serve(tmp_path, "--no-http") as (lines, proc):
        assert lines[0].startswith("listening on 127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT_S):
            assert await proc.wait() == 0
        assert proc.stdout is not None
        assert await proc.stdout.read() == b""


async def test_under_tls_the_line_says_https(tmp_path: Path, test_cert: CertFiles) -> None:  # noqa: F811
    args = ("--http-port", "0", "--tls-cert", str(test_cert.cert), "--tls-key", str(test_cert.key))
    async with serve(tmp_path, *args) as (lines, _proc):
        assert lines[1].startswith("https on 127.0.0.1:")
        port = int(lines[1].rsplit(":", 1)[1])
        connector = aiohttp.TCPConnector(ssl=test_cert.client_context())
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"https://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200


async def test_a_busy_http_port_is_a_clear_error(tmp_path: Path) -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broker", "serve", "--port", "0", "--http-port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(START_TIMEOUT_S):
            out, err = await proc.communicate()
        assert proc.returncode == 1
        assert f"http port {port}" in err.decode() and out == b""
    finally:
        blocker.close()
