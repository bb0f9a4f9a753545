"""A model of what a broker process promised, and (re-exported) the process itself.

``BrokerProcess`` is tests.support.BrokerProcess: ``start(data_dir, ...)`` runs
``python -m broker serve`` on a data directory and reads its ``listening on
HOST:PORT`` line; ``kill()`` is SIGKILL. ``Promises`` records what clients were
told (PUTs and ACKs that got ``ok``, attempts seen) and checks a restarted broker
against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from tests.support import BrokerProcess, LineClient

__all__ = ["BrokerProcess", "Promises"]


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
