"""observe_many must leave a histogram exactly as one observe() per value would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from app.metrics import observe_many


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
