"""Telnet shorthand: ``OP arg...`` lines turned into JSON requests.

Owns: reading ``OP arg...`` by the table of ``usage.py`` (protocol.md section
6), so a person at ``nc`` can type ``PUT jobs hello`` instead of JSON; a line
with too few or too many arguments gets the op's usage line, an unknown op the
list of ops. The result is a JSON request line that goes through the one typed
decoder, so the shorthand gets exactly the same validation and error messages
as JSON.
Must never: validate field values itself (the typed decoder does).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from broker.errors import BadJson, BadRequest, UnknownOp
from broker.protocol.usage import USAGE, Usage, op_list, shown_name

TOO_DEEP: Final = "line is not valid JSON: it nests arrays/objects too deeply"

_STRINGS: Final = frozenset(("queue", "id", "state", "token"))  # never read as numbers

_encode = msgspec.json.encode


def _scalar(token: str) -> Any:
    """A number if the token is one, else the string (the typed decoder judges)."""
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token


def _put(rest: str) -> bytes:
    queue, _, text = rest.partition(" ")
    if not queue or not text:
        raise _too_few("PUT", USAGE["PUT"], 1 if queue else 0)
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        body = _encode(text)
    except RecursionError:
        raise BadJson(TOO_DEEP) from None
    else:
        body = text.encode()
    return b'{"op":"PUT","queue":' + _encode(queue) + b',"body":' + body + b"}"


def _too_few(op: str, usage: Usage, given: int) -> BadRequest:
    missing = " and ".join(f"<{shown_name(n)}>" for n in usage.args[given : usage.required])
    return BadRequest(f"shorthand {op} needs {missing}: {usage.line(op)}")


def _check_count(op: str, usage: Usage, given: int) -> None:
    """A usage error naming what is missing or that there is too much."""
    if given < usage.required:
        raise _too_few(op, usage, given)
    if not usage.repeats and given > len(usage.args):
        n = len(usage.args)
        most = "no arguments" if n == 0 else f"at most {n} argument{'s' * (n > 1)}"
        raise BadRequest(f"shorthand {op} takes {most}: {usage.line(op)}")


def _request(op: str, usage: Usage, args: list[str]) -> dict[str, Any]:
    """The JSON request of a shorthand line whose argument count is right."""
    request: dict[str, Any] = {"op": op}
    names = usage.args[:-1] if usage.repeats else usage.args
    for name, arg in zip(names, args, strict=False):
        request[name] = arg if name in _STRINGS else _scalar(arg)
    if usage.repeats:
        ids = args[len(names) :]
        if op == "ACK" and len(ids) == 1:
            request["id"] = ids[0]  # one id: the single form, whose reply is {"ok":true}
        elif ids:
            request["ids"] = ids
    return request


def to_json(line: bytes, max_batch: int | None = None) -> bytes:
    """Translate one shorthand line to a JSON request line; with ``max_batch``, a line of
    more arguments than a batch may hold is refused before they are split apart."""
    try:
        text = line.decode().strip()
    except UnicodeDecodeError as exc:
        raise BadJson(f"line is not valid UTF-8 (byte {exc.start})") from None
    op, _, rest = text.partition(" ")
    op = op.upper()
    rest = rest.strip()
    usage = USAGE.get(op)
    if usage is None:
        raise UnknownOp(
            f"unknown op {op!r}; the ops are {op_list()} (HELP says what each does; "
            "shorthand is 'OP arg...', JSON requests start with '{')"
        )
    if usage.rest:
        return _put(rest)
    if max_batch is None:
        args = rest.split()
    else:  # a queue and max_batch ids at most, and one more piece holding what is left
        args = rest.split(maxsplit=max_batch + 1)
        if len(args) > max_batch + 1:
            raise BadRequest(
                f"shorthand {op} holds more than {max_batch + 1} arguments; "
                f"the limit (max-batch) is {max_batch} ids"
            )
    _check_count(op, usage, len(args))
    return _encode(_request(op, usage, args))
