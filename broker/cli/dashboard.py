"""The dashboard of ``wonderq top`` and the tables of ``stats``, ``peek`` and ``info``.

Owns: turning STATS replies into what an operator reads: per-queue rates from
the deltas of two replies (timed by the server's own ``uptime``, so a recorded
sequence renders the same anywhere), a depth sparkline over the last minute,
and rich renderables sized for an 80x24 terminal. Every figure shown is a STATS
field or computed from STATS fields, never from another source.
Must never: do IO or read a clock (the caller feeds replies and says when the
broker was last reached); ``top`` owns the terminal and the connection.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from broker.protocol.names import DEAD_SUFFIX

SPARK: Final = "▁▂▃▄▅▆▇█"
HISTORY_S: Final = 60.0  # the sparkline covers this much
SPARK_MIN: Final = 8  # narrowest sparkline column
#: STATS server fields the header shows by name; any other numeric field (the
#: durable log's figures, for one) is shown too, after these
SERVER_KNOWN: Final = frozenset(
    {
        "version",
        "uptime",
        "started_at",
        "connections",
        "queues",
        "messages",
        "leased",
        "bytes",
        "rss",
    }
)
# the durability section ("durability": {"log_bytes": ..., "unwritten_bytes": ...}) adds
# "log <size>" to the header, and "unwritten <size>" while the log lags
HEADER_LINES: Final = 3  # header, status, blank
TABLE_CHROME: Final = 2  # column titles and their rule


# ------------------------------------------------------------------ formatting


def count(n: float | None) -> str:
    """A compact count: 987, 9999, 12.3k, 4.56M."""
    if n is None:
        return "-"
    n = float(n)
    if abs(n) < 10_000:
        return f"{n:.0f}" if n == int(n) else f"{n:.1f}"
    for limit, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        value = n / limit
        if abs(value) < 999.5 or suffix == "G":
            return f"{value:.3g}{suffix}" if abs(value) < 999.5 else f"{value:.0f}{suffix}"
    raise AssertionError("unreachable")


def rate(per_s: float | None) -> str:
    if per_s is None:
        return "-"
    if per_s < 10:
        return f"{per_s:.1f}"
    return count(round(per_s))


def size(n: float | None) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 31.2 MiB."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(seconds: float | None) -> str:
    """A short duration: 0.4s, 12s, 5m07s, 3h20m, 2d04h."""
    if seconds is None:
        return "-"
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.1f}s"
    whole = int(s)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def sparkline(values: Sequence[float], width: int, window: int | None = None) -> str:
    """``values`` (oldest first) as ``width`` bars, each the max of ``window / width`` samples.

    Buckets are counted from the newest sample, so a bar covers the same samples
    from one refresh to the next, and the line fills in from the right. Bars are
    scaled to the largest value shown; zero is the baseline.
    """
    if width <= 0 or not values:
        return ""
    per = max(1, math.ceil((window or len(values)) / width))
    buckets = [max(values[max(0, end - per) : end]) for end in range(len(values), 0, -per)][:width][
        ::-1
    ]
    top = max(buckets)
    chars = "".join(
        SPARK[max(1, min(7, math.ceil(v / top * 7)))] if v > 0 else SPARK[0] for v in buckets
    )
    return chars.rjust(width)


def body_preview(body: Any, width: int) -> str:
    """A message body on one line, cut to ``width`` characters."""
    import msgspec

    text = body if isinstance(body, str) else msgspec.json.encode(body).decode()
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


# ----------------------------------------------------------------------- model


@dataclass(slots=True)
class QueueRow:
    name: str
    stats: Mapping[str, Any]
    put_rate: float | None
    ack_rate: float | None
    history: Sequence[float]
    window: int = 60  # samples the sparkline spans

    @property
    def depth(self) -> int:
        return int(self.stats["ready"]) + int(self.stats["delayed"]) + int(self.stats["leased"])


@dataclass
class Dashboard:
    """What ``wonderq top`` shows, fed one STATS reply per refresh.

    ``update(reply)`` with each reply; ``lost(reason)`` when the broker cannot be
    reached (the last figures stay, marked stale). A reply whose ``uptime`` went
    back (the broker restarted) resets the rates; depth history is kept, so
    the sparkline shows the restart.
    """

    target: str = ""
    interval_s: float = 1.0
    stats: Mapping[str, Any] | None = None
    previous: Mapping[str, Any] | None = None
    error: str | None = None
    history: dict[str, deque[float]] = field(default_factory=dict)
    restarts: int = 0

    @property
    def history_len(self) -> int:
        return max(2, math.ceil(HISTORY_S / max(self.interval_s, 0.01)))

    def update(self, reply: Mapping[str, Any]) -> None:
        previous = self.stats
        if previous is not None and _restarted(previous["server"], reply["server"]):
            previous = None
            self.restarts += 1
        self.previous, self.stats, self.error = previous, reply, None
        for name, q in reply["queues"].items():
            line = self.history.get(name)
            if line is None:
                line = self.history[name] = deque(maxlen=self.history_len)
            line.append(float(q["ready"] + q["delayed"] + q["leased"]))
        for name in self.history.keys() - reply["queues"].keys():
            self.history[name].append(0.0)  # gone after a restart: depth 0

    def lost(self, reason: str) -> None:
        self.error = reason

    def _rate(self, name: str, counter: str) -> float | None:
        if self.previous is None or self.stats is None:
            return None
        before = self.previous["queues"].get(name)
        if before is None:
            return None
        dt = float(self.stats["server"]["uptime"]) - float(self.previous["server"]["uptime"])
        if dt <= 0:
            return None
        delta = float(self.stats["queues"][name][counter]) - float(before[counter])
        return max(0.0, delta / dt)

    def rows(self) -> list[QueueRow]:
        """One row per queue, ``<queue>.dead`` folded into its queue's ``dead`` column."""
        if self.stats is None:
            return []
        queues: Mapping[str, Mapping[str, Any]] = self.stats["queues"]
        out: list[QueueRow] = []
        for name in sorted(queues):
            if name.endswith(DEAD_SUFFIX) and name[: -len(DEAD_SUFFIX)] in queues:
                continue
            out.append(
                QueueRow(
                    name,
                    queues[name],
                    self._rate(name, "put"),
                    self._rate(name, "acked"),
                    list(self.history.get(name, ())),
                    self.history_len,
                )
            )
        return out

    # --------------------------------------------------------------- rendering

    def render(self, width: int = 80, height: int = 24) -> RenderableType:
        rows = self.rows()
        room = max(1, height - HEADER_LINES - TABLE_CHROME - 1)
        hidden = 0
        if len(rows) > room:
            hidden = len(rows) - (room - 1)
            rows = rows[: room - 1]
        table = queue_table(rows, width=width, rates=True, spark=True, stale=self.error is not None)
        parts: list[RenderableType] = [*self._header(width), table]
        if hidden:
            parts.append(Text(f"  … {hidden} more queue(s); widen the terminal", style="dim"))
        elif not rows:
            parts.append(Text("  no queues yet", style="dim"))
        return Group(*parts)

    def _header(self, width: int) -> list[RenderableType]:
        """Title and connection status; the server's figures; a blank line."""
        title = Text()
        title.append("WonderQ", style="bold")
        figures = Text("")
        if self.stats is not None:
            title.append(f" {self.stats['server'].get('version', '?')}")
            figures = Text(server_line(self.stats["server"]))
        title.append(f" @ {self.target}  ")
        if self.error is not None:
            what = "DISCONNECTED" if self.stats is not None else "connecting"
            title.append(f"{what}, retrying every {self.interval_s:g}s", style="bold red")
            figures = Text(self.error, style="red")
        elif self.stats is None:
            title.append("connecting…", style="yellow")
        else:
            title.append(f"connected · every {self.interval_s:g}s · q quits", style="green")
            if self.restarts:
                title.append(f" · restarted {self.restarts}x", style="yellow")
        for line in (title, figures):
            line.truncate(width, overflow="ellipsis")
        return [title, figures, Text("")]


def _restarted(before: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """The broker behind two STATS replies restarted in between: its start time changed
    (or, from a broker that does not say it, its uptime went back)."""
    if "started_at" in before and "started_at" in now:
        return bool(before["started_at"] != now["started_at"])
    return bool(now["uptime"] < before["uptime"])


def server_line(server: Mapping[str, Any]) -> str:
    """``up 1h02m  conns 3  msgs 120  leased 4  rss 31.2 MiB`` plus any extra figures."""
    parts = [
        f"up {age(server.get('uptime'))}",
        f"conns {count(server.get('connections'))}",
        f"msgs {count(server.get('messages'))}",
        f"leased {count(server.get('leased'))}",
        f"held {size(server.get('bytes'))}",
    ]
    if server.get("rss") is not None:
        parts.append(f"rss {size(server['rss'])}")
    durability = server.get("durability")
    if isinstance(durability, Mapping) and durability.get("log_bytes") is not None:
        parts.append(f"log {size(durability['log_bytes'])}")
        if durability.get("unwritten_bytes"):
            parts.append(f"unwritten {size(durability['unwritten_bytes'])}")
    for name, value in server.items():
        if name in SERVER_KNOWN or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        shown = size(value) if name.endswith(("bytes", "size")) else count(value)
        parts.append(f"{name.replace('_', ' ')} {shown}")
    return "  ".join(parts)


def queue_table(
    rows: Sequence[QueueRow],
    *,
    width: int = 80,
    rates: bool = True,
    spark: bool = False,
    totals: bool = False,
    stale: bool = False,
) -> Table:
    """The per-queue table: sizes, waiting consumers, rates, oldest ready age, sparkline."""
    table = Table(
        box=box.SIMPLE_HEAD,
        padding=0,
        pad_edge=False,
        show_edge=False,
        expand=False,
        style="dim" if stale else "",
    )
    numeric = [("ready", 5), ("delayed", 7), ("leased", 6), ("dead", 5), ("wait", 4)]
    if rates:
        numeric += [("put/s", 5), ("ack/s", 5)]
    numeric += [("oldest", 6)]
    if totals:
        numeric += [("put", 5), ("acked", 5), ("nacked", 6), ("expired", 7)]
    numbers_width = sum(max(w, len(title)) + 1 for title, w in numeric)  # +1: the separator
    spark_width = SPARK_MIN if spark else 0
    # the queue column takes what is left, up to 24 characters (then an ellipsis)
    name_width = min(24, max([5, *(len(row.name) for row in rows)]))
    name_width = max(5, min(name_width, width - numbers_width - spark_width - 1))
    table.add_column("queue", no_wrap=True, overflow="ellipsis", width=name_width)
    for title, min_width in numeric:
        table.add_column(title, justify="right", no_wrap=True, min_width=min_width)
    if spark:
        spark_width = max(SPARK_MIN, min(60, width - name_width - numbers_width - 1))
        table.add_column("depth 1m", no_wrap=True, width=spark_width)
    for row in rows:
        q = row.stats
        cells: list[RenderableType] = [
            row.name,
            count(q["ready"]),
            count(q["delayed"]),
            count(q["leased"]),
            Text(count(q["dead"]), style="red" if q["dead"] else ""),
            count(q["waiting_consumers"]),
        ]
        if rates:
            cells += [rate(row.put_rate), rate(row.ack_rate)]
        cells.append(age(q["oldest_ready_age"]))
        if totals:
            cells += [count(q["put"]), count(q["acked"]), count(q["nacked"]), count(q["expired"])]
        if spark:
            cells.append(Text(sparkline(row.history, spark_width, row.window), style="cyan"))
        table.add_row(*cells)
    return table


def stats_table(reply: Mapping[str, Any], later: Mapping[str, Any] | None = None) -> Group:
    """``wonderq stats``: the server line and one row per queue with totals.

    With ``later`` (a second reply), put/s and ack/s come from the deltas.
    """
    board = Dashboard()
    board.update(reply)
    if later is not None:
        board.update(later)
    current = board.stats
    assert current is not None
    header = Text(f"WonderQ {current['server'].get('version', '?')}  ", style="bold")
    header.append(server_line(current["server"]), style="")
    table = queue_table(board.rows(), rates=later is not None, totals=later is None)
    return Group(header, table)


def connections_table(connections: Sequence[Mapping[str, Any]]) -> Table:
    """``stats --connections``: one row per open connection."""
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    table.add_column("connection", no_wrap=True)
    for title in ("leases", "waiting", "requests"):
        table.add_column(title, justify="right", no_wrap=True)
    for c in connections:
        table.add_row(
            str(c["address"]), count(c["leases"]), count(c["waiting"]), count(c["requests"])
        )
    return table


def info_table(message: Mapping[str, Any]) -> Table:
    """``wonderq info``: one field per line, the body last and in full."""
    table = Table(box=None, show_header=False, padding=(0, 1, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name in ("id", "queue", "state", "key", "priority", "attempts", "max_attempts"):
        if message.get(name) is not None:
            table.add_row(name, str(message[name]))
    if message.get("age") is not None:
        table.add_row("age", age(message["age"]))
    for name in ("lease_left", "delay_left"):
        if message.get(name) is not None:
            table.add_row(name.replace("_", " "), age(message[name]))
    if message.get("holder") is not None:
        table.add_row("holder", str(message["holder"]))
    if "body" in message and message.get("state") != "acked":
        import msgspec

        body = message["body"]
        table.add_row("body", body if isinstance(body, str) else msgspec.json.encode(body).decode())
    return table


def peek_table(messages: Sequence[Mapping[str, Any]], total: int) -> Group:
    """``wonderq peek``: one line per message, the body cut to fit the terminal."""
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False, expand=True)
    for title, justify in (
        ("id", "left"),
        ("state", "left"),
        ("att", "right"),
        ("key", "left"),
        ("age", "right"),
        ("left", "right"),
        ("holder", "left"),
    ):
        table.add_column(title, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("body", no_wrap=True, overflow="ellipsis", ratio=1, min_width=8)
    for m in messages:
        left = m.get("lease_left", m.get("delay_left"))
        table.add_row(
            str(m["id"]),
            str(m["state"]),
            f"{m['attempts']}/{m['max_attempts']}",
            str(m.get("key") or ""),
            age(m.get("age")),
            age(left) if left is not None else "",
            str(m.get("holder") or ""),
            body_preview(m.get("body"), 400),
        )
    note = Text(f"{len(messages)} of {total} shown", style="dim")
    return Group(table, note)
