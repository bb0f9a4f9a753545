"""Usage lines, HELP and unknown ops: the one table (usage.py) the shorthand and errors read."""

from __future__ import annotations

import msgspec
import pytest

from broker.errors import BadRequest, UnknownOp, WonderQError
from broker.protocol.codec import Invalid, decode
from broker.protocol.replies import HELP, to_builtins
from broker.protocol.requests import OPS, Help
from broker.protocol.shorthand import to_json
from broker.protocol.usage import USAGE

MAX_LINE = 1 << 20


def error_of(line: bytes) -> WonderQError:
    result = decode(line, MAX_LINE)
    assert isinstance(result, Invalid), result
    return result.error


def test_every_op_has_a_usage_line_and_no_other() -> None:
    assert set(USAGE) == OPS


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"GET", "shorthand GET needs <queue>: GET <queue> [<max> [<lease> [<wait>]]]"),
        (b"PING x", "shorthand PING takes no arguments: PING"),
        (b"QUEUES a", "shorthand QUEUES takes no arguments: QUEUES"),
        (b"NACK", "shorthand NACK needs <id>: NACK <id> [<delay>]"),
        (b"NACK a 1 2", "shorthand NACK takes at most 2 arguments: NACK <id> [<delay>]"),
        (b"STATS a b", "shorthand STATS takes at most 1 argument: STATS [<queue>]"),
        (b"PUT", "shorthand PUT needs <queue> and <body>: PUT <queue> <body...>"),
        (b"PUT jobs", "shorthand PUT needs <body>: PUT <queue> <body...>"),
        (b"ACK", "shorthand ACK needs <id>: ACK <id> [<id>...]"),
        (b"REMOVE jobs", "shorthand REMOVE needs <id>: REMOVE <queue> <id> [<id>...]"),
        (b"CANCEL", "shorthand CANCEL needs <rid>: CANCEL <rid>"),
        (b"peek", "shorthand PEEK needs <queue>: PEEK <queue> [<state> [<limit>]]"),
        (b"DELETE", "shorthand DELETE needs <queue>: DELETE <queue>"),
        (b"AUTH", "shorthand AUTH needs <token>: AUTH <token>"),
    ],
)
def test_a_shorthand_line_with_too_few_or_too_many_arguments_gets_its_usage(
    line: bytes, message: str
) -> None:
    error = error_of(line)
    assert isinstance(error, BadRequest)
    assert error.message == message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET jobs 10 5 0.5", {"op": "GET", "queue": "jobs", "max": 10, "lease": 5, "wait": 0.5}),
        (b"ACK a", {"op": "ACK", "id": "a"}),
        (b"ACK a b", {"op": "ACK", "ids": ["a", "b"]}),
        (b"REDRIVE jobs", {"op": "REDRIVE", "queue": "jobs"}),
        (b"REDRIVE jobs a b", {"op": "REDRIVE", "queue": "jobs", "ids": ["a", "b"]}),
        (b"REMOVE jobs a", {"op": "REMOVE", "queue": "jobs", "ids": ["a"]}),
        (b"CANCEL 7", {"op": "CANCEL", "get": 7}),
        (b"help", {"op": "HELP"}),
    ],
)
def test_shorthand_lines_read_by_the_table(line: bytes, expected: dict[str, object]) -> None:
    assert msgspec.json.decode(to_json(line)) == expected
    assert not isinstance(decode(line, MAX_LINE), Invalid)


@pytest.mark.parametrize("line", [b"frobnicate", b'{"op":"FROBNICATE"}'])
def test_an_unknown_op_lists_every_op(line: bytes) -> None:
    error = error_of(line)
    assert isinstance(error, UnknownOp)
    assert "unknown op 'FROBNICATE'; the ops are " in error.message
    listed = error.message.split("the ops are ", 1)[1].split(" (", 1)[0].split(", ")
    assert listed == sorted(OPS)
    assert "HELP says what each does" in error.message


def test_a_lower_case_op_is_told_to_use_upper_case() -> None:
    error = error_of(b'{"op":"put","queue":"q","body":1}')
    assert error.message == "unknown op 'put'; ops are upper case: 'PUT'"


def test_help_lists_every_op_with_one_line_each() -> None:
    assert isinstance(decode(b'{"op":"HELP"}', MAX_LINE), Help)
    ops = to_builtins(HELP)["ops"]
    assert list(ops) == list(USAGE) and set(ops) == OPS
    for op, line in ops.items():
        assert line.startswith(USAGE[op].line(op) + ": ")
        assert "\n" not in line and len(line) > len(op) + 10
