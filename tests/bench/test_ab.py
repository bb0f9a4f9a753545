"""bench/ab.py, the interleaved A/B of two trees that docs/performance.md's rounds use:
it runs (here this tree against itself, briefly) and prints both trees' medians and
their ratio for each mode."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ab_compares_two_trees_mode_by_mode(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab.py"), str(ROOT), str(ROOT),
         "--modes", "rr,batch", "-n", "640", "--repeat", "1", "--fsync", "no"],
        capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    ratios = re.findall(r"^(\w+) +before .* after/before msg/s [\d.]+ cpu ([\d.]+|n/a)", out, re.M)
    assert [mode for mode, _ in ratios] == ["rr", "batch"], out
    assert out.count("trials before") == 2
