"""LENS rules and the ``agg.model.metrics`` aggregates, against oracles written here.

The oracle shares no code with ``models/``: plain sums, ``min``/``max``, and the exact
nearest-rank percentile (numpy's ``lower``: the value at rank ``floor(q * (n - 1))``, the rank
DDSketch answers for) of the sorted values.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.windowing import build_partials, decode_key
from app.tools.simulator import lens
from app.tools.simulator.population import Population
from app.validation import UNKNOWN_EVENT_TYPE
from app.validation.lens import (
    validate_ab_event,
    validate_interaction,
    validate_model_metric,
    validate_request,
    validate_response,
)
from models.lens import MODEL_ERRORS, MODEL_LATENCY, MODEL_REPORTED, MODEL_REQUESTS

NOW_MS = 1_754_922_600_000
WINDOW_MS = 10_000


def simulated(n: int = 400, seed: int = 4) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    factories = lens.factories(Population(seed))
    for i in range(n):
        for factory in factories:
            out[factory.topic].append(factory.make(rng, NOW_MS + i * 97)[1])
    return out


EVENTS = simulated()
VALIDATORS = {
    "user-interactions": validate_interaction,
    "recommendation-requests": validate_request,
    "recommendation-responses": validate_response,
    "model-metrics": validate_model_metric,
    "ab-test-events": validate_ab_event,
}


@pytest.mark.parametrize("topic", sorted(VALIDATORS))
def test_simulated_lens_events_pass_their_rules(topic: str) -> None:
    assert EVENTS[topic]
    for event in EVENTS[topic]:
        assert VALIDATORS[topic](event) is None, event


def broken(topic: str, **changes: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(EVENTS[topic][3]))
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("topic", "changes", "reason"),
    [
        ("model-metrics", {"metricType": "latency_ms"}, "validation.reserved_metric_type"),
        ("model-metrics", {"metricType": "ctr"}, "validation.reserved_metric_type"),
        ("model-metrics", {"metricType": "requests"}, "validation.reserved_metric_type"),
        ("model-metrics", {"metricType": "error_rate"}, "validation.reserved_metric_type"),
        ("model-metrics", {"metricType": "Accuracy"}, "validation.metric_type_format"),
        ("model-metrics", {"metricType": "p99-latency"}, "validation.metric_type_format"),
        ("model-metrics", {"metricType": "9lives"}, "validation.metric_type_format"),
        ("model-metrics", {"metricType": ""}, "validation.required_fields"),
        ("model-metrics", {"value": math.nan}, "validation.value_range"),
        ("model-metrics", {"value": math.inf}, "validation.value_range"),
        ("model-metrics", {"eventId": "m-1"}, "validation.event_id_format"),
        ("model-metrics", {"windowStart": NOW_MS + 1, "windowEnd": NOW_MS},
         "validation.report_window"),
        ("model-metrics", {"timestamp": NOW_MS // 1000}, "validation.timestamp_range"),
        ("recommendation-requests", {"numRecommendations": 0},
         "validation.num_recommendations_range"),
        ("recommendation-requests", {"userId": " "}, "validation.required_fields"),
        ("recommendation-responses", {"status": "timeout"}, "validation.status_value"),
        ("recommendation-responses", {"processingTime": -1.0},
         "validation.processing_time_range"),
        ("recommendation-responses", {"processingTime": math.nan},
         "validation.processing_time_range"),
        ("recommendation-responses", {"status": "error"}, "validation.recommendations_items"),
        ("recommendation-responses", {"recommendations": [{"itemId": ""}]},
         "validation.recommendations_items"),
        ("user-interactions", {"interactionType": "share"}, UNKNOWN_EVENT_TYPE),
        ("user-interactions", {"interactionType": "rating", "rating": 6.0},
         "validation.rating_range"),
        ("user-interactions", {"eventId": "x"}, "validation.event_id_format"),
        ("ab-test-events", {"eventType": "exposure"}, UNKNOWN_EVENT_TYPE),
        ("ab-test-events", {"experimentId": ""}, "validation.required_fields"),
    ],
)  # fmt: skip
def test_each_broken_rule_has_its_reason(topic: str, changes: dict[str, Any], reason: str) -> None:
    event = broken(topic, **changes)
    if topic == "recommendation-responses" and "recommendations" in changes:
        event["status"] = "success"
    violation = VALIDATORS[topic](event)
    assert violation is not None and violation.reason == reason, (changes, violation)
    assert violation.message


def fold(aggregate: Any, events: list[dict[str, Any]], cuts: int, seed: int) -> dict:
    """Fold ``events`` in random fetches and merge the partials in a random order."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, len(events)), min(cuts, len(events) - 1)))
    fetches = [events[a:b] for a, b in zip([0, *points], [*points, len(events)], strict=True)]
    rng.shuffle(fetches)
    merged: dict[tuple[str, int], Any] = {}
    for fetch in fetches:
        for key, windows in build_partials(aggregate, fetch, WINDOW_MS, "timestamp").items():
            for start, acc in json.loads(json.dumps(windows)).items():  # as on the wire
                existing = merged.get((key, int(start)))
                merged[(key, int(start))] = (
                    acc if existing is None else aggregate.merge(existing, acc)
                )
    return {(decode_key(k), s): aggregate.extract(acc) for (k, s), acc in merged.items()}


def by_window(events: list[dict[str, Any]], key: Any) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        groups[(key(e), e["timestamp"] // WINDOW_MS * WINDOW_MS)].append(e)
    return groups


def test_reported_metrics_equal_the_oracle() -> None:
    events = EVENTS["model-metrics"]
    got = fold(MODEL_REPORTED, events, cuts=17, seed=1)
    want = by_window(events, lambda e: (e["modelName"], e["modelVersion"], e["metricType"]))
    assert set(got) == set(want)
    for key, group in want.items():
        values = [e["value"] for e in group]
        assert got[key] == {
            "count": len(values), "mean": math.fsum(values) / len(values),
            "min": min(values), "max": max(values), "p50": None, "p95": None, "p99": None,
        }  # fmt: skip


def test_requests_count_under_unknown_without_a_version() -> None:
    events = EVENTS["recommendation-requests"]
    assert any(e["modelVersion"] is None for e in events)
    got = fold(MODEL_REQUESTS, events, cuts=9, seed=2)
    want = by_window(events, lambda e: (e["modelName"], e["modelVersion"] or "unknown",
                                        "requests"))  # fmt: skip
    assert set(got) == set(want)
    for key, group in want.items():
        asked = [e["numRecommendations"] for e in group]
        assert got[key]["count"] == len(asked)
        assert got[key]["mean"] == sum(asked) / len(asked)
        assert (got[key]["min"], got[key]["max"]) == (min(asked), max(asked))


def test_latency_percentiles_are_within_one_percent_and_errors_exact() -> None:
    events = EVENTS["recommendation-responses"]
    latency = fold(MODEL_LATENCY, events, cuts=23, seed=3)
    errors = fold(MODEL_ERRORS, events, cuts=5, seed=4)
    groups = by_window(events, lambda e: (e["modelName"], e["modelVersion"]))
    assert len(groups) > 6
    for (model, start), group in groups.items():
        times = np.array([e["processingTime"] for e in group])
        record = latency[((*model, "latency_ms"), start)]
        assert record["count"] == len(times)
        assert record["mean"] == math.fsum(times) / len(times)
        assert (record["min"], record["max"]) == (times.min(), times.max())
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            exact = float(np.percentile(times, q * 100, method="lower"))
            assert abs(record[name] - exact) <= 0.01 * exact, (model, name, record[name], exact)
        record = errors[((*model, "error_rate"), start)]
        failed = sum(e["status"] == "error" for e in group)
        assert record == {"count": len(group), "mean": failed / len(group), "min": None,
                          "max": None, "p50": None, "p95": None, "p99": None}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, max_value=60_000.0, allow_nan=False), min_size=1, max_size=300
    ),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=0, max_value=10**6),
)
def test_a_sketch_cut_and_merged_anyhow_answers_like_one_sketch(
    values: list[float], cuts: int, seed: int
) -> None:
    events = [
        {"timestamp": NOW_MS, "modelName": "m", "modelVersion": "1", "processingTime": v,
         "status": "success"}
        for v in values
    ]  # fmt: skip
    got = fold(MODEL_LATENCY, events, cuts=cuts, seed=seed)
    whole = fold(MODEL_LATENCY, events, cuts=0, seed=0)
    assert got == whole
    (record,) = got.values()
    ordered = sorted(values)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = ordered[math.floor(q * (len(values) - 1))]
        assert abs(record[name] - exact) <= 0.01 * exact + 1e-9, (name, record[name], exact)
