"""Measure the JSON libraries on WonderQ's request path (why the codec uses msgspec).

For each library: decode one PUT request line and check its fields (type and
bounds, as the broker must), then encode one GET reply holding 10 messages whose
bodies are raw JSON. Run: ``python bench/json_choice.py``. All three libraries
run in this one process, one after another, so the ratios compare like with like.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

try:
    import orjson
except ImportError:  # orjson is optional: only this script uses it
    orjson = None

from broker.protocol.requests import Request

LINE = (
    b'{"op":"PUT","queue":"jobs","body":{"user":1234,"action":"resize",'
    b'"args":[1,2,3],"note":"' + b"x" * 40 + b'"},"key":"user-1234","rid":17}'
)
BODY = b'{"user":1234,"action":"resize","args":[1,2,3],"note":"' + b"x" * 40 + b'"}'
N = 100_000


def _check(obj: Any) -> None:
    """The hand-written validation a dict-returning parser needs."""
    if not isinstance(obj, dict) or obj.get("op") != "PUT":
        raise ValueError("op")
    q = obj["queue"]
    if not isinstance(q, str) or not 1 <= len(q) <= 200:
        raise ValueError("queue")
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise ValueError("key")
    rid = obj.get("rid")
    if rid is not None and not isinstance(rid, (int, str)):
        raise ValueError("rid")


def decode_json() -> None:
    obj = json.loads(LINE)
    _check(obj)
    json.dumps(obj["body"]).encode()  # the body must be kept as JSON text


def decode_orjson() -> None:
    assert orjson is not None
    obj = orjson.loads(LINE)
    _check(obj)
    orjson.dumps(obj["body"])


_decoder = msgspec.json.Decoder(Request)


def decode_msgspec() -> None:
    _decoder.decode(LINE)  # typed: validation included, body stays raw


def _reply_dicts(raw: Callable[[bytes], Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "messages": [
            {"id": f"660d7b00a0be{i}", "queue": "jobs", "body": raw(BODY), "attempts": 1}
            for i in range(10)
        ],
    }


def encode_json() -> None:
    json.dumps(_reply_dicts(json.loads)).encode()


def encode_orjson() -> None:
    assert orjson is not None
    orjson.dumps(_reply_dicts(orjson.Fragment))


_encoder = msgspec.json.Encoder()


def encode_msgspec() -> None:
    _encoder.encode(_reply_dicts(msgspec.Raw))


def timed(fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(N):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / N * 1e6


def main() -> None:
    rows = [
        ("json (stdlib)", decode_json, encode_json),
        ("msgspec", decode_msgspec, encode_msgspec),
    ]
    if orjson is not None:
        rows.insert(1, ("orjson", decode_orjson, encode_orjson))
    base_dec = base_enc = None
    print(f"{'library':<15}{'decode+validate PUT':>22}{'encode GET x10':>18}")
    for name, dec, enc in rows:
        d, e = timed(dec), timed(enc)
        base_dec = base_dec or d
        base_enc = base_enc or e
        print(f"{name:<15}{d:>12.2f} us ({base_dec / d:4.1f}x){e:>8.2f} us ({base_enc / e:4.1f}x)")


if __name__ == "__main__":
    main()
