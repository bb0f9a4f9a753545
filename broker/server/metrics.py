"""Prometheus exposition of the broker's own figures at ``/metrics``.

Owns: turning one STATS snapshot and the broker's histograms into metric
families at scrape time (``BrokerCollector``), and a tiny HTTP endpoint served
on the broker's own event loop (``MetricsEndpoint``). Because the scrape runs on
the loop, between two batches, reading broker state needs no lock, and the hot
path pays nothing for metrics but one timing per batch of requests.
Must never: count per message on the hot path, start threads, or answer
anything but ``GET /metrics`` (and ``/``, ``HEAD``) with more than a status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from broker.errors import ERROR_CLASSES, ErrorCode
from broker.histogram import Histogram
from broker.protocol.names import COUNTERS
from broker.protocol.replies import to_builtins
from broker.protocol.requests import Stats
from broker.tools import require_tools

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from broker.backend.base import Backend
    from broker.server.server import Server

log = logging.getLogger("wonderq.metrics")

_HEAD_LIMIT: Final = 8192  # bytes of request line and headers we read
_READ_TIMEOUT_S: Final = 5.0

QUEUE_STATES: Final = ("ready", "delayed", "leased", "dead")
QUEUE_EVENTS: Final = COUNTERS  # the engine's per-queue totals, one metric label each
#: STATS server field -> (metric name, help); other numeric fields become wonderq_server_<name>
SERVER_GAUGES: Final[Mapping[str, tuple[str, str]]] = {
    "uptime": ("wonderq_uptime_seconds", "Seconds since the broker started."),
    "connections": ("wonderq_connections", "Open client connections."),
    "queues": ("wonderq_queues", "Queues known to the broker."),
    "messages": ("wonderq_messages", "Messages held in all queues."),
    "leased": ("wonderq_leases", "Messages leased to consumers (all queues)."),
    "bytes": ("wonderq_bytes", "Bytes of message bodies held."),
    "rss": ("wonderq_resident_memory_bytes", "Resident memory of the broker process."),
}


async def read_stats(backend: Backend) -> dict[str, Any]:
    """One STATS reply, through the backend's public interface (as a client would see it)."""
    result = backend.execute(None, [Stats()])
    replies = result if isinstance(result, list) else await result
    reply = replies[0]
    assert reply is not None
    stats = to_builtins(reply)
    if not stats.get("ok"):  # the store is unavailable, or the broker is stopping
        raise ERROR_CLASSES[ErrorCode(stats["error"])](stats["message"])
    return stats


def _histogram(name: str, doc: str, hist: Histogram) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    buckets = [
        ("+Inf" if bound == math.inf else repr(bound), float(n)) for bound, n in hist.buckets()
    ]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=hist.sum)


class BrokerCollector:
    """Metric families from one STATS reply and the broker's histograms."""

    def __init__(self, stats: Mapping[str, Any], histograms: Mapping[str, Histogram]) -> None:
        self._stats = stats
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        server: Mapping[str, Any] = self._stats["server"]
        queues: Mapping[str, Mapping[str, Any]] = self._stats["queues"]

        info = GaugeMetricFamily("wonderq_build", "WonderQ version.", labels=["version"])
        info.add_metric([str(server.get("version", "?"))], 1.0)
        yield info
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

        docs = {
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
        for key, hist in self._histograms.items():
            name, doc = docs.get(key, (f"wonderq_{key}_seconds", key))
            yield _histogram(name, doc, hist)


def _section(section: str, figures: Mapping[str, Any]) -> Iterator[Metric]:
    """A nested STATS server section (e.g. ``durability``): numbers and flags as
    ``wonderq_<section>_<field>`` gauges, strings as labels of ``wonderq_<section>_info``."""
    from prometheus_client.core import GaugeMetricFamily

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


def histograms_of(server: Server) -> dict[str, Histogram]:
    out: dict[str, Histogram] = {}
    # MemoryBackend has it; a backend wrapping one (the durable one) as ``memory`` too
    for backend in (server.backend, getattr(server.backend, "memory", None)):
        get_wait = getattr(backend, "get_wait", None)
        if isinstance(get_wait, Histogram):
            out["get_wait"] = get_wait
            break
    if server.batch_latency is not None:
        out["batch_latency"] = server.batch_latency
    return out


async def scrape(server: Server) -> tuple[bytes, str]:
    """The exposition text of one scrape, and its content type."""
    require_tools("--metrics-port", "prometheus_client")
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.process_collector import ProcessCollector

    stats = await read_stats(server.backend)
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    registry.register(BrokerCollector(stats, histograms_of(server)))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class MetricsEndpoint:
    """``GET /metrics`` over HTTP/1.1 on the broker's loop, one request per connection."""

    def __init__(self, server: Server, host: str, port: int) -> None:
        require_tools("--metrics-port", "prometheus_client")
        self._broker = server
        self._host = host
        self._port = port
        self._listener: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None, "metrics endpoint not started"
        return int(self._listener.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._serve, self._host, self._port)
        log.info(
            "metrics on http://%s:%d/metrics",
            self._host,
            self.port,
            extra={"event": "metrics_listening", "port": self.port},
        )

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_READ_TIMEOUT_S):
                    await listener.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(await self._answer(head))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.write(_response("400 Bad Request", b"bad request\n"))
        except Exception:  # a failed scrape is the scraper's 500, never the broker's crash
            log.exception("metrics scrape failed")
            writer.write(_response("500 Internal Server Error", b"scrape failed; see the log\n"))
        except (ConnectionError, OSError):
            pass  # the scraper went away; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> bytes:
        if len(head) > _HEAD_LIMIT:
            return _response("431 Request Header Fields Too Large", b"headers too large\n")
        method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method not in (b"GET", b"HEAD"):
            return _response("405 Method Not Allowed", b"only GET\n")
        if path == b"/":
            body = b"WonderQ metrics: /metrics\n"
        elif path == b"/metrics":
            body, content_type = await scrape(self._broker)
            out = _response("200 OK", body, content_type)
            return out if method == b"GET" else out[: len(out) - len(body)]
        else:
            return _response("404 Not Found", b"not found; try /metrics\n")
        return _response("200 OK", body)
