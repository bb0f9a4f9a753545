"""The optional ``tools`` extra (rich) and a clear error without it.

Owns: checking that the operator tools' libraries are importable, and the
one message that names the extra to install. Must never: import them eagerly
(the broker's core runs without them).
"""

from __future__ import annotations

import importlib.util
from typing import Final

TOOLS_MODULES: Final = ("rich",)
INSTALL_HINT: Final = "pip install 'wonderq[tools]'"


class ToolsMissing(RuntimeError):
    """A feature needs the ``tools`` extra, which is not installed."""


def missing_tools(*modules: str) -> list[str]:
    """Which of ``modules`` (default: all of the extra's) cannot be imported."""
    return [name for name in modules or TOOLS_MODULES if importlib.util.find_spec(name) is None]


def require_tools(feature: str, *modules: str) -> None:
    """Raise ``ToolsMissing`` naming ``feature`` and the extra if a needed library is absent."""
    missing = missing_tools(*modules)
    if missing:
        raise ToolsMissing(
            f"{feature} needs the optional 'tools' extra ({', '.join(missing)} not installed): "
            f"{INSTALL_HINT}"
        )
