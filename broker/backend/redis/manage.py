"""Queue management on the Redis backend: PURGE, REDRIVE, REMOVE, DELETE, PAUSE,
RESUME and CONFIG.

Owns: building these requests' library ops (ids sorted into this queue's tag
and foreign ones, which cannot be in it) and their replies, with the in-memory
backend's error words.
Must never: wait for Redis itself (``Calls`` does), or touch a tag other than
the queue's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from broker.backend.redis import wire
from broker.backend.redis.stats import effective
from broker.protocol import replies as rp
from broker.protocol import requests as rq

if TYPE_CHECKING:
    from broker.backend.redis.handlers import Handlers
    from broker.backend.redis.owners import Owner, Slot

#: CONFIG's fields, as the library names them
_SETTING_NAMES: Final = {
    "lease": "lease",
    "max_attempts": "matt",
    "max_length": "mlen",
    "rate": "rate",
    "dedup_window": "dwin",
}


class Manage:
    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers
        self.b = handlers.b
        self.config = handlers.config

    def purge(self, owner: Owner, req: rq.Purge, slot: Slot) -> object:
        return self.h.op(
            wire.tag_of(req.queue),
            ["purge", req.queue],
            slot,
            lambda res, _: rp.PurgeReply(purged=res[1]),
        )

    def _sort_ids(
        self, queue: str, ids: list[str]
    ) -> tuple[str, list[str], dict[str, str], list[str]]:
        """(tag, seqs of ours to send, seq -> id text, ids that cannot be in ``queue``)."""
        self.h.max_batch(len(ids), "ids")
        tag = wire.tag_of(queue)
        seqs: list[str] = []
        texts: dict[str, str] = {}
        foreign: list[str] = []
        for text in ids:
            parts = wire.split_id(text)
            if parts is None or parts[0] != tag:
                foreign.append(text)
            else:
                seqs.append(parts[1])
                texts[parts[1]] = text
        return tag, seqs, texts, foreign

    def redrive(self, owner: Owner, req: rq.Redrive, slot: Slot) -> object:
        queue = req.queue
        tag = wire.tag_of(queue)
        if req.ids is None:
            return self.h.op(
                tag,
                ["redrive", queue, False],
                slot,
                lambda res, _: rp.RedriveReply(redriven=res[1]),
            )
        ids = req.ids
        tag, seqs, texts, foreign = self._sort_ids(queue, ids)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            leased, missing = _in_order(ids, texts, res[2], res[3], foreign)
            return rp.RedriveReply(redriven=res[1], leased=leased, not_found=missing)

        return self.h.op(tag, ["redrive", queue, seqs], slot, convert)

    def remove(self, owner: Owner, req: rq.Remove, slot: Slot) -> object:
        queue = req.queue
        ids = req.ids
        tag, seqs, texts, foreign = self._sort_ids(queue, ids)

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.no_queue(queue)
            leased, missing = _in_order(ids, texts, res[2], res[3], foreign)
            return rp.RemoveReply(removed=res[1], leased=leased, not_found=missing)

        return self.h.op(tag, ["remove", queue, seqs], slot, convert)

    def delete(self, owner: Owner, req: rq.Delete, slot: Slot) -> object:
        queue = req.queue

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.no_queue(queue)
            return rp.DeleteReply(deleted=res[1])

        return self.h.op(wire.tag_of(queue), ["delete", queue, req.dead], slot, convert)

    def pause(self, owner: Owner, req: rq.Pause, slot: Slot) -> object:
        tag = wire.tag_of(req.queue)
        return self.h.op(tag, ["pause", req.queue], slot, lambda res, _: rp.OK)

    def resume(self, owner: Owner, req: rq.Resume, slot: Slot) -> object:
        queue = req.queue

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.no_queue(queue)
            return rp.OK

        return self.h.op(wire.tag_of(queue), ["resume", queue], slot, convert)

    def configure(self, owner: Owner, req: rq.Configure, slot: Slot) -> object:
        queue = req.queue
        tag = wire.tag_of(queue)
        changes: dict[str, Any] = {}
        for field in rq.SETTING_FIELDS:
            value = getattr(req, field)
            if value is not msgspec.UNSET:
                changes[_SETTING_NAMES[field]] = False if value is None else value

        def convert(res: Any, bodies: list[bytes]) -> rp.Reply:
            if wire.failed(res):
                raise wire.no_queue(queue)
            return rp.ConfigReply(settings=effective(self.config, wire.settings(res[1])))

        return self.h.op(tag, ["config", queue, changes], slot, convert)


def _in_order(
    ids: list[str], texts: dict[str, str], leased: list[str], missing: list[str], foreign: list[str]
) -> tuple[list[str], list[str]]:
    """The ``leased`` and ``not_found`` lists of REDRIVE/REMOVE, in the order ids were given."""
    leased_ids = {texts[s] for s in leased}
    missing_ids = {texts[s] for s in missing} | set(foreign)
    return [t for t in ids if t in leased_ids], [t for t in ids if t in missing_ids]
