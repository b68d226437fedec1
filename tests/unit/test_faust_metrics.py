"""Faust's sensor metrics in our registry: seconds instead of milliseconds, names promtool likes."""

from __future__ import annotations

import re

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry, generate_latest

from app.web.faust_metrics import LATENCY_HISTOGRAMS, create_metrics, install


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def test_latency_histograms_observe_seconds() -> None:
    registry = CollectorRegistry()
    metrics = create_metrics(registry, "faust")
    metrics.producer_send_latency.observe(250.0)  # Faust observes milliseconds
    metrics.producer_send_latency.observe(4.0)
    assert sample(registry, "faust_producer_send_latency_seconds_count") == 2
    assert sample(registry, "faust_producer_send_latency_seconds_sum") == 0.254
    assert sample(registry, "faust_producer_send_latency_seconds_bucket", le="0.005") == 1
    assert sample(registry, "faust_producer_send_latency_seconds_bucket", le="0.25") == 2
    # every other metric keeps Faust's name
    metrics.table_operations.labels(table="table.t", operation="keys_updated").inc()
    assert sample(registry, "faust_table_operations_total",
                  table="table.t", operation="keys_updated") == 1  # fmt: skip


def test_exposition_has_help_and_no_millisecond_names() -> None:
    registry = CollectorRegistry()
    create_metrics(registry, "faust")
    text = generate_latest(registry).decode()
    names = {(n, k) for n, k in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
             if not n.endswith("_created")}  # fmt: skip
    assert len(names) == len(FaustMetrics._fields)
    for name, kind in names:
        assert name.startswith("faust_")
        assert not re.search(r"_ms(_|$)|millisecond", name), name
        assert f"# HELP {name} " in text, name
        if kind == "counter":
            assert name.endswith("_total"), name
    for _field, (name, _help) in LATENCY_HISTOGRAMS.items():
        assert (f"faust_{name}", "histogram") in names


def test_install_replaces_the_monitor_once() -> None:
    app = faust.App("test-faust-metrics", broker="memory://")
    registry = CollectorRegistry()
    monitor = install(app, registry)
    assert isinstance(monitor, PrometheusMonitor) and app.monitor is monitor
    assert install(app, registry) is monitor  # a second call registers nothing twice
