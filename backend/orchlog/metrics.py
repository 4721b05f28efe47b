"""Prometheus metrics (``/metrics``), one registry per runtime (no global state).

Counters and histograms are fed where things happen (ingest, writer batches, HTTP requests);
gauges (queue depth, subscribers, hub lag, sizes) are read from the runtime at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Stats:
    """What the runtime reports at scrape time (a snapshot, so this module needs no runtime)."""

    writer_depth: int = 0
    failed_batches: int = 0
    streams: Mapping[str, int] = field(default_factory=dict)
    subscriptions: int = 0
    overflows: int = 0
    resets: int = 0
    head_seq: int = 0
    hub_cursor: int = 0
    deleted: Mapping[str, int] = field(default_factory=dict)


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
        # labelled children by label values: ``labels()`` parses and locks on every call, which
        # showed in the 1-event ingest profile (the label sets are bounded by the route table)
        self._requests: dict[tuple[str, ...], Any] = {}
        self._latency: dict[tuple[str, ...], Any] = {}
        self._ingested: dict[tuple[str, ...], Any] = {}

    def observe_batch(self, events: int, seconds: float) -> None:
        self.batch_events.observe(events)
        self.commit_seconds.observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """``route`` is the route table's declared path (or its one label for unknown paths)."""
        _child(self._latency, self.http_seconds, route).observe(seconds)
        method = method if method in _METHODS else "other"
        _child(self._requests, self.http_requests, route, method, str(status)).inc()

    def count_ingested(self, kind: str, result: str, n: int) -> None:
        """``n`` events of ``kind`` acknowledged as ``result`` (stored or duplicate)."""
        _child(self._ingested, self.ingest_events, kind, result).inc(n)

    def attach(self, stats: Callable[[], Stats]) -> None:
        self.registry.register(_RuntimeCollector(stats, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _child(cache: dict[tuple[str, ...], Any], metric: Counter | Histogram, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set."""
    child = cache.get(labels)
    if child is None:
        child = cache[labels] = metric.labels(*labels)
    return child


_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})


class _RuntimeCollector(Collector):
    def __init__(self, stats: Callable[[], Stats], metrics: Metrics) -> None:
        self.stats = stats
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st = self.stats()
        yield GaugeMetricFamily("orchlog_writer_queue_depth", "Requests waiting for the writer", st.writer_depth)
        yield CounterMetricFamily("orchlog_writer_failed_batches", "Batches that failed as a whole", st.failed_batches)
        subs = GaugeMetricFamily("orchlog_subscribers", "Open live streams", labels=["transport"])
        for transport, count in sorted(st.streams.items()):
            subs.add_metric([transport], count)
        yield subs
        yield GaugeMetricFamily("orchlog_subscriptions_live", "Subscriptions in the hub's fan-out", st.subscriptions)
        yield CounterMetricFamily(
            "orchlog_subscriber_overflows",
            "Subscribers that fell behind and caught up from the database",
            st.overflows,
        )
        yield CounterMetricFamily("orchlog_stream_resets", "reset frames sent", st.resets)
        yield GaugeMetricFamily("orchlog_head_seq", "Newest committed seq (this process)", st.head_seq)
        yield GaugeMetricFamily(
            "orchlog_hub_lag", "Committed seqs not yet read by the hub", max(0, st.head_seq - st.hub_cursor)
        )
        deleted = CounterMetricFamily("orchlog_retention_deleted", "Rows deleted by retention", labels=["table"])
        for table, count in sorted(st.deleted.items()):
            deleted.add_metric([table], count)
        yield deleted
        for name, value in sorted(self.metrics.sizes.items()):
            yield GaugeMetricFamily(f"orchlog_{name}", f"Size of the database file ({name})", value)
