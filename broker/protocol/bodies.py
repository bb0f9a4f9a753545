"""Message bodies every client can read: at most 64 levels deep, numbers that fit 64 bits.

Owns: the rule a PUT's body (and a header block) must meet before the broker
stores it, so that one producer can never store a body that a consumer's JSON
library cannot decode (``1e999999``, a number no double holds; a
thousand-level nesting, past many decoders' recursion limits; an integer no
64-bit type holds). The body is already valid JSON (the request decoder
checked it); what is left is its depth and its numbers.

The common body is checked without decoding it: one ``translate`` of its bytes
(every digit to ``0``, ``E`` to ``e``, ``{`` to ``[``, signs deleted) and
three C-level tests (no more than 64 brackets, unless the body is too short to
nest that deep; no ``e000``; no 19 digits in a row) prove it cannot nest past
the limit nor hold a number of 19 or more digits or with a three-digit
exponent; only a body that fails that test (or that only looks as if it might,
such as the string ``"node-1234"``) is decoded and walked. Each C call costs
about as much as the scan it does on a small body, so there are as few as can
be, and a batch's bodies are scanned together (``first_body_problem``; a batch of
strings only needs one count).
Must never: do IO or keep state; it never changes a body, only judges it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

MAX_DEPTH: Final = 64
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1  # unsigned 64-bit integers are readable too

RULE: Final = (
    f"a body may nest arrays and objects at most {MAX_DEPTH} levels deep and hold only "
    "numbers that are finite 64-bit floats or integers of at most 64 bits"
)

_SHAPE: Final = bytes.maketrans(b"123456789E{", b"000000000e[")
_QUOTE: Final = ord('"')
#: in bodies joined by NULs: the start of a body (after the first) that is not a string
_NOT_STRING_NEXT: Final = re.compile(b'\0[^"]')
#: the longest body that cannot nest past MAX_DEPTH: each level takes two brackets
_SHALLOW: Final = 2 * MAX_DEPTH + 1
_LONG_NUMBER: Final = b"0" * 19
_decode: Final = msgspec.json.decode


def body_problem(body: bytes) -> str | None:
    """Why ``body`` (valid JSON) may not be stored, or None if it may."""
    if body[0] == _QUOTE:  # (valid JSON is never empty)
        return None  # one string: no nesting, no number
    shape = body.translate(_SHAPE, b"+-")  # the signs go: "1e-999" reads "0e000"
    if (
        (len(body) <= _SHALLOW or shape.count(b"[") <= MAX_DEPTH)
        and b"e000" not in shape
        and _LONG_NUMBER not in shape
    ):
        return None
    return _walk(body)


def first_body_problem(bodies: Sequence[bytes | msgspec.Raw]) -> tuple[int, str] | None:
    """The index of the first of a batch's ``bodies`` that may not be stored, and why;
    None if every one may (``bodies`` as the codec passes them, ``msgspec.Raw``, or
    bytes). The whole batch is scanned at once (joined by NUL bytes, so
    no number runs from one body into the next): a few C calls for the batch instead
    of a few per body. Only when that scan finds a suspect, or a body is long enough
    to nest past the limit, are bodies looked at one by one. A batch of strings (each
    body starts with a quote) needs no scan: the NUL that joins them cannot occur in
    valid JSON, so a NUL not followed by a quote begins a body that is not a string."""
    joined = b"\0".join(bodies)
    if joined[0] == _QUOTE and _NOT_STRING_NEXT.search(joined) is None:
        return None  # every body is one string (``body_problem``'s first rule)
    shape = joined.translate(_SHAPE, b"+-")
    if b"e000" not in shape and _LONG_NUMBER not in shape:
        if max(map(len, bodies)) <= _SHALLOW:
            return None
        suspects: Iterable[int] = (i for i, n in enumerate(map(len, bodies)) if n > _SHALLOW)
    else:
        suspects = range(len(bodies))
    for i in suspects:
        problem = body_problem(bytes(bodies[i]))
        if problem is not None:
            return i, problem
    return None


def _walk(body: bytes) -> str | None:
    """The slow path: decode and look at every value (iteratively: no recursion)."""
    try:
        value = _decode(body)
    except msgspec.DecodeError as exc:  # "Number out of range": a float no double holds
        return f"{RULE}: {exc}"
    except RecursionError:  # far deeper than MAX_DEPTH
        return f"{RULE}: the body nests more than {MAX_DEPTH} levels"
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"{RULE}: the body nests more than {MAX_DEPTH} levels"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif type(item) is int and not INT_MIN <= item <= INT_MAX:
            return f"{RULE}: the integer {item} does not fit 64 bits"
    return None
