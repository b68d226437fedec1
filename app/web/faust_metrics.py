"""Faust's own sensor metrics (``faust.sensors.prometheus``) in our Prometheus exposition.

``setup_prometheus_sensors`` would register a second ``/metrics`` view (ours serves the default
registry already) and name the metrics after the app id. Instead :func:`install` puts a
``PrometheusMonitor`` on the app, its metrics (prefix ``faust_``, whatever ``APP_ID`` is) in
the same registry as ``app/engine/metrics.py``'s, so one exposition carries both.

Faust observes its latencies in milliseconds and names one histogram ``..._runtime_ms``, which
``promtool check metrics`` rejects (abbreviated, non-base unit). Its latency histograms are
therefore replaced by ``..._seconds`` ones with the same buckets in seconds, fed through
:class:`MillisecondsToSeconds`; every other metric keeps Faust's name and help. Labels stay
bounded: topic, partition, table, operation, stream, status code and Faust's metric names.
"""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import MS_LATENCY_BUCKETS, FaustMetrics, PrometheusMonitor
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

__all__ = ["LATENCY_HISTOGRAMS", "PREFIX", "MillisecondsToSeconds", "create_metrics", "install"]

PREFIX = "faust"

#: FaustMetrics field -> (metric name after the prefix, help)
LATENCY_HISTOGRAMS: dict[str, tuple[str, str]] = {
    "events_runtime_latency": ("events_runtime_seconds", "Stream event processing time"),
    "producer_send_latency": ("producer_send_latency_seconds", "Producer send latency"),
    "producer_error_send_latency": (
        "producer_error_send_latency_seconds",
        "Latency of producer sends that failed",
    ),
    "assign_latency": ("assign_latency_seconds", "Partition assignment latency"),
    "rebalance_done_consumer_latency": (
        "rebalance_done_consumer_latency_seconds",
        "Time until the consumer replied to the broker that its rebalance was done",
    ),
    "rebalance_done_latency": (
        "rebalance_done_latency_seconds",
        "Time until a rebalance fully finished (recovery included)",
    ),
    "http_latency": ("http_latency_seconds", "Web server response latency"),
    "consumer_commit_latency": ("consumer_commit_latency_seconds", "Consumer commit latency"),
}

SECONDS_BUCKETS = tuple(ms / 1000 for ms in MS_LATENCY_BUCKETS)


class MillisecondsToSeconds:
    """A histogram Faust's monitor observes in milliseconds, recorded in seconds."""

    __slots__ = ("histogram",)

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram

    def observe(self, amount: float, *args: Any, **kwargs: Any) -> None:
        self.histogram.observe(amount / 1000.0, *args, **kwargs)


def create_metrics(registry: CollectorRegistry = REGISTRY, prefix: str = PREFIX) -> FaustMetrics:
    """Faust's metric set, registered in ``registry``, latencies as ``_seconds`` histograms."""
    scratch = CollectorRegistry(auto_describe=True)
    base = FaustMetrics.create(scratch, prefix)
    replaced: dict[str, Any] = {}
    for field, metric in base._asdict().items():
        if field in LATENCY_HISTOGRAMS:
            name, help_text = LATENCY_HISTOGRAMS[field]
            replaced[field] = MillisecondsToSeconds(
                Histogram(f"{prefix}_{name}", help_text, registry=registry, buckets=SECONDS_BUCKETS)
            )
        else:
            registry.register(metric)
    return base._replace(**replaced)


def install(app: Any, registry: CollectorRegistry = REGISTRY) -> PrometheusMonitor:
    """Give ``app`` a PrometheusMonitor (before the worker starts); idempotent per app."""
    current = getattr(app, "_monitor", None)  # not ``app.monitor``: that creates one
    if isinstance(current, PrometheusMonitor):
        return current
    monitor = PrometheusMonitor(metrics=create_metrics(registry))
    app.monitor = monitor
    return monitor
