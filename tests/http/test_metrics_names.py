"""Every metric /metrics serves is named in the documentation (README.md or docs/), durable
log figures included: the names a dashboard is built on are the documented ones."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.http.support import client_for
from tests.support import BrokerProcess

ROOT = Path(__file__).resolve().parents[2]
#: a histogram's samples are named after it with one of these
HISTOGRAM_PARTS = ("_bucket", "_count", "_sum", "_created")


def documented() -> list[re.Pattern[str]]:
    """The metric names the documents give: ``wonderq_x``, ``wonderq_server_<name>``, ``process_*``."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])
    names = set(re.findall(r"`((?:wonderq|process)_[a-z_<>*]+)`", text))
    return [
        re.compile(re.sub(r"<[a-z]+>|\\\*", "[a-z_]+", re.escape(name)) + "$") for name in names
    ]


async def test_every_metric_served_is_a_documented_name(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    args = ("--http-port", "0", "--data-dir", str(tmp_path / "data"))
    async with await BrokerProcess.start_with(log, *args) as broker:
        http = (await broker.stdout_line()).rsplit(" ", 1)[1]  # "http on HOST:PORT"
        async with client_for(f"http://{http}") as api:
            got = await api.get("/metrics")
    assert got.status == 200
    served = {s.name for f in text_string_to_metric_families(got.body.decode()) for s in f.samples}
    assert any(name.startswith("wonderq_durability_") for name in served)
    patterns = documented()
    for name in sorted(served):
        base = next((name[: -len(p)] for p in HISTOGRAM_PARTS if name.endswith(p)), name)
        assert any(p.match(base) or p.match(name) for p in patterns), f"{name} is not documented"
