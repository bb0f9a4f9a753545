"""What HTTP costs per message, next to TCP, on one broker process.

Starts ``wonderq serve`` (in memory, its own process), then, for each round,
drives it from this process with one connection at a time, each request
waiting for its reply (no pipelining, so both sides pay their full round trip):

  put       batches of 64: TCP ``PUT messages`` vs ``POST /v1/queues/q/messages``
  consume   receive 64 + batch ack: TCP ``GET max 64`` + ``ACK ids`` vs
            ``POST /receive {"max":64}`` + ``POST /v1/ack`` (one keep-alive connection)
  single    one message put, received and acked, one request each

Prints microseconds per message (the best of --repeat rounds, TCP and HTTP
interleaved) and the HTTP/TCP ratio.

    .venv/bin/python bench/http_cost.py --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import msgspec

BATCH = 64
N = 64 * 200  # messages per batch run
N_SINGLE = 2000


class Tcp:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, **request: object) -> dict[str, object]:
        self.writer.write(msgspec.json.encode(request) + b"\n")
        reply: dict[str, object] = msgspec.json.decode(await self.reader.readline())
        assert reply["ok"], reply
        return reply


async def tcp_put(c: Tcp, n: int, size: int) -> None:
    for _ in range(n // size):
        await c.call(op="PUT", queue="q", messages=[{"body": {"n": 1}}] * size)


async def tcp_consume(c: Tcp) -> int:
    done = 0
    while True:
        got = (await c.call(op="GET", queue="q", max=BATCH))["messages"]
        assert isinstance(got, list)
        if not got:
            return done
        await c.call(op="ACK", ids=[m["id"] for m in got])
        done += len(got)


class Http:
    """A minimal HTTP/1.1 keep-alive client (one request in flight): what a lean client
    costs, so the figures are the broker's and not a client library's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.writer.write(
            b"%s %s HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n%s"
            % (method.encode(), path.encode(), len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def json(self, method: str, path: str, body: object = None) -> dict[str, object]:
        data = b"" if body is None else msgspec.json.encode(body)
        status, reply = await self.call(method, path, data)
        assert status < 300, reply
        out: dict[str, object] = msgspec.json.decode(reply)
        return out


async def http_put(h: Http, n: int, size: int) -> None:
    for _ in range(n // size):
        await h.json("POST", "/v1/queues/q/messages", {"messages": [{"body": {"n": 1}}] * size})


async def http_consume(h: Http) -> int:
    done = 0
    while True:
        got = (await h.json("POST", "/v1/queues/q/receive", {"max": BATCH}))["messages"]
        assert isinstance(got, list)
        if not got:
            return done
        acked = await h.json("POST", "/v1/ack", {"receipts": [m["receipt"] for m in got]})
        assert acked["acked"] == len(got)
        done += len(got)


async def timed(n: int, work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await work()
    return (time.perf_counter() - started) / n * 1e6


async def tcp_single(c: Tcp) -> None:
    for _ in range(N_SINGLE):
        await c.call(op="PUT", queue="q", body={"n": 1})
        (m,) = (await c.call(op="GET", queue="q"))["messages"]  # type: ignore[misc]
        await c.call(op="ACK", id=m["id"])


async def http_single(h: Http) -> None:
    for _ in range(N_SINGLE):
        await h.json("POST", "/v1/queues/q/messages", {"body": {"n": 1}})
        (m,) = (await h.json("POST", "/v1/queues/q/receive"))["messages"]  # type: ignore[misc]
        status, _ = await h.call("DELETE", f"/v1/messages/{m['id']}?receipt={m['receipt']}")
        assert status == 204


async def one_round(tcp_port: int, http_port: int) -> dict[str, tuple[float, float]]:
    c = Tcp(*await asyncio.open_connection("127.0.0.1", tcp_port, limit=1 << 24))
    h = Http(*await asyncio.open_connection("127.0.0.1", http_port, limit=1 << 24))
    out: dict[str, tuple[float, float]] = {}
    tcp = await timed(N, lambda: tcp_put(c, N, BATCH))
    http = await timed(N, lambda: http_put(h, N, BATCH))
    out["put (batches of 64)"] = (tcp, http)
    await http_consume(h)
    await tcp_put(c, N, BATCH)
    tcp = await timed(N, lambda: tcp_consume(c))
    await tcp_put(c, N, BATCH)
    http = await timed(N, lambda: http_consume(h))
    out["receive 64 + batch ack"] = (tcp, http)
    tcp = await timed(N_SINGLE, lambda: tcp_single(c))
    http = await timed(N_SINGLE, lambda: http_single(h))
    out["one put + receive + ack"] = (tcp, http)
    c.writer.close()
    h.writer.close()
    return out


async def main(repeat: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "serve", "--port", "0", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        tcp_port = int((await proc.stdout.readline()).rsplit(b":", 1)[1])
        http_port = int((await proc.stdout.readline()).rsplit(b":", 1)[1])
        rounds = [await one_round(tcp_port, http_port) for _ in range(repeat)]
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await proc.wait()
    print(
        f"{'us per message (best of ' + str(repeat) + ')':<28} {'TCP':>8} {'HTTP':>8} {'ratio':>6}"
    )
    for name in rounds[0]:
        tcp = min(r[name][0] for r in rounds)
        http = min(r[name][1] for r in rounds)
        print(f"{name:<28} {tcp:8.1f} {http:8.1f} {http / tcp:6.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args().repeat))
