"""A real broker process on port 0 with a data directory, and a model of what it promised.

``BrokerProcess`` starts ``python -m broker serve`` and reads its
``listening on HOST:PORT`` line; ``kill()`` is SIGKILL. ``Promises`` records what
clients were told (PUTs and ACKs that got ``ok``, attempts seen) and checks a
restarted broker against it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from tests.support import LineClient

START_TIMEOUT_S = 20.0


class BrokerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    @classmethod
    async def start(
        cls, data_dir: Path, *args: str, env: dict[str, str] | None = None
    ) -> BrokerProcess:
        """A broker on ``data_dir``; its log goes next to the directory."""
        log = data_dir.parent / f"{data_dir.name}-broker.log"
        return await cls.start_with(log, "--data-dir", str(data_dir), *args, env=env)

    @classmethod
    async def start_with(
        cls, log: Path, *args: str, env: dict[str, str] | None = None
    ) -> BrokerProcess:
        """A broker with ``args`` (in memory unless they name a data dir), logging to ``log``."""
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "broker",
                "serve",
                "--port",
                "0",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, **(env or {})},
            )
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await proc.stdout.readline()
        if not line.startswith(b"listening on "):
            await proc.wait()
            text = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"broker did not start: {line!r}\n{text}")
        port = int(line.rsplit(b":", 1)[1])
        return cls(proc, port, log)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(START_TIMEOUT_S):
            return await self.proc.wait()


@dataclass
class Promises:
    """What clients were told, across crashes."""

    put_ok: set[str] = field(default_factory=set)
    acked_ok: set[str] = field(default_factory=set)
    ack_unknown: set[str] = field(default_factory=set)  # ACK sent, reply lost to a crash
    attempts_seen: dict[str, int] = field(default_factory=dict)

    def delivered(self, msg: dict[str, Any]) -> None:
        mid, attempts = msg["id"], msg["attempts"]
        assert mid not in self.acked_ok, f"{mid} came back after its ACK got ok"
        assert attempts >= self.attempts_seen.get(mid, 0), f"attempts of {mid} went back"
        self.attempts_seen[mid] = attempts

    async def check(self, port: int) -> int:
        """Every promise holds on the broker at ``port``; returns messages still held."""
        ids = sorted(self.put_ok | self.acked_ok)
        async with await LineClient.connect(port) as c:
            await c.send_raw(
                b"".join(msgspec.json.encode({"op": "INFO", "id": i}) + b"\n" for i in ids)
            )
            held = 0
            for mid in ids:
                reply = await c.reply()
                if mid in self.acked_ok:
                    assert reply.get("error") == "not_found" or (
                        reply["message"]["state"] == "acked"
                    ), f"{mid} was acked with ok but is back: {reply}"
                    continue
                if reply["ok"]:
                    held += 1
                    info = reply["message"]
                    assert info["state"] != "leased", info  # leases do not survive
                    seen = self.attempts_seen.get(mid, 0)
                    assert info["attempts"] >= seen, f"attempts of {mid} went back: {info}"
                else:
                    assert mid in self.ack_unknown, f"{mid} got PUT ok and is lost: {reply}"
        return held
