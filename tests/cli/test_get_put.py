"""``wonderq get`` says what became of every message it leased and why nothing came (exit 3);
``wonderq put -`` reads the body from stdin; put's --dedup and --header."""

from __future__ import annotations

import msgspec

from broker.cli.target import EXIT_EMPTY
from broker.server import Server
from tests.cli.shell import wonderq
from tests.support import LineClient


def lines(out: str) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in out.splitlines()]


async def test_get_without_ack_says_each_message_was_released_with_its_attempts(
    server: Server,
) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        first = (await c.call(op="PUT", queue="jobs", body="a", max_attempts=3))["id"]
        for attempt in (1, 2):
            out, err = await wonderq("get", "jobs", *port, notes=True)
            assert [m["attempts"] for m in lines(out)] == [attempt]
            assert err.strip() == (
                f"wonderq get: {first}: released, attempt {attempt} of 3; use --ack to delete, "
                "or peek to look without leasing"
            )
        # the third delivery was its last: get says it went to the dead-letter queue
        out, err = await wonderq("get", "jobs", *port, notes=True)
        assert err.strip() == (
            f"wonderq get: {first}: moved to jobs.dead: attempt 3 of 3 was its last; "
            "`wonderq redrive jobs` puts it back"
        )
        stats = (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]
        assert (stats["ready"], stats["dead"], stats["dead_lettered"]) == (0, 1, 1)
        # a dead letter leased from jobs.dead has no last attempt: no "attempt 4 of 3"
        _, err = await wonderq("get", "jobs.dead", *port, notes=True)
        assert err.strip() == (
            f"wonderq get: {first}: released, delivery 4 of a dead letter; use --ack to delete, "
            "or peek to look without leasing"
        )


async def test_get_nack_with_a_delay_gives_the_message_back_later(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        msg_id = (await c.call(op="PUT", queue="jobs", body="a"))["id"]
        out, err = await wonderq("get", "jobs", "--nack", "--delay", "60", *port, notes=True)
        assert lines(out)[0]["id"] == msg_id
        assert (
            err.strip() == f"wonderq get: {msg_id}: released, attempt 1 of 5, ready again in 60 s"
        )
        info = (await c.call(op="INFO", id=msg_id))["message"]
        assert info["state"] == "delayed" and 55 < info["delay_left"] <= 60
        _, err = await wonderq("get", "jobs", "--delay", "5", *port, exit_code=2)
        assert "--delay goes with --nack" in err
        _, err = await wonderq("get", "jobs", "--ack", "--nack", *port, exit_code=2)
        assert "not allowed with argument" in err


async def test_get_ack_deletes_silently(server: Server) -> None:
    port = ("--port", str(server.port))
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", messages=[{"body": 1}, {"body": 2, "key": "k"}])
        out, _ = await wonderq("get", "jobs", "--max", "5", "--ack", *port)
        assert [(m["body"], m.get("key")) for m in lines(out)] == [(1, None), (2, "k")]
        stats = (await c.call(op="STATS", queue="jobs"))["queues"]["jobs"]
        assert (stats["acked"], stats["ready"], stats["leased"]) == (2, 0, 0)


async def test_get_that_receives_nothing_says_why_and_exits_3(server: Server) -> None:
    port = ("--port", str(server.port))
    _, err = await wonderq("get", "nope", *port, exit_code=EXIT_EMPTY)
    assert err.startswith("wonderq get: nothing received: ")
    async with await LineClient.connect(server.port) as c:
        await c.call(op="PUT", queue="jobs", body="later", delay=60)
        _, err = await wonderq("get", "jobs", "--wait", "0.2", *port, exit_code=EXIT_EMPTY)
        assert err.strip() == (
            "wonderq get: nothing received: jobs has no ready message within 0.2 s "
            "(1 delayed, 0 leased, 0 dead)"
        )
        # a ready message held back by its key (its predecessor is leased)
        await c.call(
            op="PUT", queue="keyed", messages=[{"body": 1, "key": "k"}, {"body": 2, "key": "k"}]
        )
        await c.call(op="GET", queue="keyed")
        _, err = await wonderq("get", "keyed", *port, exit_code=EXIT_EMPTY)
        assert "keyed has 1 ready message(s) but none could be delivered" in err


async def test_put_dash_reads_the_body_from_stdin(server: Server) -> None:
    port = ("--port", str(server.port))
    out, _ = await wonderq("put", "jobs", "-", *port, input=b'{"a": 1}\n')
    json_id = out.strip()
    out, _ = await wonderq("put", "jobs", "-", *port, input=b"two lines\nof text\n")
    text_id = out.strip()
    async with await LineClient.connect(server.port) as c:
        assert (await c.call(op="INFO", id=json_id))["message"]["body"] == {"a": 1}
        assert (await c.call(op="INFO", id=text_id))["message"]["body"] == "two lines\nof text"
    out, _ = await wonderq("put", "jobs", "dash-", *port)  # only "-" itself means stdin
    async with await LineClient.connect(server.port) as c:
        assert (await c.call(op="INFO", id=out.strip()))["message"]["body"] == "dash-"


async def test_put_with_headers_and_dedup(server: Server) -> None:
    port = ("--port", str(server.port))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    given = ("--header", f"traceparent={traceparent}", "--header", "content-type=text/plain")
    out, _ = await wonderq("put", "mail", "hi", "--dedup", "order-1", *given, *port)
    first = out.strip()
    out, err = await wonderq("put", "mail", "hi", "--dedup", "order-1", *port, notes=True)
    assert out.strip() == first
    assert err.strip() == (
        f"wonderq put: nothing stored: dedup 'order-1' was put in mail within its dedup "
        f"window, as {first}"
    )
    out, _ = await wonderq("get", "mail", "--ack", *port)
    (message,) = lines(out)
    assert message["headers"] == {"traceparent": traceparent, "content-type": "text/plain"}
    _, err = await wonderq("put", "mail", "x", "--header", "no-equals", *port, exit_code=2)
    assert "a header is NAME=VALUE, not 'no-equals'" in err
