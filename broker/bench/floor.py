"""The floor: the least a Python broker on this stack pays per request.

Owns: a deliberately bare server for WonderQ's PUT, GET and ACK (single and batch
forms, a GET that waits) on uvloop with one ``asyncio.Protocol`` per connection,
msgspec decoding, one deque per queue, leases in a dict and replies built as bytes,
so the bench's WonderQ adapter drives it unchanged (``wonderq bench --compare floor``).
Must never: grow into a broker. No validation, limits, timers, lease expiry, waits
that end, rid, durability or metrics: every one of those is WonderQ's own cost,
and the floor is what is left without them. Run: ``python -m broker.bench.floor PORT``.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from itertools import count

import msgspec
import uvloop


class _Item(msgspec.Struct, gc=False):
    body: msgspec.Raw


class _Request(msgspec.Struct, gc=False):
    op: str
    queue: str = ""
    body: msgspec.Raw = msgspec.Raw()
    messages: list[_Item] = []
    max: int = 1
    wait: float = 0
    id: str = ""
    ids: list[str] = []


_decode = msgspec.json.Decoder(_Request).decode


class _State:
    """Everything the floor holds: ready messages per queue, leases, waiting GETs."""

    def __init__(self) -> None:
        self.ids = count(1)
        self.ready: dict[str, deque[tuple[bytes, bytes]]] = {}
        self.leases: dict[str, bytes] = {}  # id -> queue
        self.waiting: dict[str, deque[tuple[asyncio.Transport, int]]] = {}

    def lease(self, queue: str, ready: deque[tuple[bytes, bytes]], k: int) -> bytes:
        out, q, leases = [], queue.encode(), self.leases
        for _ in range(min(k, len(ready))):
            mid, body = ready.popleft()
            leases[mid.decode()] = q
            out.append(b'{"id":"%s","queue":"%s","body":%s,"attempts":1}' % (mid, q, body))
        return b'{"ok":true,"messages":[' + b",".join(out) + b"]}"


class Floor(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        replies = [r for line in lines if (r := self.handle(_decode(line)))]
        if replies:
            self.transport.write(b"\n".join(replies) + b"\n")

    def handle(self, req: _Request) -> bytes | None:
        st = self.state
        if req.op == "PUT":
            ready = st.ready.setdefault(req.queue, deque())
            bodies = [m.body for m in req.messages] if req.messages else [req.body]
            mids = [b"%d" % next(st.ids) for _ in bodies]
            ready.extend(zip(mids, map(bytes, bodies), strict=True))
            waiters = st.waiting.get(req.queue)
            while waiters and ready:
                transport, k = waiters.popleft()
                if not transport.is_closing():
                    transport.write(st.lease(req.queue, ready, k) + b"\n")
            if req.messages:
                return b'{"ok":true,"ids":["' + b'","'.join(mids) + b'"]}'
            return b'{"ok":true,"id":"' + mids[0] + b'"}'
        if req.op == "GET":
            ready = st.ready.setdefault(req.queue, deque())
            if ready or not req.wait:
                return st.lease(req.queue, ready, req.max)
            st.waiting.setdefault(req.queue, deque()).append((self.transport, req.max))
            return None
        if req.op == "ACK" and req.ids:
            gone = [i for i in req.ids if st.leases.pop(i, None) is None]
            return b'{"ok":true,"acked":%d,"not_leased":[],"not_found":%s}' % (
                len(req.ids) - len(gone),
                msgspec.json.encode(gone),
            )
        if req.op == "ACK" and st.leases.pop(req.id, None) is not None:
            return b'{"ok":true}'
        return b'{"ok":false,"error":"not_found"}'


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    state = _State()
    server = await loop.create_server(lambda: Floor(state), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1])))
