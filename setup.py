"""The build of WonderQ's hot modules with mypyc (docs/performance.md, round 9).

Owns: which modules are compiled (``HOT``) and what happens when they cannot be.
Everything else about the package is in pyproject.toml. ``pip install -e .``
(``make``) compiles ``HOT`` into extension modules next to their sources (git
ignores them), which Python then imports instead of the sources. When mypyc is
missing, the type check or the C compiler fails, or ``WONDERQ_PURE=1`` is set,
the install goes on without them, prints why once, and WonderQ runs the same
sources as Python. At run time ``WONDERQ_PURE=1`` loads the sources even where a
build is present (broker/compiled.py). Left out: modules of msgspec Structs
(``requests.py``, ``replies.py``: a Struct cannot be a native class) and the
server (``asyncio.Protocol`` subclasses, built from several classes).
Must never: fail the install because the build failed, or leave part of a build
in place.
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HOT = [
    "broker/engine/*.py",
    "broker/backend/memory/*.py",
    *(f"broker/protocol/{name}.py" for name in ("__init__", "bodies", "codec", "framing")),
    *(f"broker/protocol/{name}.py" for name in ("names", "receipts", "shorthand", "usage")),
]
#: the library they all share: ``broker_hot__mypyc*.so``, top level (mypyc finds the
#: modules' files and packages' paths from where it is)
GROUP = "broker_hot"


def say(why: str) -> None:
    print(f"wonderq: the hot path stays pure Python: {why}", file=sys.stderr, flush=True)


def in_place() -> list[str]:
    """The extension modules a build put next to the sources, and their library."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return glob.glob(f"broker/**/*{suffix}", recursive=True) + glob.glob(f"{GROUP}__*{suffix}")


def remove_in_place() -> None:
    for path in in_place():
        os.remove(path)


class OptionalBuild(build_ext):
    """``build_ext`` that never fails the install: a failed build leaves nothing behind."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a missing compiler or header, or the compiler's error
            remove_in_place()
            say(f"the C build failed ({type(exc).__name__}: {exc})")


#: the commands that build (pip runs setup.py for its metadata first: no build then)
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def extensions() -> list[Any]:
    if not BUILDS.intersection(sys.argv[1:]):
        return []
    remove_in_place()  # modules no longer in HOT, or a build of other sources
    if os.environ.get("WONDERQ_PURE", "") not in ("", "0"):
        say("WONDERQ_PURE is set")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        say(f"mypyc is not installed ({exc})")
        return []
    paths = sorted(path for pattern in HOT for path in glob.glob(pattern))
    try:
        return mypycify(paths, group_name=GROUP)
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        say(f"mypyc could not compile it ({type(exc).__name__}: {exc})")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuild})
