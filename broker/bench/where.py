"""The broker a bench run talks to: its address, its token and TLS, and opening connections.

Owns: ``Where`` (host, port, token, TLS, and the ports of several nodes serving
the same queues; a msgspec struct, so a ``Job`` carries it to a load process) and the two ways the bench connects: ``connect`` hands an
adapter (an ``asyncio.Protocol``) a connection already authenticated, and
``open_lines`` gives a stream pair for the background set-up. With no token
and no TLS (every broker the bench starts itself) both are a plain connect.
Must never: send anything on an adapter's connection once it is handed over,
or print a token.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Final, TypeVar

import msgspec

from broker.bench.procs import HOST, BenchError

P = TypeVar("P", bound=asyncio.Protocol)

#: the longest the bench waits for AUTH's reply
AUTH_S: Final = 10.0


class Where(msgspec.Struct, frozen=True):
    """A broker's address, and how to be let in: ``token`` (sent with AUTH first) and TLS
    (``tls``: the system's CAs, or ``tls_ca``: this CA file)."""

    port: int
    host: str = HOST
    token: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    ports: tuple[int, ...] = ()  # several nodes serving the same queues (``port`` is the first)

    def node(self, i: int) -> Where:
        """The address of node ``i`` of ``ports`` (this one when there is one node)."""
        if len(self.ports) < 2:
            return self
        return msgspec.structs.replace(self, port=self.ports[i % len(self.ports)], ports=())

    def context(self) -> ssl.SSLContext | None:
        if not self.tls and self.tls_ca is None:
            return None
        return ssl.create_default_context(cafile=self.tls_ca)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class _Greeter(asyncio.Protocol):
    """The first owner of a connection: sends AUTH and reads its one reply line."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if b"\n" in self._buf and not self.reply.done():
            self.reply.set_result(self._buf.split(b"\n", 1)[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(BenchError("the broker closed the connection during AUTH"))


def _auth_line(token: str) -> bytes:
    return msgspec.json.encode({"op": "AUTH", "token": token}) + b"\n"


def _check_auth(where: Where, reply: bytes) -> None:
    if reply != b'{"ok":true}':
        raise BenchError(f"the broker at {where.address} refused the token: {reply[:200]!r}")


async def connect(where: Where, factory: Callable[[], P]) -> P:
    """A connection for ``factory()``'s protocol, AUTH done before it sees a byte."""
    loop = asyncio.get_running_loop()
    tls = where.context()
    if where.token is None:
        _, protocol = await loop.create_connection(factory, where.host, where.port, ssl=tls)
        return protocol
    transport, greeter = await loop.create_connection(_Greeter, where.host, where.port, ssl=tls)
    transport.write(_auth_line(where.token))
    async with asyncio.timeout(AUTH_S):
        _check_auth(where, await greeter.reply)
    protocol = factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return protocol


async def open_lines(
    where: Where, limit: int = 64 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream pair to the broker, AUTH done."""
    reader, writer = await asyncio.open_connection(
        where.host, where.port, limit=limit, ssl=where.context()
    )
    if where.token is not None:
        writer.write(_auth_line(where.token))
        async with asyncio.timeout(AUTH_S):
            _check_auth(where, (await reader.readline()).rstrip(b"\n"))
    return reader, writer
