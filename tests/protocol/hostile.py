"""Hostile protocol input, shared by the codec's fuzz tests and the server's.

Owns: the corpus (every truncation of a request, deep nesting, bad UTF-8, NUL
bytes, lines at and over the limit, every field of every op set to a wrong-typed
value) and seeded random garbage. Never: anything random without a seed.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from broker.errors import ErrorCode
from broker.protocol.requests import REQUEST_TYPES, Quit

CODES = {str(c) for c in ErrorCode}

MINIMAL: dict[str, dict[str, Any]] = {
    "PUT": {"queue": "q", "body": 1},
    "GET": {"queue": "q"},
    "ACK": {"id": "x"},
    "NACK": {"id": "x"},
    "TOUCH": {"id": "x"},
    "INFO": {"id": "x"},
    "STATS": {},
    "QUEUES": {},
    "PURGE": {"queue": "q"},
    "REDRIVE": {"queue": "q"},
    "REMOVE": {"queue": "q", "ids": ["x"]},
    "DELETE": {"queue": "q"},
    "PAUSE": {"queue": "q"},
    "RESUME": {"queue": "q"},
    "CONFIG": {"queue": "q"},
    "PING": {},
    "AUTH": {"token": "t"},
    "CANCEL": {"get": "r"},
    "PEEK": {"queue": "q"},
}
WRONG: list[Any] = [
    None, True, False, 0, -1, 2**63, 2**70, -(2**70), 1.5, -1e308, float("1e300"),
    "", "x", "\u0000", "\U0001f600" * 300, "q" * 5000, [], [1, "a"], {}, {"a": {"b": []}},
]  # fmt: skip


def wrong_type_lines() -> list[bytes]:
    """Every field of every op (but QUIT) set to every wrong-ish value, plus unknown fields."""
    lines: list[bytes] = []
    for cls in REQUEST_TYPES:
        if cls is Quit:
            continue
        op = str(cls.__struct_config__.tag)
        base = {"op": op, **MINIMAL[op]}
        for field in (*cls.__struct_fields__, "op", "nonsense"):
            for value in WRONG:
                if field == "wait" and isinstance(value, (int, float)) and 0 < value <= 3600:
                    continue  # a valid wait: not hostile, just slow
                lines.append(msgspec.json.encode({**base, field: value}))
    return lines


def nasty_lines(max_line: int) -> list[bytes]:
    put = b'{"op":"PUT","queue":"q","body":{"a":[1,2,{"b":"c"}]},"rid":"r"}'
    return [
        *(put[:i] for i in range(1, len(put))),  # every truncation
        b'{"op":"PUT","queue":"q","body":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"op":"PUT","queue":"q","body":' + b"[" * 100_000,
        b"[" * 100_000,
        b'{"rid":' + b"{" * 50_000,
        b"PUT q " + b"[" * 100_000,
        b'{"op":"GET","queue":"q","max":' + b"9" * 3000 + b"}",
        b'{"op":"GET","queue":"q","max":1e99999}',
        b'{"op":"PUT","queue":"q","body":1,"priority":-1e400}',
        b'{"op":"PUT","queue":"q","body":"\xff\xfe"}',
        b'{"op":"PUT","queue":"q\xc0\x80","body":1}',
        b"\xed\xa0\x80",  # an encoded surrogate
        b'{"op":"PUT","queue":"q","body":"\\ud800"}',
        b'{"op":"PUT","queue":"q\x00","body":1}',
        b"\x00" * 100,
        b'{"op":"PI\x00NG"}',
        b"PUT q \x00\x01\x02",
        b'{"op":"PUT","op":"PUT","queue":"q","body":1}',
        b'{"op":"PING"}{"op":"PING"}',
        b'{"op":"PING"} trailing',
        b"\xef\xbb\xbf" + b'{"op":"PING"}',  # a BOM
        b"nul\x00bytes in shorthand",
        b'{"op":"PUT","queue":"q","body":' + b"x" * (max_line - 40) + b"}",  # at the limit
        b"P" * max_line,  # exactly at the limit
        b"P" * (max_line + 1),  # one over
        b"Q" * (max_line * 3),  # far over
    ]


def random_garbage(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(1, 300)) for _ in range(n)]
