"""Input bounded before it is trusted (sans-IO): batches, shorthand words, held lines."""

from __future__ import annotations

import tracemalloc

import msgspec
import pytest

from broker.errors import ErrorCode
from broker.protocol.codec import Invalid, decode
from broker.protocol.framing import TOO_LONG, LineFramer
from broker.protocol.requests import BATCH_FIELDS, Ack, Put, Remove, batch_shape

MIB = 1024 * 1024


def _error(result: object) -> tuple[ErrorCode, str]:
    assert isinstance(result, Invalid), result
    return result.error.code, result.error.message


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"op": "ACK", "ids": ["a"] * 6, "rid": 9}, "ids"),
        ({"op": "PUT", "queue": "q", "messages": [{"body": 1}] * 6, "rid": 9}, "messages"),
        ({"op": "REMOVE", "queue": "q", "ids": ["a"] * 6, "rid": 9}, "ids"),
        ({"op": "REDRIVE", "queue": "q", "ids": ["a"] * 6, "rid": 9}, "ids"),
    ],
)
def test_a_batch_past_max_batch_is_refused_naming_field_and_limit(
    request_: dict[str, object], field: str
) -> None:
    result = decode(msgspec.json.encode(request_), MIB, max_batch=5)
    code, message = _error(result)
    assert code is ErrorCode.BAD_REQUEST
    assert message == f"`{field}` holds more than 5 {field}; the limit (max-batch) is 5"
    assert isinstance(result, Invalid) and result.rid == 9


def test_a_batch_of_exactly_max_batch_decodes() -> None:
    ack = decode(msgspec.json.encode({"op": "ACK", "ids": ["a"] * 5}), MIB, max_batch=5)
    assert isinstance(ack, Ack) and ack.ids == ["a"] * 5
    put = decode(
        msgspec.json.encode({"op": "PUT", "queue": "q", "messages": [{"body": "x,y,z"}] * 5}),
        MIB,
        max_batch=5,
    )
    assert isinstance(put, Put) and len(put.messages) == 5  # type: ignore[arg-type]
    # commas in bodies and keys are not items
    remove = decode(
        msgspec.json.encode({"op": "REMOVE", "queue": "q", "ids": [",,,,,,,,"] * 2}), MIB, 5
    )
    assert isinstance(remove, Remove) and remove.ids == [",,,,,,,,"] * 2


def _peak_bytes(line: bytes, max_batch: int | None) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = decode(line, 2 * MIB, max_batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_huge_batch_is_refused_before_its_items_are_built() -> None:
    """A 1 MiB line of 250,000 ids: decoding it whole builds them all (about 14 MB at
    the peak); the max-batch check stops after max_batch of them."""
    line = msgspec.json.encode({"op": "ACK", "ids": ["a"] * 250_000, "rid": "r"})
    whole, whole_peak = _peak_bytes(line, None)
    assert isinstance(whole, Ack)
    del whole
    refused, peak = _peak_bytes(line, 1000)
    assert _error(refused)[0] is ErrorCode.BAD_REQUEST
    assert isinstance(refused, Invalid) and refused.rid == "r"
    assert peak < whole_peak / 4, f"decoding held {peak} bytes at its peak ({whole_peak} whole)"


def test_other_problems_of_a_long_line_keep_their_own_error() -> None:
    # not an array: the typed decoder names it
    code, message = _error(decode(b'{"op":"ACK","ids":"' + b"a," * 20 + b'"}', MIB, 5))
    assert code is ErrorCode.BAD_REQUEST and "$.ids" in message
    # bad JSON after a short batch and many commas
    code, _ = _error(decode(b'{"op":"ACK","ids":["a","a"],"x":"' + b"," * 20, MIB, 5))
    assert code is ErrorCode.BAD_JSON


def test_batch_shape_is_built_once_per_limit() -> None:
    assert batch_shape(7, "ids") is batch_shape(7, "ids")
    assert set(BATCH_FIELDS) == {"ids", "messages"}


def test_shorthand_with_more_words_than_a_batch_is_refused_unsplit() -> None:
    line = b"ACK " + b"a " * 7
    code, message = _error(decode(line, MIB, max_batch=5))
    assert code is ErrorCode.BAD_REQUEST
    assert message == "shorthand ACK holds more than 6 arguments; the limit (max-batch) is 5 ids"
    ack = decode(b"ACK " + b"a " * 5, MIB, max_batch=5)
    assert isinstance(ack, Ack) and ack.ids == ["a"] * 5
    # a shorthand PUT's body is its text, whatever its spaces
    put = decode(b"PUT q " + b"w " * 50, MIB, max_batch=5)
    assert isinstance(put, Put)


def test_stats_names_one_queue_or_a_page_not_both() -> None:
    for extra in (b'"prefix":"a"', b'"limit":5', b'"cursor":"a"'):
        code, message = _error(decode(b'{"op":"STATS","queue":"q",' + extra + b"}", MIB))
        assert code is ErrorCode.BAD_REQUEST and "not both" in message
    for bad, where in ((b'"limit":1001', "$.limit"), (b'"limit":0', "$.limit")):
        code, message = _error(decode(b'{"op":"QUEUES",' + bad + b"}", MIB))
        assert code is ErrorCode.BAD_REQUEST and where in message


# ------------------------------------------------------------ the framer


def test_drop_held_over_drops_an_unfinished_line_and_the_rest_of_it() -> None:
    framer = LineFramer(1000)
    assert framer.feed(b"PING\n" + b"x" * 50) == [b"PING"]
    assert framer.drop_held_over(100) is False and framer.buffered == 50
    assert framer.feed(b"x" * 60) == []
    assert framer.drop_held_over(100) is True and framer.buffered == 0
    # the rest of that line is discarded, the next one is whole
    assert framer.feed(b"x" * 500 + b"\nPING\n") == [b"PING"]
    assert framer.buffered == 0


def test_too_long_has_no_bytes() -> None:
    assert len(TOO_LONG) == 0
