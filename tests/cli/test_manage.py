"""The queue management commands, run as real processes against a real broker: each says
what it did; ids it could not act on are named, with exit code 1."""

from __future__ import annotations

import msgspec

from broker.server import Server
from tests.cli.shell import wonderq
from tests.support import LineClient


async def test_queues_lists_every_name_or_says_there_is_none(server: Server) -> None:
    port = ("--port", str(server.port))
    out, err = await wonderq("queues", *port, notes=True)
    assert out == "" and err.strip() == f"wonderq queues: no queues at 127.0.0.1:{server.port}"
    async with await LineClient.connect(server.port) as c:
        for name in ("mail.in", "jobs", "mail.out"):
            await c.call(op="PUT", queue=name, body=1)
    out, _ = await wonderq("queues", *port)
    assert out.split() == ["jobs", "mail.in", "mail.out"]
    out, _ = await wonderq("queues", "--prefix", "mail.", *port)
    assert out.split() == ["mail.in", "mail.out"]


async def test_purge_says_how_many(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", messages=[{"body": 1}, {"body": 2, "delay": 60}])
        out, _ = await wonderq("purge", "jobs", *port)
        assert out.strip() == "purged 2 messages from jobs"
        out, _ = await wonderq("purge", "jobs", *port)
        assert out.strip() == "purged 0 messages from jobs"


async def dead_letters(c: LineClient, queue: str, n: int) -> list[str]:
    """``n`` messages of ``queue`` moved to ``<queue>.dead``; their ids."""
    ids = []
    for i in range(n):
        ids.append((await c.call(op="PUT", queue=queue, body=i, max_attempts=1))["id"])
        (got,) = (await c.call(op="GET", queue=queue))["messages"]
        assert (await c.call(op="NACK", id=got["id"]))["dead"] is True
    return ids


async def test_redrive_all_or_chosen_dead_letters(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        first, second, third = await dead_letters(c, "jobs", 3)
        out, _ = await wonderq("redrive", "jobs", first, *port)
        assert out.strip() == "moved 1 message from jobs.dead back to jobs"
        out, err = await wonderq("redrive", "jobs", second, "ffff", *port, exit_code=1)
        assert out.strip() == "moved 1 message from jobs.dead back to jobs"
        assert err.strip() == "wonderq redrive: not in jobs.dead: ffff"
        out, _ = await wonderq("redrive", "jobs", *port)
        assert out.strip() == "moved 1 message from jobs.dead back to jobs"
        info = (await c.call(op="INFO", id=third))["message"]
        assert (info["queue"], info["state"], info["attempts"]) == ("jobs", "ready", 0)


async def test_remove_never_touches_a_leased_message(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        reply = await c.call(op="PUT", queue="jobs", messages=[{"body": "a"}, {"body": "b"}])
        a, b = reply["ids"]
        await c.call(op="GET", queue="jobs")  # a is leased
        out, err = await wonderq("remove", "jobs", a, b, "ffff", *port, exit_code=1)
        assert out.strip() == "removed 1 message from jobs"
        assert err.splitlines() == [
            f"wonderq remove: not removed, leased (its holder may be working on it): {a}",
            "wonderq remove: not in jobs: ffff",
        ]
        (dead,) = await dead_letters(c, "mail", 1)
        out, _ = await wonderq("remove", "mail.dead", dead, *port)
        assert out.strip() == "removed 1 message from mail.dead"


async def test_delete_a_queue_and_with_dead_its_dead_letters(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        await dead_letters(c, "jobs", 1)
        await c.call(op="PUT", queue="jobs", messages=[{"body": 1}, {"body": 2}])
        out, _ = await wonderq("delete", "jobs", *port)
        assert out.strip() == "deleted jobs: 2 messages"
        assert (await c.call(op="QUEUES"))["queues"] == ["jobs.dead"]
        await c.call(op="PUT", queue="jobs", body=3)
        out, _ = await wonderq("delete", "jobs", "--dead", *port)
        assert out.strip() == "deleted jobs and jobs.dead: 2 messages"
        assert (await c.call(op="QUEUES"))["queues"] == []
        _, err = await wonderq("delete", "jobs", *port, exit_code=1)
        assert err.strip() == "wonderq delete: no queue named 'jobs'"


async def test_pause_and_resume(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", body=1)
        out, _ = await wonderq("pause", "jobs", *port)
        assert out.strip() == (
            "paused jobs: it takes puts but delivers nothing until `wonderq resume jobs`"
        )
        assert (await c.call(op="GET", queue="jobs"))["messages"] == []
        _, err = await wonderq("get", "jobs", *port, exit_code=3)
        assert "jobs is paused (1 ready); `wonderq resume jobs` restarts it" in err
        out, _ = await wonderq("resume", "jobs", *port)
        assert out.strip() == "resumed jobs"
        assert len((await c.call(op="GET", queue="jobs"))["messages"]) == 1


async def test_config_shows_changes_and_resets_settings(server: Server) -> None:
    port = ("--port", str(server.port))
    _, err = await wonderq("config", "jobs", *port, exit_code=1)
    assert err.strip() == "wonderq config: no queue named 'jobs'"
    out, _ = await wonderq("config", "jobs", "--lease", "120", "--rate", "0.5", *port)
    assert out.splitlines() == [
        "lease         120 s",
        "max_attempts  5 (default)",
        "max_length    none (no limit) (default)",
        "rate          0.5/s",
        "dedup_window  300 s (default)",
    ]
    out, _ = await wonderq("config", "jobs", "--rate", "none", "--max-length", "10", *port)
    assert out.splitlines()[2:4] == ["max_length    10", "rate          none (no limit) (default)"]
    out, _ = await wonderq("config", "jobs", "--json", *port)
    assert msgspec.json.decode(out) == {
        "lease": 120.0,
        "max_attempts": 5,
        "max_length": 10,
        "rate": None,
        "dedup_window": 300.0,
    }
    _, err = await wonderq("config", "jobs", "--rate", "fast", *port, exit_code=2)
    assert "'fast' is not a number or none" in err
    _, err = await wonderq("config", "jobs", "--rate", "-1", *port, exit_code=1)
    assert "rate" in err  # the broker's bad_request names the field
