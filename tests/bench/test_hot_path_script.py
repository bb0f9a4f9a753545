"""bench/hot_path.py runs: WonderQ and the floor serve the same PUT/GET/ACK bytes in process.

The script itself asserts that every GET got one message and every ACK was answered
ok, for both servers; this checks that it runs to the end and reports every mode.
No timing is asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hot_path_runs_both_servers_on_every_mode(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hot_path.py"), "-n", "128", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not a tree: PYTHONPATH decides which one is measured
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["rr", "pipe", "batch"], out.stdout + out.stderr
    assert all("wonderq" in line and "floor" in line and "x floor" in line for line in lines)
    assert "Traceback" not in out.stderr, out.stderr
