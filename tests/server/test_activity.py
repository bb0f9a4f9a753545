"""The periodic line that counts connections opened and closed (``activity.py``)."""

from __future__ import annotations

import logging

from broker.server.activity import ConnectionActivity
from tests.support.logs import watching


async def test_one_line_a_period_and_none_while_nothing_happens() -> None:
    async with watching("wonderq.server", logging.INFO) as watch:
        activity = ConnectionActivity(lambda: 3, period_s=0.05)
        for _ in range(3):
            activity.opened()
        activity.closed()
        line = (await watch.wait_for("connections: ")).getMessage()
        assert line.startswith("connections: 3 opened, 1 closed in ") and line.endswith("; 3 open")
        activity.report()  # nothing happened since: no line
        assert len(watch.messages("connections: ")) == 1
        activity.opened()
        activity.report()  # the server's stop says what the period had so far
        assert watch.messages("connections: ")[1].startswith("connections: 1 opened, 0 closed")
