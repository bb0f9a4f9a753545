"""One wire adapter per broker, all behind the same three operations.

Owns: speaking each broker's protocol on one connection (WonderQ JSON lines,
beanstalkd's text protocol, Redis' RESP) as ``asyncio.Protocol`` objects, so
every broker is driven by the very same workload code. The workload calls
``put(bodies)``, ``get(k, wait)`` and ``ack(tokens)``; the adapter writes the
request (one ``transport.write``) and reports each completed operation to its
``Sink``: ``on_put(n)``, ``on_got(items)``, ``on_acked(n)``.

Batches: WonderQ has batch PUT/GET/ACK; Redis has a variadic LPUSH; everything
else is sent as K pipelined commands in one write, and the adapter folds their
K replies back into one completed operation (peers reply in request order).
Redis' reliable-queue pattern: LPUSH; BLMOVE (or LMOVE) into a per-connection
processing list; LREM from it as the ack.
Must never: decide what to send next (the workload does) or swallow an error
reply (it is reported, and the run fails).
"""

from __future__ import annotations

import abc
import asyncio
import socket
from collections import deque
from typing import Any, Final, Protocol

import msgspec

WAIT_S: Final = 1  # how long a blocking get waits before an empty reply


class Sink(Protocol):
    def on_put(self, n: int) -> None: ...

    def on_got(self, conn: Adapter, items: list[tuple[Any, bytes]]) -> None: ...

    def on_acked(self, conn: Adapter, n: int) -> None: ...

    def on_error(self, text: str) -> None: ...


class Adapter(asyncio.Protocol, abc.ABC):
    """One bench connection; subclasses speak one broker's protocol."""

    name = "?"

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        self.sink = sink
        self.queue = queue
        self.slot = slot  # connection number (Redis' processing list name)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.role = ""  # the workload's name for this connection's job

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # the three operations (and a setup hook)
    @abc.abstractmethod
    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        """Send the operation; its outcome reaches the sink."""

    @abc.abstractmethod
    def get(self, k: int, wait: bool) -> None:
        """Send the operation; its outcome reaches the sink."""

    @abc.abstractmethod
    def ack(self, tokens: list[Any]) -> None:
        """Send the operation; its outcome reaches the sink."""


# ------------------------------------------------------------------ WonderQ


# gc=False: replies hold no cycles, so the collector need not track 64 structs a GET
class _Msg(msgspec.Struct, gc=False):
    id: str
    body: msgspec.Raw


class _GetReply(msgspec.Struct, gc=False):
    ok: bool
    messages: list[_Msg]


class _AckManyReply(msgspec.Struct, gc=False):
    ok: bool
    acked: int
    not_leased: list[str]
    not_found: list[str]


_get_decoder: Final = msgspec.json.Decoder(_GetReply)
_ack_decoder: Final = msgspec.json.Decoder(_AckManyReply)


class WonderQ(Adapter):
    name = "wonderq"

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        super().__init__(sink, queue, slot)
        self._buf = b""
        self._puts: deque[int] = deque()  # sizes of PUTs awaiting replies (in order)
        q = queue.encode()
        self._put_head = b'{"op":"PUT","queue":"' + q + b'","body":'
        self._batch_head = b'{"op":"PUT","queue":"' + q + b'","messages":[{"body":'
        self._gets: dict[tuple[int, bool], bytes] = {}
        for k in (1,):
            self._get_line(k, True)

    def _get_line(self, k: int, wait: bool) -> bytes:
        line = self._gets.get((k, wait))
        if line is None:
            w = f',"wait":{WAIT_S}' if wait else ""
            text = f'{{"op":"GET","queue":"{self.queue}","max":{k}{w}}}\n'
            line = self._gets[(k, wait)] = text.encode()
        return line

    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        self._puts.append(len(bodies))
        if keys is not None and len(bodies) == 1:
            head = self._put_head[:-8]  # the same single PUT, with its key before the body
            self.send(head + b',"key":"' + keys[0].encode() + b'","body":' + bodies[0] + b"}\n")
        elif keys is not None:
            items = [
                b'{"key":"' + k.encode() + b'","body":' + b + b"}"
                for k, b in zip(keys, bodies, strict=True)
            ]
            q = self.queue.encode()
            self.send(b'{"op":"PUT","queue":"' + q + b'","messages":[' + b",".join(items) + b"]}\n")
        elif len(bodies) == 1:
            self.send(self._put_head + bodies[0] + b"}\n")
        else:
            self.send(self._batch_head + b'},{"body":'.join(bodies) + b"}]}\n")

    def get(self, k: int, wait: bool) -> None:
        self.send(self._get_line(k, wait))

    def ack(self, tokens: list[Any]) -> None:
        if len(tokens) == 1:
            self.send(b'{"op":"ACK","id":"' + tokens[0].encode() + b'"}\n')
        else:
            ids = '","'.join(tokens)
            self.send(b'{"op":"ACK","ids":["' + ids.encode() + b'"]}\n')

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        self._buf = lines.pop()
        sink = self.sink
        for line in lines:
            if line == b'{"ok":true}':
                sink.on_acked(self, 1)
            elif line.startswith(b'{"ok":true,"messages":'):
                msgs = _get_decoder.decode(line).messages
                sink.on_got(self, [(m.id, bytes(m.body)) for m in msgs])
            elif line.startswith((b'{"ok":true,"id":', b'{"ok":true,"ids":')):
                sink.on_put(self._puts.popleft())
            elif line.startswith(b'{"ok":true,"acked":'):
                reply = _ack_decoder.decode(line)
                if reply.not_leased or reply.not_found:
                    sink.on_error(f"wonderq: ACK failed for some ids: {line[:200]!r}")
                sink.on_acked(self, reply.acked)
            else:
                sink.on_error(f"wonderq: unexpected reply {line[:200]!r}")


# --------------------------------------------------------------- beanstalkd


class _Pending:
    """A logical operation sent as ``units`` pipelined commands (peers reply in order)."""

    __slots__ = ("got", "kind", "size", "units")

    def __init__(self, kind: str, units: int) -> None:
        self.kind = kind
        self.units = units
        self.size = units
        self.got: list[tuple[Any, bytes]] = []


class _InOrder(Adapter):
    """Shared parsing of in-order replies: subclasses parse one reply at a time."""

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        super().__init__(sink, queue, slot)
        self._buf = bytearray()
        self._pending: deque[_Pending] = deque()

    def _expect(self, kind: str, units: int) -> None:
        self._pending.append(_Pending(kind, units))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while True:
            parsed = self._parse_one(buf, pos)
            if parsed is None:
                break
            pos, item, ok = parsed
            if not ok or isinstance(item, bytes):
                self.sink.on_error(f"{self.name}: unexpected reply {item!r}")
                continue
            self._unit_done(item)
        del buf[:pos]

    def _unit_done(self, item: tuple[Any, bytes] | None) -> None:
        op = self._pending[0]
        if item is not None:
            op.got.append(item)
        op.units -= 1
        if op.units:
            return
        self._pending.popleft()
        if op.kind == "put":
            self.sink.on_put(self._put_size(op))
        elif op.kind == "get":
            self.sink.on_got(self, op.got)
        else:
            self.sink.on_acked(self, self._ack_size(op))

    def _put_size(self, op: _Pending) -> int:
        return 1

    def _ack_size(self, op: _Pending) -> int:
        return op.size

    @abc.abstractmethod
    def _parse_one(
        self, buf: bytearray, pos: int
    ) -> tuple[int, tuple[Any, bytes] | bytes | None, bool] | None:
        """One reply at ``pos``: (next pos, (token, body) or None, ok), or None if incomplete.

        A reply that is not the expected one comes back as its raw bytes with ok False.
        """


class Beanstalkd(_InOrder):
    """put / reserve-with-timeout / delete on the default tube."""

    name = "beanstalkd"
    TTR_S: Final = 30  # the same lease as WonderQ's default

    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        head = b"put 0 0 %d %d\r\n" % (self.TTR_S, len(bodies[0]))
        self.send(b"".join(head + b + b"\r\n" for b in bodies))
        for _ in bodies:
            self._expect("put", 1)

    def get(self, k: int, wait: bool) -> None:
        first = b"reserve-with-timeout %d\r\n" % (WAIT_S if wait else 0)
        self.send(first + b"reserve-with-timeout 0\r\n" * (k - 1))
        self._expect("get", k)

    def ack(self, tokens: list[Any]) -> None:
        self.send(b"".join(b"delete " + t + b"\r\n" for t in tokens))
        self._expect("ack", len(tokens))

    def _parse_one(
        self, buf: bytearray, pos: int
    ) -> tuple[int, tuple[Any, bytes] | bytes | None, bool] | None:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        line = bytes(buf[pos:end])
        kind = self._pending[0].kind if self._pending else ""
        if line.startswith(b"RESERVED "):
            _, jid, size = line.split()
            stop = end + 2 + int(size)
            if len(buf) < stop + 2:
                return None
            return stop + 2, (jid, bytes(buf[end + 2 : stop])), True
        ok = (
            (kind == "put" and line.startswith(b"INSERTED "))
            # DEADLINE_SOON: beanstalkd's "you hold a job near its TTR" answer to a
            # reserve; 1.12 also gives it for timeout-0 reserves while the connection
            # holds jobs. Either way the reserve got nothing: an empty get.
            or (kind == "get" and line in (b"TIMED_OUT", b"DEADLINE_SOON"))
            or (kind == "ack" and line == b"DELETED")
        )
        return end + 2, (None if ok else line), ok


# -------------------------------------------------------------------- Redis


def _resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis(_InOrder):
    """LPUSH; BLMOVE/LMOVE into a processing list; LREM from it as the ack."""

    name = "redis"

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        super().__init__(sink, queue, slot)
        self._key = queue.encode()
        self._proc = b"%s:processing:%d" % (self._key, slot)
        self._blmove = _resp(b"BLMOVE", self._key, self._proc, b"RIGHT", b"LEFT", b"%d" % WAIT_S)
        self._lmove = _resp(b"LMOVE", self._key, self._proc, b"RIGHT", b"LEFT")
        self._sizes: deque[int] = deque()

    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        self.send(_resp(b"LPUSH", self._key, *bodies))
        self._sizes.append(len(bodies))
        self._expect("put", 1)

    def _put_size(self, op: _Pending) -> int:
        return self._sizes.popleft()

    def get(self, k: int, wait: bool) -> None:
        first = self._blmove if wait else self._lmove
        self.send(first + self._lmove * (k - 1))
        self._expect("get", k)

    def ack(self, tokens: list[Any]) -> None:
        self.send(b"".join(_resp(b"LREM", self._proc, b"-1", t) for t in tokens))
        self._expect("ack", len(tokens))

    def _parse_one(
        self, buf: bytearray, pos: int
    ) -> tuple[int, tuple[Any, bytes] | bytes | None, bool] | None:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        kind = self._pending[0].kind if self._pending else ""
        head = bytes(buf[pos:end])
        if head[:1] == b"$" and head != b"$-1":
            stop = end + 2 + int(head[1:])
            if len(buf) < stop + 2:
                return None
            body = bytes(buf[end + 2 : stop])
            return stop + 2, (body, body), kind == "get"
        ok = (
            (kind == "put" and head[:1] == b":")
            or (kind == "get" and head in (b"$-1", b"*-1", b"_"))
            or (kind == "ack" and head == b":1")
        )
        return end + 2, (None if ok else head), ok


ADAPTERS: Final[dict[str, type[Adapter]]] = {
    "wonderq": WonderQ,
    "beanstalkd": Beanstalkd,
    "redis": Redis,
}
