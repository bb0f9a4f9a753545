"""The Redis backend's pure parts, and ``serve``'s flags for it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from broker.backend.redis import library, wire
from broker.backend.redis.target import Target, parse
from broker.config import Config
from tests.support.processes import run_python


def test_urls_name_hosts_database_tls_and_cluster() -> None:
    assert parse("redis://127.0.0.1:6390/2") == Target((("127.0.0.1", 6390),), db=2)
    t = parse("rediss://:s3cret@cache.example:6380")
    assert (t.tls, t.password, t.hosts) == (True, "s3cret", (("cache.example", 6380),))
    assert "s3cret" not in repr(t) and "s3cret" not in t.describe()
    c = parse("redis-cluster://127.0.0.1:7000,127.0.0.1:7001")
    assert c.cluster and c.hosts == (("127.0.0.1", 7000), ("127.0.0.1", 7001))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://localhost", "HOST:PORT"),
        ("redis://a:1,b:2", "redis-cluster://"),
        ("redis://a:1/x", "database"),
        ("redis-cluster://a:1/3", "no database"),
        ("http://a:1", "must be memory or a URL"),
        ("redis://a:99999", "HOST:PORT"),
    ],
)
def test_bad_urls_are_refused_naming_the_problem(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse(url)


def test_the_password_file_is_read_and_not_both(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("  hunter2\n")
    assert parse("redis://h:1", str(secret)).password == "hunter2"
    with pytest.raises(ValueError, match="not both"):
        parse("redis://:x@h:1", str(secret))
    with pytest.raises(ValueError, match="cannot read"):
        parse("redis://h:1", str(tmp_path / "missing"))


def test_a_queue_and_its_dead_letters_share_a_tag_and_ids_carry_it() -> None:
    assert wire.tag_of("jobs") == wire.tag_of("jobs.dead") == wire.tag_of("jobs.dead.dead")
    assert wire.tag_of("jobs") != wire.tag_of("mail")
    tag = wire.tag_of("jobs")
    assert len(tag) == wire.TAG_LEN and wire.tag_key(tag) == f"wq:{{{tag}}}"
    text = wire.format_id(tag, "3b9aca01")
    assert wire.split_id(text) == (tag, "3b9aca01")
    for bad in ("ffff", "", "zzzzzzzz-1", f"{tag}-", f"{tag}-xyz", f"{tag}1-2"):
        assert wire.split_id(bad) is None, bad


def test_the_library_is_versioned_and_the_test_build_is_apart() -> None:
    prod, test = library.source(False), library.source(True)
    assert prod.startswith(f"#!lua name=wonderq_{library.VERSION}\n")
    assert "local TEST_CLOCK = false" in prod and "local TEST_CLOCK = true" in test
    assert f"'wonderq_{library.VERSION}_call'" in prod
    assert f"'wonderq_{library.VERSION}_test_call'" in test


def test_every_lua_file_is_loaded_and_each_is_a_small_module() -> None:
    lua = Path(library.__file__).parent / "lua"
    assert sorted(library._PARTS) == sorted(p.name for p in lua.glob("*.lua"))
    assert library._PARTS[0] == "core.lua" and library._PARTS[-1] == "main.lua"
    for part in library._PARTS:
        lines = (lua / part).read_text(encoding="utf-8").splitlines()
        assert len(lines) < 500, part
        assert lines[0].startswith(f"-- {part}: "), part  # says what it owns


def test_node_ids_are_checked() -> None:
    assert Config(node_id="eu-1.a:b").node_id == "eu-1.a:b"
    for bad in ("", "a/b", "a b", "x" * 65):
        with pytest.raises(ValueError, match="node-id"):
            Config(node_id=bad)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--data-dir", "/tmp/x"], "--data-dir does not apply to a Redis backend"),
        (["--fsync", "always"], "--fsync does not apply to a Redis backend"),
        (["--max-memory", "1m"], "--max-memory does not apply"),
        (["--max-queues", "10"], "--max-queues does not apply to a Redis backend"),
    ],
)
async def test_serve_refuses_flags_that_do_not_apply_to_redis(flags: list[str], said: str) -> None:
    code, _, err = await run_python(
        "-m", "broker", "serve", "--port", "0", "--backend", "redis://127.0.0.1:1", *flags
    )
    assert code == 2 and said in err


async def test_serve_refuses_a_bad_backend_and_redis_flags_without_redis() -> None:
    code, _, err = await run_python("-m", "broker", "serve", "--backend", "mysql://x:1")
    assert code == 2 and "--backend must be memory or a Redis URL" in err
    code, _, err = await run_python("-m", "broker", "serve", "--node-id", "a")
    assert code == 2 and "need a Redis --backend URL" in err


async def test_serve_without_the_redis_extra_says_what_to_install() -> None:
    hide = (
        "import sys, importlib.util as u; real = u.find_spec; "
        "u.find_spec = lambda n, *a: None if n in ('redis', 'hiredis') else real(n, *a); "
        "from broker.cli import main; "
        "sys.exit(main(['serve', '--port', '0', '--backend', 'redis://127.0.0.1:1']))"
    )
    code, _, err = await run_python("-c", hide)
    assert code == 2 and "pip install 'wonderq[redis]'" in err


async def test_serve_exits_1_naming_an_unreachable_redis() -> None:
    code, _, err = await run_python(
        "-m", "broker", "serve", "--port", "0", "--backend", "redis://127.0.0.1:1"
    )
    assert code == 1 and "cannot use redis at redis://127.0.0.1:1" in err


async def test_the_heartbeat_ends_on_leave_even_without_a_cancel() -> None:
    """A cancel swallowed below the heartbeat (seen under uvloop) once left it beating,
    and joining again, forever, so the backend's stop never returned."""
    from broker.backend.redis.node import Node

    calls: list[str] = []

    async def call(args: list[Any]) -> Any:
        calls.append(args[0])
        return ["ok", []]

    async def reap(dead: str, tags: list[str]) -> None:
        raise AssertionError("nothing to reap")

    node = Node("n1", 0.05, call, reap, lambda: "{}", lambda inc: None, lambda: 0.0)
    await node.join()
    beat = asyncio.get_running_loop().create_task(node.run())
    for _ in range(100):  # bounded: a few beats at 10 ms
        if calls.count("beat") >= 2:
            break
        await asyncio.sleep(0.01)  # real time: the heartbeat runs on its interval
    await node.leave()  # no cancel: the flag alone ends it
    await asyncio.wait_for(beat, timeout=2.0)
    assert calls[0] == "join" and calls[-1] == "leave" and "beat" in calls


def test_a_cancelled_redis_call_always_ends_cancelled(redis_url: str) -> None:
    """The client the backend makes never swallows a cancel. With a ``socket_timeout``,
    redis-py sends under ``asyncio.wait_for``, which on Python 3.11 returns the send's
    result to a task cancelled as the send completes: under uvloop, 1162 of 3000
    cancelled PINGs came back as if never cancelled (the heartbeat then never ended)."""
    import uvloop

    from broker.backend.redis.target import plain_client

    target = parse(redis_url)
    host, port = target.hosts[0]

    async def cancel_pings() -> int:
        client = plain_client(host, port, target, timeout_s=1.0)
        swallowed = 0
        try:
            for i in range(1500):  # bounded; each cancel lands at another point of a PING
                task = asyncio.get_running_loop().create_task(client.ping())
                for _ in range(i % 7):
                    await asyncio.sleep(0)
                if task.done():
                    continue
                task.cancel()
                await asyncio.wait([task])
                swallowed += not task.cancelled()
        finally:
            await client.aclose()
        return swallowed

    assert uvloop.run(cancel_pings()) == 0
