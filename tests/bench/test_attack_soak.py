"""The soak of issue 18: every attack that can share a broker, against one, one after
the other, with a bystander doing PUT, GET and ACK every 100 ms all along (``bench/
attack.py --soak``): its worst operation stays under 100 ms and the broker's RSS within
its limits (``--max-memory 1g``, ``--max-buffered 64m``, with the interpreter's own).

Slow (``-m slow``), about a minute; it measures a shared machine's wall clock, so a
machine busy with other work can make it fail where the broker did nothing wrong:
the table it prints says which row (or which clean-up between two rows) was slow,
and the load average. The attackers run at nice 10 (``attack.ATTACKER_NICE``), so
the harness's own CPU does not starve the bystander (docs/security.md).
"""

from __future__ import annotations

import importlib.util
import resource
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORST_MS = 100.0


def attack_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attack", ROOT / "bench" / "attack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("attack", module)  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_attack_against_one_broker_leaves_the_bystander_quick_and_rss_bounded() -> None:
    attack = attack_module()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # (row 15: 1500 connections)
    try:
        result = attack.soak(None, 1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    attack.print_soak(result)
    assert result["errors"] == 0
    assert result["worst_ms"] < WORST_MS, "the bystander waited: see the table above"
    assert result["rss_peak_mb"] < attack.SOAK_RSS_MAX_MB
