"""docs/http.md cannot drift: its curl sessions run, as pasted, against a
real broker (only the port is changed), and each command's output must match what
the page shows ("<idN>"/"<receiptN>" capture a value on first sight, "<any>"
matches anything, as in protocol.md's transcripts); its worker loop runs too."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from tests.http.support import client_for, running_broker
from tests.support import require_tool, run
from tests.test_protocol_doc import ROOT, matches

README_PORT = "127.0.0.1:7879"


def section() -> str:
    return (ROOT / "docs" / "http.md").read_text()


def sessions() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block: its commands, each with the output lines shown after it."""
    out = []
    for block in re.findall(r"^```console\n(.*?)^```", section(), re.M | re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        out.append(steps)
    return out


async def run_bash(script: str, cwd: Path) -> str:
    """``bash -c script`` (with curl and jq) to its end, killed after 30 s: its stdout."""
    require_tool("curl")
    require_tool("jq")
    code, out, err = await run("bash", "-c", script, cwd=cwd, timeout_s=30)
    assert code == 0, (out, err)
    return out


def test_the_section_shows_put_receive_ack_a_long_poll_and_a_stale_receipt() -> None:
    commands = " ".join(cmd for steps in sessions() for cmd, _ in steps)
    for shown in ("/messages", "/receive", "/v1/ack", '"wait":', "-X DELETE"):
        assert shown in commands, shown
    assert "not_leased" in section()


async def test_the_curl_sessions_work_when_pasted(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    async with running_broker() as broker:
        port = f"127.0.0.1:{broker.http_port}"
        for steps in sessions():
            script = "set -e\n" + "".join(
                f"{cmd.replace(README_PORT, port)}\necho '@@end@@'\n" for cmd, _ in steps
            )
            outputs = (await run_bash(script, tmp_path)).split("@@end@@\n")
            for (cmd, expected), actual in zip(steps, outputs, strict=False):
                got = actual.splitlines()
                assert len(got) == len(expected), (cmd, got)
                for want, line in zip(expected, got, strict=True):
                    if want.startswith("{"):
                        assert matches(msgspec.json.decode(want), msgspec.json.decode(line), env), (
                            f"{cmd}\nexpected {want}\n     got {line}"
                        )
                    else:
                        assert want == line, cmd


async def test_the_worker_loop_does_every_job_and_stops(tmp_path: Path) -> None:
    (loop,) = re.findall(r"^```bash\n(.*?)^```", section(), re.M | re.S)
    async with running_broker() as broker, client_for(broker.base) as api:
        jobs = [{"body": {"n": i}} for i in range(25)]
        assert (await api.post("/v1/queues/jobs/messages", {"messages": jobs})).status == 201
        port = f"127.0.0.1:{broker.http_port}"
        script = loop.replace(README_PORT, port).replace('"wait":20', '"wait":0.5')
        printed = (await run_bash(script, tmp_path)).splitlines()
        assert printed == [msgspec.json.encode(j["body"]).decode() for j in jobs]
        queue = (await api.get("/v1/queues/jobs")).json["queue"]
        assert (queue["ready"], queue["leased"], queue["acked"]) == (0, 0, 25)
