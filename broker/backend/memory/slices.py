"""Long PURGE, REDRIVE and DELETE run a slice at a time, the loop free between two slices.

Owns: driving the engine's sliced jobs (engine/sliced.py) on the event loop.
A job's first slice runs inside the request's batch; a job that is not done
then goes on in later slices, one per turn of the loop (``call_soon``), each
at most ``SLICE_S`` of steps of ``STEP`` messages, so every other connection
is served in between and no slice holds the loop for long. Its request is
answered when the job ends; the requests after it in its batch run after
that, in order (``Batch``: the rest of the batch, and the future the
connection awaits, as it awaits a durable batch). Deliveries and the timer
are brought up to date after each slice.
Must never: run a slice longer than about ``SLICE_S`` plus one step, run the
requests after a job before it ends, or leave a future unresolved at stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Final

from broker.backend.base import Replies
from broker.engine.sliced import Delete, Sliced
from broker.protocol import replies as rp
from broker.protocol import requests as rq

#: loop time one slice of a job may take (its last step may end a little later)
SLICE_S: Final = 0.005
#: messages one step of a job looks at
STEP: Final = 1000


class Running:
    """A handler's answer when its job goes on after the first slice: its reply comes
    from ``reply()`` once ``job`` is finished."""

    __slots__ = ("job", "reply")

    def __init__(self, job: Sliced | Delete, reply: Callable[[], rp.Reply]) -> None:
        self.job = job
        self.reply = reply


class GoesOn(Exception):
    """Raised by a handler whose job goes on after its first slice: the batch stops there
    (an exception costs the batch loop nothing until one is raised)."""

    def __init__(self, running: Running) -> None:
        super().__init__()
        self.running = running


def run_slice(job: Sliced | Delete, now: float) -> bool:
    """Steps of ``job`` for at most ``SLICE_S`` (at least one); True once it is finished."""
    started = perf_counter()
    while not job.step(now, STEP):
        if perf_counter() - started >= SLICE_S:
            return False
    return True


class Batch:
    """The rest of a batch behind a running job: its replies so far, where it stopped,
    and the future its connection awaits."""

    __slots__ = ("future", "owner", "replies", "requests", "running", "slot")

    def __init__(
        self,
        owner: object,
        requests: Sequence[rq.AnyRequest],
        replies: Replies,
        running: Running,
        future: asyncio.Future[Replies],
    ) -> None:
        self.owner = owner
        self.requests = requests
        self.replies = replies
        self.slot = len(replies)  # the running request's: its reply, when its job ends
        self.running: Running | None = running
        self.future = future
        replies.append(None)
