"""Bad input of every kind gets its own clear error, and the connection survives."""

from __future__ import annotations

import asyncio

import pytest

from broker.server import Server
from tests.conftest import ServerFactory
from tests.support import LineClient

CASES: list[tuple[bytes, str, str]] = [
    # (line, error code, words the message must contain)
    (b"{not json", "bad_json", "JSON"),
    (b'{"op":"PUT","queue":"q","body":"\xff"}', "bad_json", "UTF-8"),
    (b"[1,2]", "bad_json", "object"),
    (b'"just a string"', "bad_json", "object"),
    (b'{"queue":"q"}', "bad_request", "`op`"),
    (b'{"op":"FROB"}', "unknown_op", "FROB"),
    (b'{"op":"put","queue":"q","body":1}', "unknown_op", "upper case"),
    (b'{"op":"PUT","queue":"q"}', "bad_request", "body"),
    (b'{"op":"PUT","queue":"q","body":1,"messages":[{"body":2}]}', "bad_request", "exactly one"),
    (b'{"op":"PUT","queue":"","body":1}', "bad_request", "$.queue"),
    (b'{"op":"PUT","queue":"bad name!","body":1}', "bad_request", "queue names"),
    (b'{"op":"PUT","queue":"' + b"q" * 201 + b'","body":1}', "bad_request", "$.queue"),
    (b'{"op":"PUT","queue":"q","body":1,"delay":-1}', "bad_request", "$.delay"),
    (b'{"op":"PUT","queue":"q","body":1,"delay":"soon"}', "bad_request", "$.delay"),
    (b'{"op":"PUT","queue":"q","body":1,"priority":1.5}', "bad_request", "$.priority"),
    (
        b'{"op":"PUT","queue":"q","body":1,"priority":99999999999999999999}',
        "bad_request",
        "$.priority",
    ),
    (b'{"op":"PUT","queue":"q","body":1,"max_attempts":0}', "bad_request", "$.max_attempts"),
    (b'{"op":"PUT","queue":"q","body":1,"key":""}', "bad_request", "$.key"),
    (b'{"op":"PUT","queue":"q","body":1,"dealy":5}', "bad_request", "dealy"),
    (b'{"op":"PUT","queue":"q","messages":[]}', "bad_request", "$.messages"),
    (b'{"op":"PUT","queue":"q","messages":[{"body":1,"x":2}]}', "bad_request", "x"),
    (b'{"op":"GET","queue":"q","max":0}', "bad_request", "$.max"),
    (b'{"op":"GET","queue":"q","max":true}', "bad_request", "$.max"),
    (b'{"op":"GET","queue":"q","lease":0}', "bad_request", "$.lease"),
    (b'{"op":"GET","queue":"q","wait":1e400}', "bad_request", "$.wait"),
    (b'{"op":"GET","queue":"q","max":1001}', "bad_request", "max-get"),
    (b'{"op":"ACK"}', "bad_request", "exactly one"),
    (b'{"op":"ACK","ids":[]}', "bad_request", "$.ids"),
    (b'{"op":"ACK","id":7}', "bad_request", "$.id"),
    (b'{"op":"ACK","id":"nope"}', "not_found", "nope"),
    (b'{"op":"NACK","id":"abc","delay":-2}', "bad_request", "$.delay"),
    (b'{"op":"INFO"}', "bad_request", "`id`"),
    (b'{"op":"PING","rid":[1]}', "bad_request", "$.rid"),
    (b'{"op":"PING","rid":"' + b"r" * 65 + b'"}', "bad_request", "$.rid"),
    (b"\x00\x01\x02", "unknown_op", "unknown op"),
    (b"PUT onlyqueue", "bad_request", "PUT <queue> <body"),
    (b"GET q 1 2 3 4", "bad_request", "at most"),
    (b"GET q lots", "bad_request", "$.max"),
]


async def test_every_bad_input_gets_its_error_and_the_connection_survives(
    server: Server,
) -> None:
    async with (
        await LineClient.connect(server.port) as c,
        await LineClient.connect(server.port) as bystander,
    ):
        await bystander.call(op="PUT", queue="calm", body="kept")
        for line, code, words in CASES:
            reply = await c.line(line)
            assert reply["ok"] is False, line
            assert reply["error"] == code, (line, reply)
            assert words in reply["message"], (line, reply)
            assert await c.call(op="PING", rid="alive") == {"ok": True, "rid": "alive"}
        got = await bystander.call(op="GET", queue="calm")
        assert [m["body"] for m in got["messages"]] == ["kept"]


async def test_rid_is_echoed_on_errors_when_readable(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        reply = await c.line(b'{"op":"GET","queue":"q","max":0,"rid":"r1"}')
        assert reply["rid"] == "r1" and reply["error"] == "bad_request"
        reply = await c.line(b'{"op":"NOPE","rid":42}')
        assert reply["rid"] == 42 and reply["error"] == "unknown_op"


async def test_blank_lines_are_ignored_and_crlf_accepted(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        await c.send_raw(b"\n   \r\n\n")
        assert await c.line(b'{"op":"PING","rid":1}\r') == {"ok": True, "rid": 1}


@pytest.mark.parametrize("chunk", [1, 7, 4096])
async def test_line_too_long_is_discarded_without_buffering(
    server_factory: ServerFactory, chunk: int
) -> None:
    async with server_factory(max_line=1024) as srv, await LineClient.connect(srv.port) as c:
        big = b'{"op":"PUT","queue":"q","body":"' + b"x" * 5000 + b'"}\n'
        data = big + b'{"op":"PING","rid":"after"}\n'
        for i in range(0, len(data), chunk):
            c.writer.write(data[i : i + chunk])
        await c.writer.drain()
        first = await c.reply()
        assert first["error"] == "line_too_long" and "1024" in first["message"]
        assert await c.reply() == {"ok": True, "rid": "after"}
        # the server buffered at most max_line bytes of that line
        conn = next(iter(srv.connections))
        assert conn._framer.buffered <= 1024
        # exactly at the limit is fine
        at_limit = b'{"op":"PING","rid":"' + b"y" * (1024 - 23) + b'"}'
        assert len(at_limit) <= 1024
        reply = await c.line(at_limit)
        assert reply.get("error") != "line_too_long"


async def test_too_large_body(server_factory: ServerFactory) -> None:
    async with server_factory(max_body=100) as srv, await LineClient.connect(srv.port) as c:
        reply = await c.call(op="PUT", queue="q", body="z" * 200)
        assert reply["error"] == "too_large" and "max-body" in reply["message"]
        assert (await c.call(op="PUT", queue="q", body="z" * 50))["ok"] is True


async def test_max_batch(server_factory: ServerFactory) -> None:
    async with server_factory(max_batch=3) as srv, await LineClient.connect(srv.port) as c:
        reply = await c.call(op="PUT", queue="q", messages=[{"body": i} for i in range(4)])
        assert reply["error"] == "bad_request" and "max-batch" in reply["message"]
        reply = await c.call(op="ACK", ids=["a", "b", "c", "d"])
        assert reply["error"] == "bad_request" and "max-batch" in reply["message"]


async def test_telnet_shorthand(server: Server) -> None:
    async with await LineClient.connect(server.port) as c:
        put = await c.line("PUT jobs hello world")
        assert put["ok"] is True
        assert (await c.line('put jobs {"n": 1}'))["ok"] is True
        got = await c.line("GET jobs 10")
        assert [m["body"] for m in got["messages"]] == ["hello world", {"n": 1}]
        ids = " ".join(m["id"] for m in got["messages"])
        assert await c.line(f"ACK {ids}") == {
            "ok": True,
            "acked": 2,
            "not_leased": [],
            "not_found": [],
        }
        assert (await c.line("STATS jobs"))["queues"]["jobs"]["acked"] == 2
        assert await c.line("PING") == {"ok": True}


async def test_garbage_flood_does_not_disturb_others(server: Server) -> None:
    async with (
        await LineClient.connect(server.port) as bad,
        await LineClient.connect(server.port) as good,
    ):
        n = 2000
        await bad.send_raw(b"{}\n" * n)
        for _ in range(50):
            assert (await good.call(op="PUT", queue="g", body=1))["ok"] is True
        errors = [await bad.reply() for _ in range(n)]
        assert all(e["error"] == "bad_request" for e in errors)
        assert (await good.call(op="STATS", queue="g"))["queues"]["g"]["put"] == 50
        await asyncio.sleep(0)


async def test_queue_names_over_tcp(server_factory: ServerFactory) -> None:
    async with server_factory() as srv, await LineClient.connect(srv.port) as c:
        assert (await c.call(op="PUT", queue="q" * 200, body=1))["ok"] is True
        reply = await c.call(op="PUT", queue="q" * 201, body=1)
        assert reply["error"] == "bad_request" and "$.queue" in reply["message"]
        reply = await c.line("PUT bad/name hello")
        assert reply["error"] == "bad_request" and "queue names are" in reply["message"]
        reply = await c.call(op="GET", queue="naïve")
        assert reply["error"] == "bad_request" and "queue names are" in reply["message"]
        assert (await c.call(op="QUEUES"))["queues"] == ["q" * 200]


async def test_help_answers_every_op_on_every_backend(server: Server) -> None:
    from broker.protocol.requests import OPS

    async with await LineClient.connect(server.port) as c:
        reply = await c.call(op="HELP")
        assert reply["ok"] is True and set(reply["ops"]) == OPS
        assert set((await c.line("help"))["ops"]) == OPS
