"""Tests that need something outside Python: skipped on a developer's machine, failed on CI.

A skipped suite is a suite that did not run. Where a test needs an external tool
(redis-server, beanstalkd, tmux, nc, openssl, chromium), a developer without it
sees the test skipped with the package to install; with ``CI=true`` (``.ci/run``
installs every such package) the same test fails instead, so a missing install
can never pass as green.

Owns: that rule, in :func:`require` and :func:`require_tool`. Never: skips
silently, or lets a skip through when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil

import pytest


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, reason: str) -> None:
    """Go on if ``available``; else skip saying ``reason``, or fail when ``CI=true``."""
    if available:
        return
    if on_ci():
        pytest.fail(f"{reason}, and CI=true: on CI every test must run", pytrace=False)
    pytest.skip(reason)


def require_tool(command: str, package: str | None = None) -> str:
    """The path of ``command``; without it, skip (fail when ``CI=true``) naming its package."""
    path = shutil.which(command)
    require(
        path is not None,
        f"{command} is not installed (apt-get install {package or command})",
    )
    assert path is not None
    return path
