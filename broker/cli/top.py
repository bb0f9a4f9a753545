"""``wonderq top``: a live terminal dashboard of the broker's queues.

Owns: the terminal (rich ``Live`` on the alternate screen, stdin in cbreak
mode so ``q`` quits without Enter), the refresh pace, and the connection: one
STATS request per refresh over the bundled client's blocking connection. When
the broker cannot be reached the dashboard says "DISCONNECTED", keeps the last
figures, and dials again on every refresh, so it outlives a broker restart.
Must never: import the server, or retry faster than the refresh interval.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from broker.cli.target import (
    EXIT_USAGE,
    Target,
    UsageError,
    add_target_flags,
    explain,
    target_from,
)
from broker.tools import ToolsMissing, require_tools
from wonderq import commands
from wonderq.errors import WonderQError
from wonderq.sync import SyncConnection

if TYPE_CHECKING:
    from broker.cli.dashboard import Dashboard


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "top",
        description=(
            "One row per queue with ready, delayed, leased and dead "
            "messages, waiting consumers, put/s and ack/s, the age of the oldest ready "
            "message, a sparkline of depth over the last minute, and which queues are "
            "paused or rate limited. It keeps running while the broker restarts."
        ),
    )
    add_target_flags(p)
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between refreshes (default 1)"
    )
    p.set_defaults(run=run)


class Poller:
    """One STATS per call over a blocking connection, dialled again after any failure."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._conn: SyncConnection | None = None

    def poll(self, board: Dashboard) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self.target.raw(self.timeout_s)
            reply = self._conn.call(commands.stats())
        except WonderQError as exc:
            self.close()
            board.lost(explain(self.target, exc))
        else:
            board.update(reply)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextlib.contextmanager
def keyboard() -> Iterator[Any]:
    """Yield ``wait(seconds) -> str``: keys typed within that time ('' if none).

    On a terminal, stdin is put in cbreak mode (keys arrive without Enter; Ctrl-C
    still interrupts) and restored on exit; elsewhere ``wait`` just waits.
    """
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    if fd is None:

        def pause(seconds: float) -> str:
            time.sleep(max(0.0, seconds))  # the refresh pace: nothing to wait for
            return ""

        yield pause
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(seconds: float) -> str:
        ready, _, _ = select.select([fd], [], [], max(0.0, seconds))
        return os.read(fd, 64).decode(errors="replace") if ready else ""

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(args: argparse.Namespace) -> int:
    try:
        require_tools("wonderq top", "rich")
        if not args.interval > 0:
            raise UsageError("--interval must be > 0")
        target = target_from(args)
    except (ToolsMissing, UsageError) as exc:
        print(f"wonderq top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from rich.console import Console
    from rich.live import Live

    from broker.cli.dashboard import Dashboard

    board = Dashboard(target=target.where, interval_s=args.interval)
    poller = Poller(target, timeout_s=max(0.5, min(args.interval, 5.0)))
    console = Console()
    try:
        with (
            keyboard() as wait,
            Live(console=console, screen=True, auto_refresh=False) as live,
        ):
            next_at = time.monotonic()
            while True:
                poller.poll(board)
                live.update(board.render(console.width, console.height), refresh=True)
                next_at = max(next_at + args.interval, time.monotonic())
                while (left := next_at - time.monotonic()) > 0:
                    if "q" in wait(left).lower():
                        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        poller.close()
