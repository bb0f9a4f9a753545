"""Forgetting idle queues: a queue that holds nothing and says nothing goes.

Owns: when a queue is forgotten. A queue is *idle* while it holds no message
(ready, delayed or leased), no GET waits on it, its settings are the
server's, it is not paused and it remembers no dedup id. ``forget_idle(now)``
looks at every queue once per pass of ``forget_after_s`` (each call looks at
the share of the pass that time has come for, at most ``LOOK_MAX`` queues): a
queue found idle at two looks in a row, with no event counted on it in
between (its counters, summed, unchanged), is forgotten: it leaves the table
with its counters, as if it had never been made, and a queue made later under
its name starts from zero. So an idle queue goes between one and two passes
after it became idle, and a busy queue that is empty whenever it is looked at
stays. What survives it: ``forgotten`` counts it, and INFO of a message acked
in it still says ``acked`` (the acked history keeps the queue's name, not the
queue). The caller (the backend's timer) calls ``forget_idle`` about ten times
a pass.
Must never: forget a queue that holds anything a client would miss (a message,
a lease, a waiting GET, a setting, a pause, a dedup id), read a clock, or look
at more than ``LOOK_MAX`` queues in one call.
"""

from __future__ import annotations

import math
from typing import Final

from broker.engine.queue import Queue
from broker.engine.settings import DEFAULT
from broker.engine.views import Views

#: queues looked at in one call at most (a pass that needs more runs late)
LOOK_MAX: Final = 5000


def is_idle(q: Queue) -> bool:
    """Holds nothing a client would miss if it went (see the module docstring)."""
    return not (q.n_ready or q.n_delayed or q.n_leased or q.n_waiting or q.paused or q.dedup) and (
        q.settings is DEFAULT or q.settings == DEFAULT
    )


class Forgetting(Views):
    def forget_idle(self, now: float) -> int:
        """Look at the queues this instant of the pass is due to (see the module
        docstring); forget those idle now and at their last look. How many went."""
        period = self.config.forget_after_s
        if self._sweep_done >= len(self._sweep_names):
            if now < self._sweep_from + period:
                return 0  # this pass is done: the next begins when its time is up
            self._sweep_names = list(self._queues)
            self._sweep_done = 0
            self._sweep_from = now
        names = self._sweep_names
        share = min(1.0, (now - self._sweep_from) / period) if period > 0 else 1.0
        due = min(math.ceil(len(names) * share), self._sweep_done + LOOK_MAX)
        forgotten = 0
        for name in names[self._sweep_done : due]:
            q = self._queues.get(name)
            if q is not None and self._look(q):
                forgotten += 1
        self._sweep_done = max(self._sweep_done, due)
        return forgotten

    def _look(self, q: Queue) -> bool:
        """Remember whether ``q`` is idle now; forget it if it was so at the last look
        too, with no event since. True if it was forgotten."""
        if not is_idle(q):
            q.idle_mark = -1
            return False
        mark = sum(q.totals.values())
        if q.idle_mark != mark:
            q.idle_mark = mark
            return False
        del self._queues[q.name]
        self._names.discard(q.name)
        self._let_go(q)  # its owners' sets of leases there (empty: it holds none)
        self._woken.pop(q, None)
        self.forgotten += 1
        return True
