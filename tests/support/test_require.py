"""The tool rule: a missing tool skips a test on a developer machine and fails it on CI."""

from __future__ import annotations

import pytest

from tests.support import require, require_tool

MISSING = "wonderq-no-such-tool"


def test_an_installed_tool_gives_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_tool("sh").endswith("/sh")
    require(True, "never said")


@pytest.mark.parametrize("ci", [None, "", "false", "1"])
def test_a_missing_tool_skips_off_ci_naming_its_package(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=rf"apt-get install {MISSING}-pkg"):
        require_tool(MISSING, f"{MISSING}-pkg")
    with pytest.raises(pytest.skip.Exception, match="no such limit"):
        require(False, "no such limit")


@pytest.mark.parametrize("ci", ["true", "TRUE", "True"])
def test_a_missing_tool_fails_on_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=rf"{MISSING} is not installed.*CI=true"):
        require_tool(MISSING)
    with pytest.raises(pytest.fail.Exception, match="no such limit"):
        require(False, "no such limit")
