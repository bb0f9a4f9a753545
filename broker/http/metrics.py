"""Prometheus exposition of the broker's own figures at ``/metrics`` (on the HTTP API).

Owns: turning one STATS snapshot and the broker's histograms into metric
families at scrape time (``Tally``, a page of STATS at a time, then
``BrokerCollector``), with a bounded set of series:
the server's figures, totals per state and per event over every queue, and
one set of per-queue series for only the ``--metrics-queues`` deepest queues
(ready + delayed + leased; ties by name), plus how many were left out. So a
broker with 100,000 queues is scraped in a bounded reply. The scrape runs on
the broker's loop, between two batches: reading broker state needs no lock,
and the hot path pays nothing for metrics but one timing per batch of requests.
Must never: count per message on the hot path, start threads, or emit a series
per queue for more than the configured number of queues.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.process_collector import ProcessCollector

from broker.histogram import Histogram
from broker.protocol.names import COUNTERS
from broker.protocol.replies import QueueStats, StatsReply

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

QUEUE_STATES: Final = ("ready", "delayed", "leased", "dead")
QUEUE_EVENTS: Final = COUNTERS  # the engine's per-queue totals, one metric label each
#: STATS server field -> (metric name, help); other numeric fields become wonderq_server_<name>
SERVER_GAUGES: Final[Mapping[str, tuple[str, str]]] = {
    "started_at": ("wonderq_start_time_seconds", "Unix time this run of the broker started."),
    "uptime": ("wonderq_uptime_seconds", "Seconds since the broker started."),
    "connections": ("wonderq_connections", "Open client connections."),
    "queues": ("wonderq_queues", "Queues known to the broker."),
    "messages": ("wonderq_messages", "Messages held in all queues."),
    "leased": ("wonderq_leases", "Messages leased to consumers (all queues)."),
    "bytes": ("wonderq_bytes", "Bytes of message bodies held."),
    "rss": ("wonderq_resident_memory_bytes", "Resident memory of the broker process."),
}


def _histogram(name: str, doc: str, hist: Histogram) -> Metric:
    buckets = [
        ("+Inf" if bound == math.inf else repr(bound), float(n)) for bound, n in hist.buckets()
    ]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=hist.sum)


class BrokerCollector:
    """Metric families from one STATS snapshot (``snapshot``) and the broker's histograms.

    ``stats`` has ``server`` (STATS' server section), ``queues`` (the queues to
    list one by one, name -> STATS figures) and optionally ``totals`` (``states``
    and ``events`` summed over every queue, and ``omitted``: queues not listed).
    """

    def __init__(self, stats: Mapping[str, Any], histograms: Mapping[str, Histogram]) -> None:
        self._stats = stats
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        server: Mapping[str, Any] = self._stats["server"]
        info = GaugeMetricFamily("wonderq_build", "WonderQ version.", labels=["version"])
        info.add_metric([str(server.get("version", "?"))], 1.0)
        yield info
        yield from _server(server)
        totals = self._stats.get("totals")
        if totals is not None:
            yield from _totals(totals)
        yield from _per_queue(self._stats["queues"])
        yield from _histograms(self._histograms)


def _server(server: Mapping[str, Any]) -> Iterator[Metric]:
    for field, value in server.items():
        if isinstance(value, Mapping):  # a section such as "durability": its own figures
            yield from _section(field, value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name, doc = SERVER_GAUGES.get(
            field, (f"wonderq_server_{field}", f"STATS server field {field!r}.")
        )
        yield GaugeMetricFamily(name, doc, value=float(value))


def _totals(totals: Mapping[str, Any]) -> Iterator[Metric]:
    states = GaugeMetricFamily(
        "wonderq_state_messages",
        "Messages per state, summed over every queue (dead: in the .dead queues).",
        labels=["state"],
    )
    for state, n in totals["states"].items():
        states.add_metric([state], float(n))
    events = CounterMetricFamily(
        "wonderq_events",
        "Message events since the broker started, summed over every queue.",
        labels=["event"],
    )
    for event, n in totals["events"].items():
        events.add_metric([event], float(n))
    omitted = GaugeMetricFamily(
        "wonderq_metrics_queues_omitted",
        "Queues without wonderq_queue_* series: past --metrics-queues, the shallowest.",
        value=float(totals["omitted"]),
    )
    yield from (states, events, omitted)


def _per_queue(queues: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "wonderq_queue_messages",
        "Messages per queue and state (dead: the size of <queue>.dead, also listed itself).",
        labels=["queue", "state"],
    )
    waiting = GaugeMetricFamily(
        "wonderq_queue_waiting_consumers", "Waiting GETs per queue.", labels=["queue"]
    )
    held = GaugeMetricFamily(
        "wonderq_queue_bytes", "Bytes of message bodies per queue.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "wonderq_queue_oldest_ready_age_seconds",
        "Age of the oldest ready message (absent when none is ready).",
        labels=["queue"],
    )
    events = CounterMetricFamily(
        "wonderq_queue_events",
        "Message events per queue since the broker started.",
        labels=["queue", "event"],
    )
    for name, q in queues.items():
        for state in QUEUE_STATES:
            depth.add_metric([name, state], float(q[state]))
        waiting.add_metric([name], float(q["waiting_consumers"]))
        held.add_metric([name], float(q["bytes"]))
        age = q.get("oldest_ready_age")
        if age is not None:
            oldest.add_metric([name], float(age))
        for event in QUEUE_EVENTS:
            events.add_metric([name, event], float(q[event]))
    yield from (depth, waiting, held, oldest, events)


_HISTOGRAM_DOCS: Final = {
    "get_wait": (
        "wonderq_get_wait_seconds",
        "How long waiting GETs waited, until served or until their wait ran out.",
    ),
    "batch_latency": (
        "wonderq_request_batch_seconds",
        "Server time per batch of requests read together, from decoding to "
        "writing the replies (waiting GETs excluded: see wonderq_get_wait_seconds).",
    ),
}


def _histograms(histograms: Mapping[str, Histogram]) -> Iterator[Metric]:
    for key, hist in histograms.items():
        name, doc = _HISTOGRAM_DOCS.get(key, (f"wonderq_{key}_seconds", key))
        yield _histogram(name, doc, hist)


def _section(section: str, figures: Mapping[str, Any]) -> Iterator[Metric]:
    """A nested STATS server section (e.g. ``durability``): numbers and flags as
    ``wonderq_<section>_<field>`` gauges, strings as labels of ``wonderq_<section>_info``."""
    labels: dict[str, str] = {}
    for field, value in figures.items():
        if isinstance(value, str):
            labels[field] = value
        elif isinstance(value, bool | int | float):
            yield GaugeMetricFamily(
                f"wonderq_{section}_{field}",
                f"STATS server figure {section}.{field}.",
                value=float(value),
            )
    if labels:
        info = GaugeMetricFamily(
            f"wonderq_{section}_info", f"STATS server {section} settings.", labels=list(labels)
        )
        info.add_metric(list(labels.values()), 1.0)
        yield info


class Tally:
    """What ``BrokerCollector`` reads, summed a page of STATS at a time: every figure
    over all queues, and the per-queue figures of the ``max_queues`` deepest only. A
    page costs the same whatever came before it, so a scrape of many queues never
    holds the loop longer than one page does, nor keeps more than the deepest."""

    __slots__ = ("_deepest", "_events", "_listed", "_max_queues", "_server", "_states")

    def __init__(self, max_queues: int) -> None:
        self._max_queues = max_queues
        self._states = dict.fromkeys(QUEUE_STATES, 0)
        self._events = dict.fromkeys(QUEUE_EVENTS, 0)
        self._deepest: list[tuple[str, QueueStats]] = []
        self._listed = 0  # queues seen
        self._server: dict[str, Any] = {}

    def add(self, page: StatsReply) -> None:
        """Count one page of STATS (the last page's server figures are kept)."""
        states, events = self._states, self._events
        for q in page.queues.values():
            for state in QUEUE_STATES:
                states[state] += getattr(q, state)
            for event in QUEUE_EVENTS:
                events[event] += getattr(q, event)
        # the deepest first; ties by name, so a scrape lists the same queues as the last
        candidates = itertools.chain(self._deepest, page.queues.items())
        self._deepest = heapq.nsmallest(self._max_queues, candidates, key=_negated_depth)
        self._listed += len(page.queues)
        self._server = page.server

    def snapshot(self) -> dict[str, Any]:
        return {
            "server": self._server,
            "queues": {name: msgspec.structs.asdict(q) for name, q in self._deepest},
            "totals": {
                "states": self._states,
                "events": self._events,
                "omitted": self._listed - len(self._deepest),
            },
        }


def _negated_depth(item: tuple[str, QueueStats]) -> tuple[int, str]:
    name, q = item
    return (-(q.ready + q.delayed + q.leased), name)


def exposition(tally: Tally, histograms: Mapping[str, Histogram]) -> tuple[bytes, str]:
    """The text of one scrape (with the process collector's figures), and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    registry.register(BrokerCollector(tally.snapshot(), histograms))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def histograms_of(backend: object, batch_latency: Histogram | None) -> dict[str, Histogram]:
    """The histograms /metrics shows: the backend's GET waits, the server's batch latency."""
    out: dict[str, Histogram] = {}
    # MemoryBackend has it; a backend wrapping one (the durable one) as ``memory`` too
    for candidate in (backend, getattr(backend, "memory", None)):
        get_wait = getattr(candidate, "get_wait", None)
        if isinstance(get_wait, Histogram):
            out["get_wait"] = get_wait
            break
    if batch_latency is not None:
        out["batch_latency"] = batch_latency
    return out
