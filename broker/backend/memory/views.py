"""Typed replies made of engine values, and requests made into engine arguments.

Owns: how a leased message becomes a ``Delivered`` of a GET reply, a held
message an INFO or PEEK ``MessageView`` (``describe``), a queue's settings
CONFIG's reply or STATS' overrides, and a CONFIG request the engine's
changes (wire names to engine names: durations end in ``_s``).
Must never: change engine state, or encode wire bytes (the protocol layer does).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Final

import msgspec

from broker.engine import STATE_NAMES, Effective, Message, Picked, Settings, State, format_id
from broker.protocol import replies as rp
from broker.protocol import requests as rq

_DEDUP: Final = attrgetter("dedup")
_HEADERS: Final = attrgetter("headers")
#: the settings whose engine names differ from their wire names (durations end in _s)
_ENGINE_NAMES: Final = {"lease": "lease_s", "dedup_window": "dedup_window_s"}
_WIRE_NAMES: Final = {engine: wire for wire, engine in _ENGINE_NAMES.items()}


def get_reply(msgs: list[Message]) -> rp.GetReply:
    """A GET's reply: the messages it leased (the one empty reply if none).

    Each ``Delivered`` is built from its four fields always present (a keyword
    argument costs as much as setting a field), its key and headers set only when it
    has them; the id is spelled as ``format_id`` does, without its call."""
    if not msgs:
        return rp.EMPTY_GET
    delivered = rp.Delivered
    raw = msgspec.Raw
    out: list[rp.Delivered] = []
    append = out.append
    for m in msgs:
        d = delivered(id=f"{m.seq:x}", queue=m.queue.name, body=raw(m.body), attempts=m.attempts)
        if m.key is not None:
            d.key = m.key
        if m.headers is not None:
            d.headers = m.headers
        append(d)
    return rp.GetReply(messages=out)


def has_extras(items: list[rq.PutItem]) -> bool:
    """Whether any item of a batch PUT has a dedup id or headers (two C-level passes)."""
    return any(map(_DEDUP, items)) or any(map(_HEADERS, items))


def settings_reply(values: Effective) -> rp.QueueSettings:
    """CONFIG's reply: every setting a queue works with (None: no limit)."""
    return rp.QueueSettings(
        lease=values.lease_s,
        max_attempts=values.max_attempts,
        max_length=values.max_length,
        rate=values.rate,
        dedup_window=values.dedup_window_s,
    )


def overrides(settings: Settings) -> rp.QueueSettings:
    """STATS' ``settings``: only those that differ from the server's defaults."""
    wire = {_WIRE_NAMES.get(name, name): value for name, value in settings.overrides().items()}
    return rp.QueueSettings(**wire)


def changes(req: rq.Configure) -> dict[str, Any]:
    """The settings a CONFIG sets (a value) or resets (None), by their engine names."""
    out: dict[str, Any] = {}
    for name in rq.SETTING_FIELDS:
        value = getattr(req, name)
        if value is not msgspec.UNSET:
            out[_ENGINE_NAMES.get(name, name)] = value
    return out


def not_found(picked: Picked, unparsable: list[str]) -> list[str]:
    """The ids REMOVE or REDRIVE did not find, in the order given, then those not ours."""
    return [format_id(s) for s in picked.not_found] + unparsable


def describe(msg: Message, now: float) -> rp.MessageView:
    """INFO's view of a held message (never changes state)."""
    state = STATE_NAMES[msg.state]
    if msg.queue.is_dead and msg.state == State.READY:
        state = "dead"
    out = rp.MessageView(
        id=format_id(msg.seq),
        queue=msg.queue.name,
        state=state,  # type: ignore[arg-type]  # one of MessageState
        attempts=msg.attempts,
        max_attempts=msg.max_attempts,
        priority=msg.priority,
        age=round(now - msg.put_at, 6),
        body=msgspec.Raw(msg.body),
    )
    if msg.key is not None:
        out.key = msg.key
    if msg.headers is not None:
        out.headers = msg.headers
    if msg.state == State.LEASED:
        out.lease_left = round(max(0.0, msg.due_at - now), 6)
    elif msg.state == State.DELAYED:
        out.delay_left = round(max(0.0, msg.due_at - now), 6)
    return out
