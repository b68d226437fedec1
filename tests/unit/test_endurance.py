"""bench/endurance.py's arithmetic: quantiles from histogram buckets, lag, the RSS trend."""

from __future__ import annotations

import random

import pytest

from bench.endurance import Sample, histogram_quantile, lag, latency_buckets, rss_slope

BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))


def cumulative(values: list[float]) -> dict[float, float]:
    return {b: float(sum(v <= b for v in values)) for b in BOUNDS}


def test_quantiles_land_in_the_right_bucket_and_interpolate_like_prometheus() -> None:
    rng = random.Random(1)
    values = [rng.uniform(0.05, 0.1) for _ in range(1000)]
    p50 = histogram_quantile(cumulative(values), 0.5)
    assert p50 is not None and 0.05 <= p50 <= 0.1
    # Prometheus' rule: within the bucket, linear in rank: half the bucket's range here.
    assert p50 == pytest.approx(0.075, abs=1e-9)
    assert histogram_quantile(cumulative([0.2] * 99 + [0.7]), 0.99) == pytest.approx(0.25)
    assert histogram_quantile(cumulative([5.0] * 10), 0.5) == 1.0  # +Inf: the last finite bound
    assert histogram_quantile({b: 0.0 for b in BOUNDS}, 0.5) is None


def test_lag_sums_source_partitions_only() -> None:
    def key(name: str, topic: str, partition: str) -> tuple[str, frozenset]:
        return (name, frozenset({("topic", topic), ("partition", partition)}))

    samples = {
        key("faust_topic_partition_end_offset", "acme-telemetry", "0"): 500.0,
        key("faust_topic_partition_offset_commited", "acme-telemetry", "0"): 200.0,
        key("faust_topic_partition_end_offset", "orders.raw", "1"): 50.0,
        key("faust_topic_partition_offset_commited", "orders.raw", "1"): 50.0,
        key("faust_topic_partition_end_offset", "app-agg.x-partials", "0"): 9999.0,
        ("streampulse_events_consumed_total", frozenset({("topic", "orders.raw")})): 7.0,
    }
    assert lag(samples) == 300


def test_latency_buckets_by_table() -> None:
    samples = {
        ("streampulse_table_latency_seconds_bucket",
         frozenset({("table", "t"), ("le", "0.1")})): 3.0,
        ("streampulse_table_latency_seconds_bucket",
         frozenset({("table", "t"), ("le", "+Inf")})): 4.0,
    }  # fmt: skip
    assert latency_buckets(samples) == {"t": {0.1: 3.0, float("inf"): 4.0}}


def sample(minute: float, rss: float) -> Sample:
    return Sample(minute, rss, 50, 100, 30, 300.0, 0, 20.0, 80.0)


def test_rss_slope_is_the_second_half_trend_in_mb_per_hour() -> None:
    warm_up = [sample(m, 100 + 10 * m) for m in range(0, 15)]  # grows while windows fill
    steady = [sample(m, 250 + 0.5 * m) for m in range(15, 31)]  # then +0.5 MB/min
    assert rss_slope(warm_up + steady) == pytest.approx(30.0)  # 0.5 MB/min = 30 MB/h
    assert rss_slope([sample(0, 1), sample(1, 1)]) == 0.0
