"""The hot path compiled or pure Python: which one runs, and forcing the sources.

Owns: the choice between the extension modules a mypyc build put next to the
hot modules' sources (setup.py: the engine, the memory backend, most of the
protocol layer), which Python imports first when they are there, and the
sources themselves. ``install()`` (run by ``broker/__init__.py``, before any
other module of the package is imported) puts ``SourceFinder`` ahead of every
other finder, so that each ``broker`` module is loaded from its ``.py`` file,
when ``WONDERQ_PURE=1`` is set or when the build is older than a source (an
edit since the last ``make``: compiled code of older sources must never run).
``hot_path()`` says which one runs, for ``wonderq serve``'s startup log, and
``is_compiled(module)`` whether one module is compiled.
Must never: import another module of the package at import time (it runs
first), or change what a module does: only the file it is loaded from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from types import ModuleType
from typing import Final

PURE_ENV: Final = "WONDERQ_PURE"
#: the library every compiled module shares (setup.py's GROUP), next to the package
LIBRARY: Final = "broker_hot__mypyc"
#: a source this much newer than the build is an edit made since (a fresh install
#: writes the build and the sources within moments of each other)
SLACK_S: Final = 2.0
PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__))


class SourceFinder(MetaPathFinder):
    """Finds every ``broker`` module (package) at its ``.py`` (``__init__.py``) file."""

    def __init__(self, reason: str) -> None:
        self.reason = reason  # why the sources run: hot_path() says it

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if path is None or not fullname.startswith("broker."):
            return None  # not ours: the next finder's
        name = fullname.rpartition(".")[2]
        for entry in path:
            package = os.path.join(entry, name)
            init = os.path.join(package, "__init__.py")
            if os.path.isfile(init):
                return spec_from_file_location(fullname, init, submodule_search_locations=[package])
            module = package + ".py"
            if os.path.isfile(module):
                return spec_from_file_location(fullname, module)
        return None  # a namespace package, or no such module: the usual finders decide


def install() -> None:
    """Load the sources from now on, if they must run (see the module docstring)."""
    reason = pure_reason()
    if reason is not None and not any(isinstance(f, SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder(reason))


def pure_reason(
    environ: Mapping[str, str] = os.environ, package_dir: str = PACKAGE_DIR
) -> str | None:
    """Why the sources must run although a build may be present; None if it may run."""
    if environ.get(PURE_ENV, "") not in ("", "0"):
        return f"{PURE_ENV} is set"
    root = os.path.dirname(package_dir)
    try:
        built_at = os.stat(os.path.join(root, LIBRARY + EXTENSION_SUFFIXES[0])).st_mtime
    except OSError:
        return None  # no build: the sources run anyway
    for folder, _, files in os.walk(package_dir):
        for name in files:
            source = os.path.join(folder, name)
            if name.endswith(".py") and os.stat(source).st_mtime > built_at + SLACK_S:
                where = os.path.relpath(source, root)
                return f"the compiled build is older than {where}: `make` builds it again"
    return None


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension module."""
    return (module.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))


def hot_path() -> str:
    """How the engine runs in this process: "compiled (mypyc)", or "pure Python (why)"."""
    from broker.engine import engine  # the module every request goes through

    if is_compiled(engine):
        return "compiled (mypyc)"
    for finder in sys.meta_path:
        if isinstance(finder, SourceFinder):
            return f"pure Python ({finder.reason})"
    return "pure Python (not built: `pip install -v -e .` shows why)"
