"""A pipelined link to one Redis server: any number of batches in flight, in order.

Owns: one TCP (or TLS) connection, opened with AUTH and SELECT as the target
says; a batch of commands is written at once and its replies come back as one
list, batches in the order they were sent (Redis runs a connection's commands
in order, so a node's ops on a tag reach it in the order they were submitted,
however many batches are in flight); error replies turned into redis-py's
exception classes (``OutOfMemoryError``, ``MovedError``...) in place, as
redis-py's pipelines return them. A link whose connection breaks fails every
batch in flight with ``ConnectionError`` and is not used again.
Used for the calls of the library (``calls.py``); the heartbeat, FUNCTION LOAD,
CLUSTER SLOTS and pub/sub use redis-py. redis-py's pipeline allows one batch
per connection at a time and costs the node more per command.
Must never: reorder replies, or wait without its caller's timeout.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.backend.redis.target import Target

Arg = bytes | str | int


def encode(command: list[Arg]) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _error(text: str) -> Exception:
    """redis-py's exception for an error reply (MOVED, OOM... by their code)."""
    error: Exception = BaseParser.parse_error(text)  # type: ignore[no-untyped-call]
    return error


class Link(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        # each batch in flight: [replies still owed, replies so far, its future]
        self._waiting: collections.deque[list[Any]] = collections.deque()
        self.broken: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int, target: Target) -> Link:
        """A link to ``host:port``, logged in (the caller bounds the time)."""
        loop = asyncio.get_running_loop()
        tls = ssl.create_default_context() if target.tls else None
        _, link = await loop.create_connection(cls, host, port, ssl=tls)
        hello: list[list[Arg]] = []
        if target.password is not None:
            who = [target.username] if target.username else []
            hello.append(["AUTH", *who, target.password])
        if target.db:
            hello.append(["SELECT", target.db])
        if hello:
            for reply in await link.send(hello):
                if isinstance(reply, Exception):
                    link.close()
                    raise reply
        return link

    # -------------------------------------------------------------- sending

    def send(self, commands: list[list[Arg]]) -> asyncio.Future[list[Any]]:
        """Write ``commands`` now; a future of their replies (errors as exceptions)."""
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.broken is not None or self._transport is None:
            fut.set_exception(RedisConnectionError(f"redis link closed: {self.broken}"))
            return fut
        self._transport.write(b"".join(encode(c) for c in commands))
        self._waiting.append([len(commands), [], fut])
        return fut

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def usable(self) -> bool:
        return self.broken is None and self._transport is not None

    # ------------------------------------------------------------ protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(RedisConnectionError("redis sent a reply nobody asked for"))
                return
            if isinstance(reply, hiredis.ReplyError):
                reply = _error(str(reply))
            batch = waiting[0]
            batch[1].append(reply)
            batch[0] -= 1
            if batch[0] == 0:
                waiting.popleft()
                if not batch[2].done():
                    batch[2].set_result(batch[1])

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"redis closed the connection ({exc or 'EOF'})"))

    def _fail(self, error: BaseException) -> None:
        self.broken = self.broken or error
        while self._waiting:
            fut = self._waiting.popleft()[2]
            if not fut.done():
                fut.set_exception(error)
        if self._transport is not None:
            self._transport.close()
