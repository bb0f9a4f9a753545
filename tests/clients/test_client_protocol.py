"""The sans-IO core (wonderq.protocol) and the pure builders (wonderq.commands), without sockets."""

from __future__ import annotations

import random

import msgspec
import pytest

from wonderq import Envelope, ProtocolViolation, commands
from wonderq.protocol import ClientProtocol


def sent(core: ClientProtocol) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in core.data_to_send().splitlines()]


def line(obj: object) -> bytes:
    return msgspec.json.encode(obj) + b"\n"


def test_send_assigns_increasing_rids_and_frames_one_object_per_line() -> None:
    core = ClientProtocol()
    rids = [core.send(commands.ping()), core.send(commands.put("q", {"a": [1, "\n"]}))]
    assert rids == [1, 2]
    assert sent(core) == [
        {"op": "PING", "rid": 1},
        {"op": "PUT", "queue": "q", "body": {"a": [1, "\n"]}, "rid": 2},
    ]
    assert core.data_to_send() == b""


def test_unencodable_body_raises_and_queues_nothing() -> None:
    core = ClientProtocol()
    with pytest.raises(TypeError):
        core.send(commands.put("q", object()))
    assert core.data_to_send() == b""
    assert core.unanswered == 0


def test_replies_are_matched_by_rid_in_any_order() -> None:
    core = ClientProtocol()
    a, b, c = (core.send(commands.ping()) for _ in range(3))
    data = (
        line({"ok": True, "rid": c}) + line({"ok": True, "rid": a}) + line({"ok": False, "rid": b})
    )
    assert [rid for rid, _ in core.receive_data(data)] == [c, a, b]
    assert core.unanswered == 0


def test_replies_split_at_every_byte_give_the_same_result() -> None:
    replies = [{"ok": True, "rid": n, "body": "é" * n} for n in range(1, 6)]
    data = b"".join(line(r) for r in replies)
    for chunk_size in (1, 2, 3, 7, len(data)):
        core = ClientProtocol()
        for _ in replies:
            core.send(commands.ping())
        got = []
        for start in range(0, len(data), chunk_size):
            got += core.receive_data(data[start : start + chunk_size])
        assert got == [(r["rid"], r) for r in replies]


def test_reply_without_rid_answers_the_oldest_in_order_request_not_a_waiting_get() -> None:
    core = ClientProtocol()
    waiting = core.send(commands.get("q", wait=5))
    big_put = core.send(commands.put("q", "x"))
    ping = core.send(commands.ping())
    error = {"ok": False, "error": "line_too_long", "message": "too long"}
    assert core.receive_data(line(error)) == [(big_put, error)]
    assert core.receive_data(line({"ok": True, "rid": ping})) == [(ping, {"ok": True, "rid": ping})]
    assert core.unanswered == 1  # the waiting GET
    with pytest.raises(ProtocolViolation):
        core.receive_data(line(error))  # nothing in order is left to answer
    assert waiting == 1


def test_abandoned_reply_is_dropped() -> None:
    core = ClientProtocol()
    rid = core.send(commands.ping())
    core.abandon(rid)
    assert core.receive_data(line({"ok": True, "rid": rid})) == []
    assert core.unanswered == 0
    assert sent(core) == [{"op": "PING", "rid": rid}]


def test_abandoning_a_waiting_get_cancels_it_and_releases_a_late_delivery() -> None:
    core = ClientProtocol()
    rid = core.send(commands.get("q", max=2, wait=5))
    core.data_to_send()
    core.abandon(rid)
    core.abandon(rid)  # twice: still one CANCEL
    [cancel] = sent(core)
    assert (cancel["op"], cancel["get"]) == ("CANCEL", rid)
    # The GET had taken two messages before the CANCEL reached the server.
    messages = [
        {"id": "m1", "queue": "q", "body": 1, "attempts": 1},
        {"id": "m2", "queue": "q", "body": 2, "attempts": 1},
    ]
    got = line({"ok": True, "rid": rid, "messages": messages})
    assert core.receive_data(got + line({"ok": True, "cancelled": 0, "rid": cancel["rid"]})) == []
    nacks = sent(core)
    assert [(n["op"], n["id"]) for n in nacks] == [("NACK", "m1"), ("NACK", "m2")]
    # the NACKs' own replies are dropped too
    assert core.receive_data(b"".join(line({"ok": True, "rid": n["rid"]}) for n in nacks)) == []
    assert core.unanswered == 0


def test_releases_go_out_at_once_and_after_the_cancel_of_an_abandoned_get() -> None:
    core = ClientProtocol()
    rid = core.send(commands.get("q", wait=30))
    core.data_to_send()
    core.abandon(rid)
    core.release(["m0"])  # not held back for the GET: the server ends it first
    assert [(r["op"], r.get("get", r.get("id"))) for r in sent(core)] == [
        ("CANCEL", rid),
        ("NACK", "m0"),
    ]
    assert core.receive_data(line({"ok": True, "messages": [], "rid": rid})) == []


def test_abandoning_a_get_that_does_not_wait_or_was_answered_sends_no_cancel() -> None:
    core = ClientProtocol()
    quick = core.send(commands.get("q"))
    waiting = core.send(commands.get("q", wait=5))
    core.data_to_send()
    core.abandon(quick)
    assert core.receive_data(line({"ok": True, "messages": [], "rid": waiting})) == [
        (waiting, {"ok": True, "messages": [], "rid": waiting})
    ]
    core.abandon(waiting)
    assert not core.wants_write


def test_release_delivery_nacks_what_an_unread_get_reply_leased() -> None:
    core = ClientProtocol()
    core.release_delivery({"ok": True, "messages": [{"id": "m1"}, {"id": "m2"}]})
    core.release_delivery({"ok": False, "error": "bad_request", "message": "x"})
    assert [(r["op"], r["id"]) for r in sent(core)] == [("NACK", "m1"), ("NACK", "m2")]


@pytest.mark.parametrize(
    "data",
    [
        b"not json\n",
        b"[1,2]\n",
        b'{"rid":1}\n',
        b'{"ok":"yes","rid":1}\n',
        b'{"ok":true,"rid":99}\n',
        b'{"ok":true,"rid":"1"}\n',
    ],
)
def test_malformed_replies_are_protocol_violations(data: bytes) -> None:
    core = ClientProtocol()
    core.send(commands.ping())
    with pytest.raises(ProtocolViolation):
        core.receive_data(data)


def test_empty_lines_are_ignored() -> None:
    core = ClientProtocol()
    rid = core.send(commands.ping())
    assert core.receive_data(b"\n  \r\n" + line({"ok": True, "rid": rid})) == [
        (rid, {"ok": True, "rid": rid})
    ]


def test_reply_longer_than_max_line_is_a_violation_even_before_its_newline() -> None:
    core = ClientProtocol(max_line=100)
    core.send(commands.ping())
    core.receive_data(b'{"ok":true,' + b" " * 50)
    with pytest.raises(ProtocolViolation, match="longer than 100"):
        core.receive_data(b" " * 50)


def test_random_garbage_parses_or_raises_protocol_violation_only() -> None:
    rng = random.Random(1234)
    alphabet = b'{}[]":,01 truefalsnokrid\n\\'
    for _ in range(500):
        core = ClientProtocol(max_line=64)
        for _ in range(3):
            core.send(commands.ping())
        garbage = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        try:
            for rid, reply in core.receive_data(garbage):
                assert isinstance(rid, int) and isinstance(reply["ok"], bool)
        except ProtocolViolation:
            pass


def test_builders_leave_out_what_the_server_defaults() -> None:
    assert commands.get("q") == {"op": "GET", "queue": "q"}
    assert commands.get("q", max=5, lease=0.5, wait=2) == {
        "op": "GET",
        "queue": "q",
        "max": 5,
        "lease": 0.5,
        "wait": 2,
    }
    assert commands.put("q", None) == {"op": "PUT", "queue": "q", "body": None}
    assert commands.put("q", 1, key="k", delay=0, priority=-1, max_attempts=2) == {
        "op": "PUT",
        "queue": "q",
        "body": 1,
        "key": "k",
        "delay": 0,
        "priority": -1,
        "max_attempts": 2,
    }
    assert commands.nack("m") == {"op": "NACK", "id": "m"}
    assert commands.touch("m", 3) == {"op": "TOUCH", "id": "m", "lease": 3}
    assert commands.stats() == {"op": "STATS"}


def test_put_many_treats_dicts_as_bodies_and_envelopes_as_options() -> None:
    request = commands.put_many("q", [{"key": "not an option"}, Envelope("b", key="k", delay=1.5)])
    assert msgspec.json.decode(msgspec.json.encode(request)) == {
        "op": "PUT",
        "queue": "q",
        "messages": [{"body": {"key": "not an option"}}, {"body": "b", "key": "k", "delay": 1.5}],
    }


def test_parsers_reject_replies_missing_their_fields() -> None:
    with pytest.raises(ProtocolViolation, match="'id'"):
        commands.parse_id({"ok": True})
    with pytest.raises(ProtocolViolation):
        commands.parse_messages({"ok": True, "messages": [{"id": "m"}]})
    with pytest.raises(ProtocolViolation):
        commands.parse_stats({"ok": True, "server": {}})
    assert commands.parse_dead({"ok": True}) is False
    assert commands.parse_dead({"ok": True, "dead": True}) is True
