"""The hot path compiled or pure Python (setup.py, broker/compiled.py).

Where the install built the hot modules, a fresh interpreter imports them
compiled; with ``WONDERQ_PURE=1`` it imports their sources, and so it does when
the build is older than a source. Without a build (no C compiler) the first test
skips, and fails when ``CI=true``: CI must test the compiled build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from broker import compiled
from tests.support.tools import require

ROOT = Path(compiled.PACKAGE_DIR).parent
LIBRARY = ROOT / (compiled.LIBRARY + EXTENSION_SUFFIXES[0])
PROBE = (
    "import broker.engine.queue, broker.protocol.codec, broker.backend.memory.backend\n"
    "from broker import compiled\n"
    "print(broker.engine.queue.__file__)\n"
    "print(broker.protocol.codec.__file__)\n"
    "print(broker.backend.memory.backend.__file__)\n"
    "print(compiled.hot_path())\n"
)


def fresh_interpreter(**env: str) -> tuple[list[str], str]:
    """The files a new interpreter loads three hot modules from, and its hot_path()."""
    environ = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV} | env
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environ,
        cwd=ROOT.parent,  # not the tree: only the install makes broker importable
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    return out[:3], out[3]


def test_a_fresh_interpreter_imports_the_compiled_modules_where_they_are_built() -> None:
    require(LIBRARY.exists(), f"no compiled build ({LIBRARY.name}): `make` says why")
    files, hot_path = fresh_interpreter()
    assert hot_path == "compiled (mypyc)"  # else it says why not
    assert all(f.endswith(EXTENSION_SUFFIXES[0]) for f in files), files
    assert all(Path(f).with_name(Path(f).name.split(".")[0] + ".py").exists() for f in files)


def test_wonderq_pure_imports_the_sources_even_where_they_are_built() -> None:
    files, hot_path = fresh_interpreter(WONDERQ_PURE="1")
    assert [Path(f).relative_to(ROOT).as_posix() for f in files] == [
        "broker/engine/queue.py",
        "broker/protocol/codec.py",
        "broker/backend/memory/backend.py",
    ]
    assert hot_path == "pure Python (WONDERQ_PURE is set)"


def test_a_build_older_than_a_source_is_not_used(tmp_path: Path) -> None:
    package = tmp_path / "broker"
    (package / "engine").mkdir(parents=True)
    source = package / "engine" / "queue.py"
    source.write_text("")
    assert compiled.pure_reason({}, str(package)) is None  # no build: nothing to refuse
    library = tmp_path / LIBRARY.name
    library.write_bytes(b"")
    built_at = source.stat().st_mtime
    os.utime(library, (built_at, built_at))
    assert compiled.pure_reason({}, str(package)) is None  # built with this source
    os.utime(source, (built_at + 60, built_at + 60))  # edited a minute after the build
    reason = compiled.pure_reason({}, str(package))
    assert (
        reason == "the compiled build is older than broker/engine/queue.py: `make` builds it again"
    )
    os.utime(library, (built_at + 61, built_at + 61))  # built again
    assert compiled.pure_reason({}, str(package)) is None
    assert compiled.pure_reason({"WONDERQ_PURE": "1"}, str(package)) == "WONDERQ_PURE is set"
    assert compiled.pure_reason({"WONDERQ_PURE": "0"}, str(package)) is None
