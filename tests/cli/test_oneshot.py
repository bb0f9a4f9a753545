"""The one-shot CLI subcommands, run as real processes against a real server."""

from __future__ import annotations

import asyncio
import sys

import msgspec

from broker.server import Server
from tests.support import LineClient


async def wonderq(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_put_get_ack_info_stats_purge(server: Server) -> None:
    port = ("--port", str(server.port))
    rc, out, _ = await wonderq("put", "jobs", '{"n": 1}', "--key", "k1", *port)
    assert rc == 0
    first = out.strip()
    rc, out, _ = await wonderq("put", "jobs", "plain text", "--priority", "5", *port)
    assert rc == 0

    # without --ack the leases end with the process: the messages come back
    rc, out, _ = await wonderq("get", "jobs", "--max", "5", *port)
    lines = [msgspec.json.decode(line) for line in out.splitlines()]
    assert rc == 0 and [m["body"] for m in lines] == [{"n": 1}, "plain text"]
    assert lines[0]["key"] == "k1" and lines[0]["id"] == first

    rc, out, _ = await wonderq("get", "jobs", "--max", "5", "--ack", *port)
    assert [msgspec.json.decode(line)["attempts"] for line in out.splitlines()] == [2, 2]

    rc, out, _ = await wonderq("info", first, "--json", *port)
    assert rc == 0 and msgspec.json.decode(out) == {"id": first, "queue": "jobs", "state": "acked"}
    rc, out, _ = await wonderq("info", first, *port)
    assert rc == 0 and out.split() == ["id", first, "queue", "jobs", "state", "acked"]

    rc, out, _ = await wonderq("stats", "jobs", "--json", *port)
    reply = msgspec.json.decode(out)
    assert reply["ok"] is True and "rss" in reply["server"]  # the raw reply, every field
    stats = reply["queues"]["jobs"]
    assert stats["acked"] == 2 and stats["released_on_disconnect"] == 2

    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", body=1, delay=60)
    rc, out, _ = await wonderq("purge", "jobs", *port)
    assert rc == 0 and out.strip() == "1"


async def test_errors_are_clear_and_exit_nonzero(server: Server) -> None:
    rc, _, err = await wonderq("info", "ffff", "--port", str(server.port))
    assert rc == 1 and "no message with id" in err
    rc, _, err = await wonderq("put", "bad name", "x", "--port", str(server.port))
    assert rc == 1 and "queue names" in err
    rc, _, err = await wonderq("stats", "--port", "1")
    assert rc == 1 and "cannot reach" in err


async def test_get_help_says_the_lease_ends_with_the_command() -> None:
    rc, out, _ = await wonderq("get", "--help")
    assert rc == 0 and "lease ends when this command exits" in " ".join(out.split())


async def test_stats_and_peek_print_tables(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", messages=[{"body": {"n": i}} for i in range(3)])
        await c.call(op="PUT", queue="jobs", body="later", delay=60, key="acct-7")
        leased = (await c.call(op="GET", queue="jobs", lease=60))["messages"][0]
        rc, out, _ = await wonderq("stats", "--connections", *port)
        assert rc == 0
        lines = out.splitlines()
        assert lines[0].startswith("WonderQ ") and "conns 2" in lines[0]
        row = next(line.split() for line in lines if line.startswith("jobs "))
        # queue ready delayed leased dead wait oldest put acked nacked expired
        assert row[:6] == ["jobs", "2", "1", "1", "0", "0"] and row[-4:] == ["4", "0", "0", "0"]
        assert any(line.split()[1:3] == ["1", "0"] for line in lines if line.startswith("127."))

        rc, out, _ = await wonderq("peek", "jobs", "--state", "leased", *port)
        assert rc == 0
        row = next(line.split() for line in out.splitlines() if line.startswith(leased["id"]))
        assert row[1:3] == ["leased", "1/5"] and row[-2].startswith("127.0.0.1:")
        assert "1 of 1 shown" in out
        rc, out, _ = await wonderq("peek", "jobs", "--json", "--limit", "2", *port)
        reply = msgspec.json.decode(out)
        assert reply["total"] == 4 and len(reply["messages"]) == 2
        # looking leased nothing
        assert (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]["leased"] == 1
        rc, _, err = await wonderq("peek", "nope", *port)
        assert rc == 1 and "no queue named 'nope'" in err
