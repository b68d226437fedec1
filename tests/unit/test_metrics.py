"""observe_many and observe_spread must leave a histogram as the observe() calls they stand for."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from app.engine.metrics import observe_many, observe_spread


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_matches_observe_one_by_one() -> None:
    buckets = (0.1, 0.5, 1.0, 5.0)
    one_by_one = Histogram("a", "a", buckets=buckets, registry=CollectorRegistry())
    batched = Histogram("b", "b", buckets=buckets, registry=CollectorRegistry())
    rng = random.Random(3)
    # Bounds themselves, values between them, beyond the last bound, zero and negatives.
    values = [0.1, 0.5, 1.0, 5.0, 0.0, -1.0, 7.5, *(rng.uniform(-1, 10) for _ in range(500))]
    for value in values:
        one_by_one.observe(value)
    observe_many(batched, values)
    expected = {(n.replace("a_", "b_", 1), le): v for (n, le), v in _samples(one_by_one).items()}
    assert _samples(batched) == expected
    assert _samples(batched)[("b_count", "")] == len(values)


def test_observe_many_of_nothing_changes_nothing() -> None:
    histogram = Histogram("c", "c", buckets=(1.0,), registry=CollectorRegistry())
    observe_many(histogram, [])
    assert _samples(histogram)[("c_count", "")] == 0


def test_observe_spread_matches_the_evenly_spaced_points_it_stands_for() -> None:
    """count values over [low, high]: 32 evenly spaced points, weights summing to count."""
    buckets = (0.05, 0.1, 0.2, 0.5)
    spread = Histogram("d", "d", buckets=buckets, registry=CollectorRegistry())
    expected = Histogram("e", "e", buckets=buckets, registry=CollectorRegistry())
    low, high, count = 0.02, 0.3, 100  # 100 events = 32 points, weights 4 x4 and 28 x3
    observe_spread(spread, low, high, count)
    for index in range(32):
        value = low + (high - low) * (index + 0.5) / 32
        for _ in range(4 if index < 4 else 3):
            expected.observe(value)
    got = _samples(spread)
    want = {(n.replace("e_", "d_", 1), le): v for (n, le), v in _samples(expected).items()}
    assert got[("d_count", "")] == count
    assert {k: v for k, v in got.items() if k[0] != "d_sum"} == {
        k: v for k, v in want.items() if k[0] != "d_sum"
    }
    assert abs(got[("d_sum", "")] - want[("d_sum", "")]) < 1e-9


def test_observe_spread_of_fewer_events_than_points_observes_each_once() -> None:
    histogram = Histogram("f", "f", buckets=(0.1, 1.0), registry=CollectorRegistry())
    observe_spread(histogram, 0.0, 0.4, 2)  # points 0.1 and 0.3
    samples = _samples(histogram)
    assert samples[("f_count", "")] == 2
    assert samples[("f_bucket", "0.1")] == 1
    assert abs(samples[("f_sum", "")] - 0.4) < 1e-9
    observe_spread(histogram, 0.0, 1.0, 0)
    assert _samples(histogram)[("f_count", "")] == 2
