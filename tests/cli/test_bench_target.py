"""``wonderq bench`` against a broker already running, with a token and TLS: its load
processes and its background set-up authenticate, as every client command does."""

from __future__ import annotations

import msgspec

from broker.config import Config
from broker.server import Server
from tests.support import CertFiles, run_python

TOKEN = "bench-token-0123456789"
SMALL = ("--json", "--timeout", "30", "--mode", "pipe", "-n", "300", "-P", "1", "-C", "1")


async def test_bench_a_running_broker_with_a_token_over_tls(test_cert: CertFiles) -> None:
    config = Config(host="127.0.0.1", port=0, token=TOKEN)
    async with Server(config, ssl=test_cert.server_context()) as srv:
        given = ("--port", str(srv.port), "--tls-ca", str(test_cert.cert), "--procs", "1")
        code, out, err = await run_python(
            "-m", "broker", "bench", *SMALL, *given, "--background", "idle:3", "--compare",
            "redis", env={"WONDERQ_TOKEN": TOKEN}, timeout_s=60,
        )  # fmt: skip
        assert code == 0, err
        doc = msgspec.json.decode(out)
        results = doc["results"]
        assert {r["broker"] for r in results} == {"wonderq"}  # --compare is for brokers it starts
        assert all(r["exactly_once"] and r["acked"] == 300 for r in results)
        assert {r["background"] for r in results} == {"", "idle:3"}
        assert (
            f"benching the WonderQ running at 127.0.0.1:{srv.port} only" in doc["meta"]["notes"][0]
        )
        # without the token it says so, as every client command does, and runs nothing
        code, out, err = await run_python("-m", "broker", "bench", *SMALL, *given, timeout_s=60)
        assert (code, out) == (1, "")
        assert err.strip() == (
            f"wonderq bench: the broker at 127.0.0.1:{srv.port} needs a token: give "
            "--token-file FILE or --token TOKEN, or set WONDERQ_TOKEN"
        )
