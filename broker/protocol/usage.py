"""What every op is for and how to type it: the one table HELP, the shorthand and errors read.

Owns: for each op of protocol.md section 4, its telnet shorthand (the positional
arguments, how many are required, whether the last one repeats or takes the
rest of the line) and a one-line summary. ``HELP`` answers from it; the
shorthand parser takes its arguments from it and quotes its usage line when a
line has too few or too many; an unknown op's error lists its names.
Must never: import the rest of the broker, or judge argument values (the typed
decoder does, with the same messages for JSON and shorthand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Usage:
    """One op's shorthand and summary.

    ``args`` are the request fields the words after the op fill, in order;
    the first ``required`` must be given. ``repeats``: the last one may be given
    many times (ids). ``rest``: the last one takes the rest of the line (a body).
    """

    args: tuple[str, ...]
    required: int
    summary: str
    repeats: bool = False
    rest: bool = False

    def line(self, op: str) -> str:
        """The usage line, e.g. ``GET <queue> [<max> [<lease> [<wait>]]]``."""
        words = [op]
        optional = 0
        for i, name in enumerate(self.args):
            last = i == len(self.args) - 1
            shown = f"<{shown_name(name)}{'...' if self.rest and last else ''}>"
            if i < self.required:
                words.append(shown)
                if last and self.repeats:
                    words.append(f"[{shown}...]")
            elif last and self.repeats:
                words.append(f"[{shown}...]")
            else:
                words.append(f"[{shown}")
                optional += 1
        return " ".join(words) + "]" * optional

    def help_line(self, op: str) -> str:
        """What HELP says of the op: its usage line, then what it does."""
        return f"{self.line(op)}: {self.summary}"


#: how a field is named in a usage line, where its wire name would puzzle
_SHOWN: Final = {"get": "rid"}


def shown_name(field: str) -> str:
    """A request field as a usage line names it (CANCEL's ``get`` is a ``rid``)."""
    return _SHOWN.get(field, field)


#: every op, in the order of protocol.md section 4
USAGE: Final[dict[str, Usage]] = {
    "PUT": Usage(
        ("queue", "body"),
        2,
        "add a message (the rest of the line is its body: JSON if it parses, else a string); "
        "JSON adds key, delay, priority, max_attempts, dedup, headers, or a batch in messages",
        rest=True,
    ),
    "GET": Usage(
        ("queue", "max", "lease", "wait"),
        1,
        "lease up to max messages (default 1) for lease seconds, waiting up to wait seconds",
    ),
    "ACK": Usage(("id",), 1, "delete leased messages: the work is done", repeats=True),
    "NACK": Usage(("id", "delay"), 1, "give a leased message back, ready again after delay s"),
    "TOUCH": Usage(("id", "lease"), 1, "extend a lease to lease seconds from now"),
    "INFO": Usage(("id",), 1, "show one message and its state, changing nothing"),
    "STATS": Usage(("queue",), 0, "counters of the server and of every queue (or one)"),
    "PEEK": Usage(
        ("queue", "state", "limit"),
        1,
        "list a queue's messages without leasing them (state: ready, delayed, leased or dead)",
    ),
    "QUEUES": Usage((), 0, "the names of all queues"),
    "PURGE": Usage(("queue",), 1, "delete a queue's ready and delayed messages"),
    "REDRIVE": Usage(
        ("queue", "id"),
        1,
        "move the messages of <queue>.dead (or the ids named) back to the queue",
        repeats=True,
    ),
    "REMOVE": Usage(
        ("queue", "id"),
        2,
        "delete the named ready or delayed messages of a queue (never a leased one)",
        repeats=True,
    ),
    "DELETE": Usage(
        ("queue",), 1, "delete a queue and all its messages (JSON: dead true deletes <queue>.dead)"
    ),
    "PAUSE": Usage(("queue",), 1, "stop a queue's deliveries; PUTs and leases go on"),
    "RESUME": Usage(("queue",), 1, "restart a paused queue's deliveries"),
    "CONFIG": Usage(
        ("queue",),
        1,
        "read a queue's settings (JSON sets lease, max_attempts, max_length, rate, "
        "dedup_window; null resets one)",
    ),
    "AUTH": Usage(("token",), 1, "authenticate with the server's token"),
    "CANCEL": Usage(("get",), 1, "end this connection's waiting GET whose rid this is"),
    "PING": Usage((), 0, "check the connection"),
    "QUIT": Usage((), 0, "close the connection (its leases are released)"),
    "HELP": Usage((), 0, "this list"),
}


def op_list() -> str:
    """The op names for an error message: ``ACK, AUTH, ...`` (sorted)."""
    return ", ".join(sorted(USAGE))
