"""Asking a loopback Redis something, without a client library: one command, one reply.

Owns: encoding one command in RESP over a short-lived socket and reading its
reply whole (a simple string, an error, an integer or a bulk string; arrays are
not needed here), and the two readings the bench and the tests take from
``INFO``: its fields as a dict, and the CPU seconds Redis used
(``used_cpu_sys`` + ``used_cpu_user``, the server's own count, so it needs no
PID). Used where redis-py may be missing (``wonderq bench`` without the
``redis`` extra) and by the tests' fixtures.
Must never: connect anywhere but 127.0.0.1, or wait without a timeout.
"""

from __future__ import annotations

import socket
from typing import Final

HOST: Final = "127.0.0.1"
TIMEOUT_S: Final = 5.0


class RespError(Exception):
    """Redis answered with an error (``-ERR ...``)."""


def encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def command(port: int, *args: str, timeout_s: float = TIMEOUT_S) -> str | int | None:
    """Run one command on the Redis at ``port``: its reply (a string, an integer, or
    None for a nil bulk string); RespError for an error reply, OSError if unreachable."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as s:
        s.sendall(encode(*args))
        data = b""
        while True:
            reply = _parse(data)
            if reply is not _MORE:
                return reply  # type: ignore[return-value]
            chunk = s.recv(65536)
            if not chunk:
                raise OSError(f"redis on port {port} closed the connection mid-reply")
            data += chunk


_MORE: Final = object()


def _parse(data: bytes) -> object:
    head, sep, rest = data.partition(b"\r\n")
    if not sep:
        return _MORE
    kind, text = head[:1], head[1:].decode()
    if kind == b"+":
        return text
    if kind == b"-":
        raise RespError(text)
    if kind == b":":
        return int(text)
    if kind == b"$":
        n = int(text)
        if n < 0:
            return None
        if len(rest) < n + 2:
            return _MORE
        return rest[:n].decode()
    raise RespError(f"unexpected reply {head[:40]!r}")


def info(port: int, section: str = "") -> dict[str, str]:
    """``INFO section`` of the Redis at ``port`` (``CLUSTER INFO`` with section
    ``cluster-info``): its ``key:value`` lines as a dict."""
    args = ("CLUSTER", "INFO") if section == "cluster-info" else ("INFO", section)
    text = command(port, *[a for a in args if a])
    out: dict[str, str] = {}
    for line in str(text).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def cpu_s(port: int) -> float:
    """CPU seconds the Redis at ``port`` used since it started (user + system)."""
    cpu = info(port, "cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
