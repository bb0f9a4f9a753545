"""How figures and names are written in a terminal cell, for ``top`` and the tables.

Owns: compact counts (``12.3k``), rates, byte sizes, durations (``5m07s``), the
depth sparkline, a body on one line, and queue names cut in the middle so that
two of them never look alike. Pure functions of their arguments.
Must never: do IO, read a clock, or know a table's layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

SPARK: Final = "▁▂▃▄▅▆▇█"


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


def elide_middle(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, cut in the middle: ``demo-518…counter-keyed``."""
    if len(name) <= width:
        return name
    if width < 3:
        return name[:width]
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def short_names(names: Sequence[str], width: int) -> dict[str, str] | None:
    """Each name as ``elide_middle`` fits it in ``width``; None if two would then look
    alike (the caller shows them whole, wrapped). No queue name holds "…", so a cut
    name never looks like a whole one."""
    shown = {name: elide_middle(name, width) for name in names}
    return shown if len(set(shown.values())) == len(shown) else None
