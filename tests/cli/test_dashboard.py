"""The dashboard rendered from a recorded STATS sequence: columns, rates, sparkline, states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from broker.cli.dashboard import (
    Dashboard,
    age,
    count,
    info_table,
    peek_table,
    rate,
    sparkline,
    stats_table,
)

QUEUE_ZERO = {
    "ready": 0,
    "delayed": 0,
    "leased": 0,
    "dead": 0,
    "waiting_consumers": 0,
    "bytes": 0,
    "oldest_ready_age": None,
    "put": 0,
    "acked": 0,
    "nacked": 0,
    "expired": 0,
    "released_on_disconnect": 0,
    "dead_lettered": 0,
    "redriven": 0,
    "purged": 0,
}


def reply(uptime: float, queues: dict[str, dict[str, Any]], **server: Any) -> dict[str, Any]:
    queues = {name: {**QUEUE_ZERO, **q} for name, q in queues.items()}
    return {
        "ok": True,
        "server": {
            "version": "0.1.0",
            "uptime": uptime,
            "connections": 3,
            "queues": len(queues),
            "messages": sum(q["ready"] + q["delayed"] + q["leased"] for q in queues.values()),
            "leased": sum(q["leased"] for q in queues.values()),
            "bytes": 2048,
            "rss": 31 * 1024 * 1024,
            **server,
        },
        "queues": queues,
    }


def recorded() -> list[dict[str, Any]]:
    """Ten seconds of a queue filling then draining, as STATS saw it (one reply a second)."""
    out = []
    put = acked = 0
    depth = 0
    for second in range(10):
        if second < 5:
            put += 200
            acked += 50
        else:
            put += 0
            acked += 150
        depth = put - acked
        out.append(
            reply(
                100.0 + second,
                {
                    "jobs": {
                        "ready": max(0, depth - 4),
                        "leased": min(4, depth),
                        "waiting_consumers": 0 if depth else 2,
                        "oldest_ready_age": 1.25 if depth > 4 else None,
                        "put": put,
                        "acked": acked,
                        "dead": 2,
                    },
                    "jobs.dead": {"ready": 2},
                    "mail": {"delayed": 7, "put": 7},
                },
            )
        )
    return out


def text(board: Dashboard, width: int = 80, height: int = 24) -> str:
    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(board.render(width, height))
    return console.export_text()


def row(screen: str, name: str) -> list[str]:
    line = next(line for line in screen.splitlines() if line.startswith(name + " "))
    return line.split()


def test_rates_come_from_stats_deltas_and_every_column_matches_stats() -> None:
    board = Dashboard(target="127.0.0.1:7878")
    sequence = recorded()
    board.update(sequence[0])
    first = text(board)
    assert row(first, "jobs")[6:8] == ["-", "-"]  # one sample: no rates yet
    for stats in sequence[1:4]:
        board.update(stats)
    screen = text(board)
    cells = row(screen, "jobs")
    jobs = sequence[3]["queues"]["jobs"]
    assert cells[:6] == ["jobs", str(jobs["ready"]), "0", "4", "2", "0"]
    assert cells[6:9] == ["200", "50", "1.2s"]  # put/s, ack/s, oldest ready age
    assert row(screen, "mail")[1:6] == ["0", "7", "0", "0", "0"]
    assert "jobs.dead" not in screen  # folded into the dead column of jobs
    header = screen.splitlines()[:2]
    assert header[0].startswith("WonderQ 0.1.0 @ 127.0.0.1:7878  connected")
    assert header[1].split("  ") == [
        "up 1m43s",
        "conns 3",
        f"msgs {sequence[3]['server']['messages']}",
        "leased 4",
        "held 2.0 KiB",
        "rss 31.0 MiB",
    ]
    titles = next(line for line in screen.splitlines() if line.startswith("queue"))
    assert titles.split() == [
        "queue",
        "ready",
        "delayed",
        "leased",
        "dead",
        "wait",
        "put/s",
        "ack/s",
        "oldest",
        "depth",
        "1m",
    ]
    assert all(len(line) <= 80 for line in screen.splitlines())
    assert len(screen.splitlines()) <= 24


def test_draining_shows_in_rates_and_sparkline() -> None:
    board = Dashboard()
    for stats in recorded():
        board.update(stats)
    cells = row(text(board), "jobs")
    assert cells[6:9] == ["0.0", "150", "-"]  # draining: nothing put, 150 acked a second
    assert cells[5] == "2" and cells[1] == "0"  # empty: two consumers wait
    assert list(board.history["jobs"]) == [150, 300, 450, 600, 750, 600, 450, 300, 150, 0]
    # ten samples of a one-minute window: a few bars on the right, rising then falling
    bars = cells[-1]
    assert 1 < len(bars) < 10 and bars[0] != "█" and bars[-1] != "█" and "█" in bars


def test_sparkline_scales_to_its_window_and_buckets_from_the_newest() -> None:
    assert sparkline([0, 0, 0], 5) == "  ▁▁▁"
    assert sparkline([1, 2, 4, 8], 4) == "▂▃▅█"
    assert sparkline([0, 8, 4, 0], 4) == "▁█▅▁"
    assert sparkline([8] * 60, 10, 60) == "█" * 10
    # 6 samples per bar, counted from the newest: [1] | [1 x6] -> the newest bar holds the 8
    assert sparkline([1] * 6 + [8], 2, 12) == "▂█"
    assert sparkline([1] * 7 + [8], 3, 12) == " ▂█"
    assert sparkline([], 5) == ""


def test_restart_resets_rates_and_disconnect_keeps_the_last_figures() -> None:
    board = Dashboard(target="h:1", interval_s=2)
    first, second = recorded()[:2]
    board.update(first)
    board.update(second)
    board.lost("cannot connect to h:1: [Errno 111] Connection refused")
    screen = text(board)
    assert "DISCONNECTED, retrying every 2s" in screen
    assert "Connection refused" in screen
    assert row(screen, "jobs")[6] == "200"  # the last figures stay
    restarted = reply(0.5, {"jobs": {"ready": 1, "put": 1}})
    board.update(restarted)
    screen = text(board)
    assert "connected" in screen and "restarted 1x" in screen
    assert row(screen, "jobs")[6:8] == ["-", "-"]
    assert "mail" in board.history and board.history["mail"][-1] == 0  # gone: depth 0


def test_a_restart_first_seen_late_is_still_a_restart() -> None:
    """The restarted broker may be reached after it has run longer than the old one did:
    its start time, not its uptime, says it is another run."""
    board = Dashboard(target="h:1")
    board.update(reply(3.0, {"jobs": {"ready": 1}}, started_at=1000.0))
    board.update(reply(4.0, {"jobs": {"ready": 1}}, started_at=1000.0))
    assert board.restarts == 0
    board.update(reply(14.0, {"jobs": {"ready": 1}}, started_at=1010.0))
    assert board.restarts == 1
    assert "restarted 1x" in text(board)


def test_never_reached_says_connecting() -> None:
    board = Dashboard(target="h:1")
    board.lost("cannot connect")
    screen = text(board)
    assert "connecting, retrying" in screen and "no queues yet" in screen


def test_many_queues_fit_24_lines_and_say_how_many_are_hidden() -> None:
    board = Dashboard()
    board.update(reply(1.0, {f"queue-{i:02d}": {"ready": i} for i in range(40)}))
    screen = text(board)
    assert len(screen.splitlines()) <= 24
    shown = [line for line in screen.splitlines() if line.startswith("queue-")]
    assert len(shown) + int(screen.split("… ")[1].split()[0]) == 40


def test_extra_server_figures_such_as_the_log_size_are_shown() -> None:
    board = Dashboard()
    board.update(reply(1.0, {}, log_bytes=5 * 1024 * 1024, log_segments=3))
    header = text(board, width=120).splitlines()[1]
    assert "log bytes 5.0 MiB" in header and "log segments 3" in header


def test_formatting_helpers() -> None:
    assert [count(n) for n in (0, 987, 9999, 12345, 999_999, 4_560_000, None)] == [
        "0",
        "987",
        "9999",
        "12.3k",
        "1M",
        "4.56M",
        "-",
    ]
    assert [age(s) for s in (0.42, 12.9, 307, 12_000, 200_000, None)] == [
        "0.4s",
        "12s",
        "5m07s",
        "3h20m",
        "2d07h",
        "-",
    ]


def render(renderable: Any, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_stats_table_shows_totals_or_rates() -> None:
    first, second = recorded()[:2]
    once = render(stats_table(first))
    assert row(once, "jobs")[-4:] == ["200", "50", "0", "0"]  # put, acked, nacked, expired
    twice = render(stats_table(first, second))
    assert row(twice, "jobs")[6:8] == ["200", "50"]


def test_info_and_peek_tables() -> None:
    message = {
        "id": "abc",
        "queue": "jobs",
        "state": "leased",
        "attempts": 2,
        "max_attempts": 5,
        "priority": 0,
        "age": 75.0,
        "body": {"n": 1},
        "key": "acct-7",
        "lease_left": 3.5,
        "holder": "127.0.0.1:5000",
    }
    info = render(info_table(message))
    assert "lease left   3.5s" in info and "holder       127.0.0.1:5000" in info
    assert 'body         {"n":1}' in info
    peek = render(peek_table([{**message, "body": "x" * 500}], total=9))
    line = row(peek, "abc")
    assert line[:7] == ["abc", "leased", "2/5", "acct-7", "1m15s", "3.5s", "127.0.0.1:5000"]
    assert line[7].endswith("…") and all(len(x) <= 80 for x in peek.splitlines())
    assert "1 of 9 shown" in peek


def test_the_durability_section_shows_the_log_size() -> None:
    board = Dashboard()
    durability = {"fsync": "everysec", "log_bytes": 3 * 1024 * 1024, "unwritten_bytes": 0}
    board.update(reply(1.0, {}, durability=durability))
    header = text(board, width=120).splitlines()[1]
    assert header.endswith("rss 31.0 MiB  log 3.0 MiB")


DATA = Path(__file__).parent / "data" / "stats_demo_watch.jsonl"


def test_a_recorded_demo_run_renders_with_every_figure_from_stats() -> None:
    """STATS replies recorded once a second from `wonderq demo --watch` (queue prefix cut)."""
    sequence = [msgspec.json.decode(line) for line in DATA.read_text().splitlines()]
    board = Dashboard(target="127.0.0.1:7878")
    previous: dict[str, Any] | None = None
    peak = 0
    for stats in sequence:
        board.update(stats)
        screen = text(board)
        assert len(screen.splitlines()) <= 24 and all(len(x) <= 80 for x in screen.splitlines())
        dt = stats["server"]["uptime"] - previous["server"]["uptime"] if previous else 0
        for name, q in stats["queues"].items():
            if name.endswith(".dead") and name[:-5] in stats["queues"]:
                assert not cells_of(screen, name)
                continue
            shown = cells_of(screen, name)
            assert shown[1:6] == [
                count(q[k]) for k in ("ready", "delayed", "leased", "dead", "waiting_consumers")
            ]
            assert shown[8] == age(q["oldest_ready_age"])
            before = previous["queues"].get(name) if previous else None
            if before is None:
                assert shown[6:8] == ["-", "-"]
            else:
                assert shown[6] == rate((q["put"] - before["put"]) / dt)
                assert shown[7] == rate((q["acked"] - before["acked"]) / dt)
        peak = max(peak, stats["queues"]["jobs"]["ready"])
        previous = stats
    # the run filled the jobs queue, then drained it
    first, last = sequence[0]["queues"]["jobs"], sequence[-1]["queues"]["jobs"]
    assert peak > 100 and last["ready"] < peak and last["acked"] > first["acked"]


def cells_of(screen: str, name: str) -> list[str]:
    for line in screen.splitlines():
        if line.startswith(name + " "):
            return line.split()
    return []
