"""One wire adapter per broker, all behind the same three operations.

Owns: speaking each broker's protocol on one connection (WonderQ JSON lines,
beanstalkd's text protocol, Redis' RESP) as ``asyncio.Protocol`` objects: the
same minimal raw client code for every broker, so every broker is driven by the
very same workload code and no client library's overhead is in the figures. The
workload calls ``put(bodies)``, ``get(k)`` and ``ack(tokens)``; the adapter
queues the request and reports each completed operation to its ``Sink``:
``on_put(n)``, ``on_got(items)``, ``on_acked(n)``.

Writes are pipelined the way a pipelining client does it: every request made
while one read's replies are handled (or while the workload starts a
connection, between ``cork()`` and ``flush()``) goes out in one
``transport.write``, so the server sees the whole window at once and not one
small segment per request.

Each broker's own at-least-once consumer pattern, every get blocking:
WonderQ ``GET`` with ``wait`` (leases) and ``ACK``, batch forms for a batch;
beanstalkd ``reserve-with-timeout`` and ``delete``; Redis' reliable list:
``LPUSH`` (variadic for a batch), ``BLMOVE`` into a per-connection processing
list, ``LREM`` from it as the ack. A get of K messages from a peer without a
batch get is K pipelined blocking pops, and the adapter folds their K replies
back into one completed operation (peers reply in request order).
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

WAIT_S: Final = 1  # how long a blocking get waits before an empty reply (then it is re-sent)


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
        self._out: list[bytes] | None = None  # requests held for one write (corked)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        if self._out is not None:
            self._out.append(data)
        else:
            assert self.transport is not None
            self.transport.write(data)

    def cork(self) -> None:
        """Hold every request sent from now on until ``flush``."""
        if self._out is None:
            self._out = []

    def flush(self) -> None:
        """Write the held requests in one go and stop holding."""
        out, self._out = self._out, None
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        self.cork()  # what the sink sends back while these replies are handled: one write
        try:
            self.parse(data)
        finally:
            self.flush()

    @abc.abstractmethod
    def parse(self, data: bytes) -> None:
        """Handle the replies in ``data`` (and the rest of an earlier read)."""

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # the three operations (and a setup hook)
    @abc.abstractmethod
    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        """Send the operation; its outcome reaches the sink."""

    @abc.abstractmethod
    def get(self, k: int) -> None:
        """Ask for up to ``k`` messages, waiting up to ``WAIT_S`` for them; the outcome
        (possibly empty) reaches the sink."""

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
        self._gets: dict[int, bytes] = {}

    def _get_line(self, k: int) -> bytes:
        line = self._gets.get(k)
        if line is None:
            text = f'{{"op":"GET","queue":"{self.queue}","max":{k},"wait":{WAIT_S}}}\n'
            line = self._gets[k] = text.encode()
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

    def get(self, k: int) -> None:
        self.send(self._get_line(k))

    def ack(self, tokens: list[Any]) -> None:
        if len(tokens) == 1:
            self.send(b'{"op":"ACK","id":"' + tokens[0].encode() + b'"}\n')
        else:
            ids = '","'.join(tokens)
            self.send(b'{"op":"ACK","ids":["' + ids.encode() + b'"]}\n')

    def parse(self, data: bytes) -> None:
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

    def __init__(self, kind: str, units: int, size: int) -> None:
        self.kind = kind
        self.units = units  # replies still to come
        self.size = size  # messages it stands for
        self.got: list[tuple[Any, bytes]] = []


class _InOrder(Adapter):
    """Replies that come in request order, one per command: subclasses parse them a
    run at a time (``_take``), so a window of identical replies costs one comparison."""

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        super().__init__(sink, queue, slot)
        self._buf = bytearray()
        self._pending: deque[_Pending] = deque()

    def _expect(self, kind: str, units: int, size: int) -> None:
        self._pending.append(_Pending(kind, units, size))

    def parse(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        pending = self._pending
        sink = self.sink
        while pending:
            op = pending[0]
            taken = self._take(buf, pos, op)
            if isinstance(taken, bytes):  # not the reply this command has
                sink.on_error(f"{self.name}: unexpected reply {taken[:200]!r} to a {op.kind}")
                pending.clear()
                buf.clear()
                return
            if taken == pos:
                break  # the rest of the reply is still on its way
            pos = taken
            if not op.units:
                pending.popleft()
                if op.kind == "put":
                    sink.on_put(op.size)
                elif op.kind == "get":
                    sink.on_got(self, op.got)
                else:
                    sink.on_acked(self, op.size)
        if pending or pos == len(buf):
            del buf[:pos]
        else:
            sink.on_error(f"{self.name}: a reply to nothing: {bytes(buf[pos : pos + 200])!r}")
            buf.clear()

    def _take(self, buf: bytearray, pos: int, op: _Pending) -> int | bytes:
        """Consume complete replies of ``op`` from ``pos`` (decrementing ``op.units``
        and filling ``op.got``); the new position, or the offending reply's bytes."""
        if op.kind == "get":
            return self._take_gets(buf, pos, op)
        same = self._ACK if op.kind == "ack" else self._PUT
        if same is not None:  # a run of identical replies: one comparison
            n = min(op.units, (len(buf) - pos) // len(same))
            if n and buf[pos : pos + n * len(same)] == same * n:
                op.units -= n
                return pos + n * len(same)
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return pos
        line = bytes(buf[pos:end])
        if not line.startswith(self._OK[op.kind]):
            return line
        op.units -= 1
        return end + 2

    #: the exact reply of one ack (and one put, where it has one); else see ``_OK``
    _ACK: bytes | None = None
    _PUT: bytes | None = None
    _OK: dict[str, bytes] = {}  # the start of a good reply line, per kind

    def ack(self, tokens: list[Any]) -> None:
        self.send(b"".join(map(self._ack_command, tokens)))
        self._expect("ack", len(tokens), len(tokens))

    @abc.abstractmethod
    def _ack_command(self, token: Any) -> bytes:
        """The command that acks the message ``token`` names."""

    def _take_gets(self, buf: bytearray, pos: int, op: _Pending) -> int | bytes:
        """``_take`` for a get's replies: a message each, or an empty answer."""
        while op.units:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            taken = self._take_get(buf, pos, end, op.got)
            if taken is None:
                break  # the message's body is still on its way
            if isinstance(taken, bytes):
                return taken
            pos = taken
            op.units -= 1
        return pos

    @abc.abstractmethod
    def _take_get(
        self, buf: bytearray, pos: int, end: int, got: list[tuple[Any, bytes]]
    ) -> int | bytes | None:
        """One get reply whose first line ends at ``end``: append its message (if it has
        one) to ``got`` and return where the next reply starts; None if its body is not
        all here yet; the line's bytes if it is not a get's reply."""


class Beanstalkd(_InOrder):
    """put / reserve-with-timeout / delete on the default tube, pipelined."""

    name = "beanstalkd"
    TTR_S: Final = 30  # the same lease as WonderQ's default
    _ACK = b"DELETED\r\n"
    _OK = {"put": b"INSERTED ", "ack": b"DELETED"}
    _RESERVE: Final = b"reserve-with-timeout %d\r\n" % WAIT_S
    # DEADLINE_SOON: beanstalkd's "you hold a job near its TTR" answer to a reserve
    # (1.12 also gives it for timeout-0 reserves while the connection holds jobs).
    # Either way the reserve got nothing: an empty get, like TIMED_OUT.
    _EMPTY: Final = (b"TIMED_OUT", b"DEADLINE_SOON")

    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        head = b"put 0 0 %d %d\r\n" % (self.TTR_S, len(bodies[0]))
        self.send(b"".join(head + b + b"\r\n" for b in bodies))
        for _ in bodies:
            self._expect("put", 1, 1)

    def get(self, k: int) -> None:
        self.send(self._RESERVE * k)
        self._expect("get", k, k)

    def _ack_command(self, token: Any) -> bytes:
        return b"delete %s\r\n" % token

    def _take_get(
        self, buf: bytearray, pos: int, end: int, got: list[tuple[Any, bytes]]
    ) -> int | bytes | None:
        line = bytes(buf[pos:end])
        if line.startswith(b"RESERVED "):
            _, jid, size = line.split()
            stop = end + 2 + int(size)
            if len(buf) < stop + 2:
                return None
            got.append((jid, bytes(buf[end + 2 : stop])))
            return stop + 2
        return end + 2 if line in self._EMPTY else line


# -------------------------------------------------------------------- Redis


def _resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis(_InOrder):
    """LPUSH (variadic); BLMOVE into a processing list; LREM from it as the ack."""

    name = "redis"
    _ACK = b":1\r\n"  # LREM removed one
    _OK = {"put": b":", "ack": b":1"}  # LPUSH answers the list's length
    _EMPTY: Final = (b"$-1", b"*-1", b"_")  # BLMOVE timed out (RESP2 / RESP3)

    def __init__(self, sink: Sink, queue: str, slot: int) -> None:
        super().__init__(sink, queue, slot)
        self._key = queue.encode()
        self._proc = b"%s:processing:%d" % (self._key, slot)
        self._blmove = _resp(b"BLMOVE", self._key, self._proc, b"RIGHT", b"LEFT", b"%d" % WAIT_S)

    def put(self, bodies: list[bytes], keys: list[str] | None = None) -> None:
        self.send(_resp(b"LPUSH", self._key, *bodies))
        self._expect("put", 1, len(bodies))

    def get(self, k: int) -> None:
        self.send(self._blmove * k)
        self._expect("get", k, k)

    def _ack_command(self, token: Any) -> bytes:
        return _resp(b"LREM", self._proc, b"-1", token)

    def _take_get(
        self, buf: bytearray, pos: int, end: int, got: list[tuple[Any, bytes]]
    ) -> int | bytes | None:
        if buf[pos] == 36 and buf[pos + 1] != 45:  # "$<size>", not "$-1"
            stop = end + 2 + int(buf[pos + 1 : end])
            if len(buf) < stop + 2:
                return None
            body = bytes(buf[end + 2 : stop])
            got.append((body, body))
            return stop + 2
        line = bytes(buf[pos:end])
        return end + 2 if line in self._EMPTY else line


ADAPTERS: Final[dict[str, type[Adapter]]] = {
    "wonderq": WonderQ,
    "beanstalkd": Beanstalkd,
    "redis": Redis,
}
