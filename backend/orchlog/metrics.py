"""Prometheus metrics (``/metrics``), one registry per runtime (no global state).

Counters and histograms are fed where things happen (ingest, writer batches, HTTP requests);
gauges (queue depth, subscribers, hub lag, sizes) are read from the runtime at scrape time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def route_label(path: str) -> str:
    """Low-cardinality route names: ids become {id}; unknown paths collapse to 'other'."""
    path = _ID.sub("/{id}", path)
    if path.startswith(("/api/v1/", "/ws", "/health", "/readyz", "/metrics", "/get_", "/list_", "/load_chat")):
        return path
    return "/" if path == "/" else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingest_events = Counter(
            "orchlog_ingest_events", "Events acknowledged by ingest", ["kind", "result"], registry=r
        )
        self.http_requests = Counter(
            "orchlog_http_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "orchlog_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_events = Histogram(
            "orchlog_writer_batch_events",
            "Events per group commit",
            registry=r,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
        )
        self.commit_seconds = Histogram(
            "orchlog_writer_commit_seconds",
            "Duration of one write transaction",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.sizes: dict[str, int] = {}

    def observe_batch(self, events: int, seconds: float) -> None:
        self.batch_events.observe(events)
        self.commit_seconds.observe(seconds)

    def attach(self, runtime: Runtime) -> None:
        self.registry.register(_RuntimeCollector(runtime, self))
        runtime.writer.on_batch(self.observe_batch)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self.rt = runtime
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rt = self.rt
        yield GaugeMetricFamily("orchlog_writer_queue_depth", "Requests waiting for the writer", rt.writer.depth)
        yield CounterMetricFamily(
            "orchlog_writer_failed_batches", "Batches that failed as a whole", rt.writer.stats.failed_batches
        )
        subs = GaugeMetricFamily("orchlog_subscribers", "Open live streams", labels=["transport"])
        for transport, count in sorted(rt.stream_counts.items()):
            subs.add_metric([transport], count)
        yield subs
        yield GaugeMetricFamily("orchlog_subscriptions_live", "Subscriptions in the hub's fan-out", rt.hub.subscribers)
        yield CounterMetricFamily(
            "orchlog_subscriber_overflows",
            "Subscribers that fell behind and caught up from the database",
            rt.hub.overflows,
        )
        yield CounterMetricFamily("orchlog_stream_resets", "reset frames sent", rt.hub.resets)
        yield GaugeMetricFamily("orchlog_head_seq", "Newest committed seq (this process)", rt.writer.head_seq)
        yield GaugeMetricFamily(
            "orchlog_hub_lag", "Committed seqs not yet read by the hub", max(0, rt.writer.head_seq - rt.hub.cursor)
        )
        deleted = CounterMetricFamily("orchlog_retention_deleted", "Rows deleted by retention", labels=["table"])
        for table, count in sorted(rt.deleted.items()):
            deleted.add_metric([table], count)
        yield deleted
        for name, value in sorted(self.metrics.sizes.items()):
            yield GaugeMetricFamily(f"orchlog_{name}", f"Size of the database file ({name})", value)
