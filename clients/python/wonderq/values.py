"""What a request may carry: JSON values only, checked before anything is sent.

Owns: ``check_json()``, the rule that a body (or an option) is made of
``dict`` (with ``str`` keys), ``list``/``tuple``, ``str``, ``int``, finite
``float``, ``bool`` and ``None``, and the error that names the first value
breaking it and where it is (``body["a"][2]``). Must never: convert a value
(msgspec would quietly send ``bytes`` as base64, NaN as ``null``, a
``datetime`` as a string, a ``set`` as an array, ``{1: x}`` as ``{"1": x}``:
none of them comes back as it was put), do IO, or judge what the server
judges (nesting depth, integer range, sizes: the server's ``bad_request``
names those).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Final

MAX_DEPTH: Final = 64
"""Deeper values are left to the server, which refuses them (protocol.md, PUT)."""

_HINTS: Final[dict[type, str]] = {
    bytes: "decode it to a str (or base64-encode it) first",
    bytearray: "decode it to a str (or base64-encode it) first",
    memoryview: "decode it to a str (or base64-encode it) first",
    set: "send a list",
    frozenset: "send a list",
}
_DEFAULT_HINT: Final = "send one of dict (str keys), list, str, int, float, bool or None"


class _Found(Exception):
    """The first value that JSON cannot carry, with its path (built while unwinding)."""

    def __init__(self, value: object, *, is_key: bool = False) -> None:
        self.value = value
        self.is_key = is_key
        self.path: list[str] = []


def check_json(value: object, where: str) -> None:
    """Raise unless ``value`` is exactly what JSON carries; ``where`` names it (``body``).

    ``TypeError`` for a value of another type (``bytes``, ``set``, ``datetime``,
    a non-str dict key...), ``ValueError`` for a float that is NaN or infinite.
    """
    if type(value) in _SCALARS:
        return
    try:
        _walk(value, 0)
    except _Found as found:
        raise _error(found, where + "".join(reversed(found.path))) from None


_SCALARS: Final = frozenset({str, int, bool, type(None)})
"""Exact types that need no look inside (the fast path; subclasses take the slow one)."""


def _walk(value: object, depth: int) -> None:
    if isinstance(value, dict):
        if depth < MAX_DEPTH:
            _walk_children(value.items(), depth + 1, keyed=True)
    elif isinstance(value, list | tuple):
        if depth < MAX_DEPTH:
            _walk_children(enumerate(value), depth + 1, keyed=False)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Found(value)
    elif not isinstance(value, str | int) and value is not None:  # str and int subclasses pass
        raise _Found(value)


def _walk_children(children: Iterable[tuple[object, object]], depth: int, *, keyed: bool) -> None:
    """Check ``(key or index, item)`` pairs; a dict's keys (``keyed``) must be strings."""
    for key, item in children:
        if keyed and not isinstance(key, str):
            raise _Found(key, is_key=True)
        if type(item) in _SCALARS:
            continue
        try:
            _walk(item, depth)
        except _Found as found:
            found.path.append(f"[{json.dumps(key)}]")  # ["name"] or [2]
            raise


def _error(found: _Found, where: str) -> TypeError | ValueError:
    value = found.value
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    kind = type(value).__name__
    if found.is_key:
        return TypeError(
            f"{where} has the key {shown} ({kind}); JSON object keys are strings, "
            "so it would arrive as a different key: use str keys"
        )
    if isinstance(value, float):
        return ValueError(f"{where} is {shown}, which JSON cannot carry: only finite numbers")
    hint = _HINTS.get(type(value), _DEFAULT_HINT)
    return TypeError(f"{where} is {kind} ({shown}), which JSON cannot carry: {hint}")
