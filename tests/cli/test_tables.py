"""``wonderq stats`` sized to the terminal ($COLUMNS when it is not one): names whole when
they fit, cut in the middle when they do not, wrapped whole when cut ones would look alike;
``peek`` and ``info`` show headers."""

from __future__ import annotations

from broker.server import Server
from tests.cli.shell import wonderq
from tests.support import LineClient

TAILS = ["demo-5181d4.stall-and-a-long-tail-1", "demo-5181d4.stall-and-a-long-tail-2"]
MIDDLES = [
    "demo-5181d4.counters-keyed-with-a-long-name",
    "demo-5181d4.counters-nokey-with-a-long-name",
]


def rows(out: str) -> list[str]:
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    return lines[rule + 1 :]  # after the server's figures, the titles and their rule


async def test_stats_uses_the_terminal_s_width_and_never_makes_two_names_alike(
    server: Server,
) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        for name in TAILS:
            await c.call(op="PUT", queue=name, body=1)
        wide, _ = await wonderq("stats", *port, env={"COLUMNS": "200"})
        assert [line.split()[0] for line in rows(wide)] == TAILS
        narrow, _ = await wonderq("stats", *port, env={"COLUMNS": "100"})
        shown = [line.split()[0] for line in rows(narrow)]
        assert all("…" in name for name in shown) and len(set(shown)) == 2
        assert [name[-6:] for name in shown] == ["tail-1", "tail-2"]
        assert all(len(line) <= 100 for line in narrow.splitlines())
        for name in MIDDLES:  # cut in the middle, these two would look alike
            await c.call(op="PUT", queue=name, body=1)
        narrow, _ = await wonderq("stats", *port, env={"COLUMNS": "100"})
        assert "…" not in "".join(rows(narrow))
        lines = rows(narrow)
        for name in [*MIDDLES, *TAILS]:
            at = next(i for i, line in enumerate(lines) if name.startswith(line.split()[0]))
            assert lines[at].split()[0] + lines[at + 1].split()[0] == name
            lines.pop(at)  # each name once
        assert all(len(line) <= 100 for line in narrow.splitlines())


async def test_peek_and_info_show_headers(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        reply = await c.call(op="PUT", queue="mail", body="hi", headers={"traceparent": "00-ab-01"})
        out, _ = await wonderq("peek", "mail", *port, env={"COLUMNS": "120"})
        assert "headers" in out.splitlines()[0].split()
        assert "traceparent=00-ab-01" in out
        out, _ = await wonderq("info", reply["id"], *port)
        assert "headers      traceparent: 00-ab-01" in out
