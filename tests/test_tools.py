"""The tools extra (broker/tools.py): a command that needs it and lacks it says which extra to install."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from broker import tools
from broker.cli import top


def test_missing_tools_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a)
    )
    with pytest.raises(tools.ToolsMissing, match=r"wonderq\[tools\]"):
        tools.require_tools("wonderq top", "rich")
    tools.require_tools("--metrics-port", "prometheus_client")  # that one is installed
    args = argparse.Namespace(host="127.0.0.1", port=1, interval=1.0)
    assert top.run(args) == 2
    err = capsys.readouterr().err
    assert "wonderq top needs the optional 'tools' extra (rich not installed)" in err
    assert "pip install 'wonderq[tools]'" in err
