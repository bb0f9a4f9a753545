"""The one-shot CLI subcommands, run as real processes against a real server."""

from __future__ import annotations

import msgspec

from broker.server import Server
from tests.support import LineClient, run_python


async def wonderq(*args: str, exit_code: int = 0) -> tuple[str, str]:
    """Run ``python -m broker ARGS``; check it exits with ``exit_code``; its stdout and stderr."""
    code, out, err = await run_python("-m", "broker", *args)
    assert code == exit_code, (args, code, err)
    if exit_code == 0:
        assert err == "", err  # a success says nothing on stderr
    return out, err


async def test_put_get_ack_info_stats_purge(server: Server) -> None:
    port = ("--port", str(server.port))
    out, _ = await wonderq("put", "jobs", '{"n": 1}', "--key", "k1", *port)
    first = out.strip()
    out, _ = await wonderq("put", "jobs", "plain text", "--priority", "5", *port)
    second = out.strip()
    assert first and second and first != second
    async with await LineClient.connect(server.port) as c:
        stats = (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]
        assert (stats["ready"], stats["put"]) == (2, 2)

    # without --ack the leases end with the process: the messages come back
    out, _ = await wonderq("get", "jobs", "--max", "5", *port)
    lines = [msgspec.json.decode(line) for line in out.splitlines()]
    assert [m["body"] for m in lines] == [{"n": 1}, "plain text"]
    assert [m["id"] for m in lines] == [first, second] and lines[0]["key"] == "k1"

    out, _ = await wonderq("get", "jobs", "--max", "5", "--ack", *port)
    assert [msgspec.json.decode(line)["attempts"] for line in out.splitlines()] == [2, 2]

    out, _ = await wonderq("info", first, "--json", *port)
    acked = {"id": first, "queue": "jobs", "state": "acked", "attempts": 2}
    assert msgspec.json.decode(out) == acked
    out, _ = await wonderq("info", first, *port)
    assert out.split() == ["id", first, "queue", "jobs", "state", "acked", "attempts", "2"]

    out, _ = await wonderq("stats", "jobs", "--json", *port)
    reply = msgspec.json.decode(out)
    assert reply["ok"] is True and "rss" in reply["server"]  # the raw reply, every field
    stats = reply["queues"]["jobs"]
    assert stats["acked"] == 2 and stats["released_on_disconnect"] == 2 and stats["ready"] == 0

    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", body=1, delay=60)
        out, _ = await wonderq("purge", "jobs", *port)
        assert out.strip() == "1"
        assert (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]["delayed"] == 0


async def test_errors_are_clear_and_exit_nonzero(server: Server) -> None:
    port = ("--port", str(server.port))
    _, err = await wonderq("info", "ffff", *port, exit_code=1)
    assert "no message with id" in err
    _, err = await wonderq("put", "bad name", "x", *port, exit_code=1)
    assert "queue names" in err
    _, err = await wonderq("stats", "--port", "1", exit_code=1)
    assert "cannot reach" in err
    _, err = await wonderq("put", "jobs", *port, exit_code=2)  # a usage error: argparse's code
    assert "the following arguments are required: body" in err
    async with await LineClient.connect(server.port) as c:
        assert (await c.call(op="QUEUES"))["queues"] == []  # nothing was put


async def test_get_help_says_the_lease_ends_with_the_command() -> None:
    out, _ = await wonderq("get", "--help")
    assert "lease ends when this command exits" in " ".join(out.split())


async def test_stats_and_peek_print_tables(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", messages=[{"body": {"n": i}} for i in range(3)])
        await c.call(op="PUT", queue="jobs", body="later", delay=60, key="acct-7")
        leased = (await c.call(op="GET", queue="jobs", lease=60))["messages"][0]
        out, _ = await wonderq("stats", "--connections", *port)
        lines = out.splitlines()
        assert lines[0].startswith("WonderQ ") and "conns 2" in lines[0]
        row = next(line.split() for line in lines if line.startswith("jobs "))
        # queue ready delayed leased dead wait oldest put acked nacked expired
        assert row[:6] == ["jobs", "2", "1", "1", "0", "0"] and row[-4:] == ["4", "0", "0", "0"]
        assert any(line.split()[1:3] == ["1", "0"] for line in lines if line.startswith("127."))

        out, _ = await wonderq("peek", "jobs", "--state", "leased", *port)
        row = next(line.split() for line in out.splitlines() if line.startswith(leased["id"]))
        assert row[1:3] == ["leased", "1/5"] and row[-2].startswith("127.0.0.1:")
        assert "1 of 1 shown" in out
        out, _ = await wonderq("peek", "jobs", "--json", "--limit", "2", *port)
        reply = msgspec.json.decode(out)
        assert reply["total"] == 4 and len(reply["messages"]) == 2
        # looking leased nothing
        assert (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]["leased"] == 1
        _, err = await wonderq("peek", "nope", *port, exit_code=1)
        assert "no queue named 'nope'" in err
