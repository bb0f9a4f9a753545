"""bench/footprint.py, which measured engine/footprint.py's constants, still runs: a
line for every kind, its measured bytes next to the constant the engine counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_footprint_script_measures_every_kind() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "footprint.py"), "-n", "2000"],
        capture_output=True, text=True, timeout=120, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 9 and all(r[-1].isdigit() and r[-3].lstrip("-").isdigit() for r in rows), (
        out
    )
