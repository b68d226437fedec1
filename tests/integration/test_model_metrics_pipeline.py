"""End to end: ``model-metrics``, ``recommendation-requests`` and ``recommendation-responses``
into ``agg.model.metrics`` through a real worker process.

Events come from the simulator's LENS factories (heavy-tailed latencies, partial and error
responses, requests without a model version), produced with confluent-kafka's producer and
AvroSerializer, beside broken ones: reports using a reserved or malformed metric type, a
response of a newer writer whose status this reader does not know, and broken frames. The
expected records are computed here with plain Python and numpy (exact nearest-rank
percentiles); count, mean, min and max must be equal, the percentiles within 1%, and every
broken message must be in the DLQ with its reason.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest

from app.catalog import SCHEMA_DIR
from app.tools.results import read_dead_letters, read_derived
from app.tools.simulator import lens
from app.tools.simulator.population import Population

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
BASE_MS = 1_754_922_600_000  # aligned to the window
SPAN_MS = 35_000  # 4 windows, the last one partial
ROUNDS = 700
TOPIC = "agg.model.metrics"
SOURCES = ("model-metrics", "recommendation-requests", "recommendation-responses")


def lens_events() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(key, event) per source topic, in event-time order over the span."""
    rng = random.Random(21)
    factories = [f for f in lens.factories(Population(seed=21, size=300)) if f.topic in SOURCES]
    out: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for i in range(ROUNDS):
        now = BASE_MS + (i * SPAN_MS) // ROUNDS
        for factory in factories:
            out[factory.topic].append(factory.make(rng, now))
    for events in out.values():
        events.sort(key=lambda pair: pair[1]["timestamp"])
    return out


def stats(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "mean": math.fsum(values) / len(values),
            "min": float(min(values)), "max": float(max(values))}  # fmt: skip


def oracle(events: dict[str, list[tuple[str, dict[str, Any]]]]) -> dict[tuple, dict[str, Any]]:
    """(window start, model, version, metric type) -> the record's metric fields."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for _, e in events["model-metrics"]:
        groups[(e["modelName"], e["modelVersion"], e["metricType"], _window(e))].append(e)
    for _, e in events["recommendation-requests"]:
        version = e["modelVersion"] or "unknown"
        groups[(e["modelName"], version, "requests", _window(e))].append(e)
    for _, e in events["recommendation-responses"]:
        for metric in ("latency_ms", "error_rate"):
            groups[(e["modelName"], e["modelVersion"], metric, _window(e))].append(e)
    no_quantiles = {"p50": None, "p95": None, "p99": None}
    out: dict[tuple, dict[str, Any]] = {}
    for (model, version, metric, start), group in groups.items():
        if metric == "requests":
            record = {**stats([e["numRecommendations"] for e in group]), **no_quantiles}
        elif metric == "error_rate":
            errors = sum(e["status"] == "error" for e in group)
            record = {"count": len(group), "mean": errors / len(group), "min": None,
                      "max": None, **no_quantiles}  # fmt: skip
        elif metric == "latency_ms":
            times = [e["processingTime"] for e in group]
            record = stats(times)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                record[name] = float(np.percentile(times, q * 100, method="lower"))
        else:
            record = {**stats([e["value"] for e in group]), **no_quantiles}
        out[(start, model, version, metric)] = record
    return out


def _window(event: dict[str, Any]) -> int:
    return event["timestamp"] // WINDOW_MS * WINDOW_MS


def newer_response_schema() -> dict[str, Any]:
    """A newer writer's RecommendationResponse: one more status symbol."""
    schema = json.loads((SCHEMA_DIR / "lens/RecommendationResponse.avsc").read_text())
    status = next(f for f in schema["fields"] if f["name"] == "status")
    status["type"]["symbols"].append("timeout")
    return schema


def test_model_metrics_equal_the_oracle_and_broken_input_is_dead_lettered(
    stack: Any, start_worker_process: Any
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    events = lens_events()
    registry = SchemaRegistryClient({"url": stack.registry_url})
    serializers = {
        topic: AvroSerializer(registry, (SCHEMA_DIR / spec).read_text())
        for topic, spec in (
            ("model-metrics", "lens/ModelMetric.avsc"),
            ("recommendation-requests", "lens/RecommendationRequest.avsc"),
            ("recommendation-responses", "lens/RecommendationResponse.avsc"),
        )
    }
    newer = AvroSerializer(registry, json.dumps(newer_response_schema()))

    def ctx(topic: str) -> SerializationContext:
        return SerializationContext(topic, MessageField.VALUE)

    expected: dict[str, Counter] = {topic: Counter() for topic in SOURCES}
    broken: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    report = dict(events["model-metrics"][5][1])
    for metric, reason in (("latency_ms", "reserved_metric_type"), ("ctr", "reserved_metric_type"),
                           ("requests", "reserved_metric_type"),
                           ("error_rate", "reserved_metric_type"),
                           ("Recall@10", "metric_type_format")):  # fmt: skip
        value = serializers["model-metrics"]({**report, "metricType": metric}, ctx("model-metrics"))
        broken["model-metrics"].append(("m", value))
        expected["model-metrics"][f"validation.{reason}"] += 1
    response = next(e for _, e in events["recommendation-responses"] if e["status"] == "error")
    for _ in range(3):
        value = newer({**response, "status": "timeout"}, ctx("recommendation-responses"))
        broken["recommendation-responses"].append((response["userId"], value))
    expected["recommendation-responses"]["validation.status_value"] += 3
    request = dict(events["recommendation-requests"][0][1])
    value = serializers["recommendation-requests"]({**request, "numRecommendations": 0},
                                                   ctx("recommendation-requests"))  # fmt: skip
    broken["recommendation-requests"].append((request["userId"], value))
    expected["recommendation-requests"]["validation.num_recommendations_range"] += 1
    for topic in SOURCES:
        good = serializers[topic](events[topic][0][1], ctx(topic))
        for reason, value in (("decode.magic_byte", b"\x07" + good[1:]),
                              ("decode.unknown_schema", b"\x00\x00\x0f\x42\x3f" + good[5:]),
                              ("decode.malformed", good[: len(good) // 2])):  # fmt: skip
            broken[topic].append(("raw", value))
            expected[topic][reason] += 1

    start_worker_process("sp-model-metrics", WINDOW_SECONDS="10", GRACE_SECONDS="2",
                         IDLE_ADVANCE_SECONDS="2", STORE_URL="rocksdb://")  # fmt: skip
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    for topic in SOURCES:
        for key, event in events[topic]:
            producer.produce(topic, key=key, value=serializers[topic](event, ctx(topic)))
        for key, value in broken[topic]:
            producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    want = oracle(events)
    dead_expected = sum(sum(c.values()) for c in expected.values())
    deadline = time.monotonic() + 90
    while True:
        records = asyncio.run(read_derived(stack.bootstrap, stack.registry_url, (TOPIC,)))[TOPIC]
        dead = asyncio.run(read_dead_letters(stack.bootstrap))
        if (len(records) >= len(want) and len(dead) >= dead_expected) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(2)

    reasons: dict[str, Counter] = {topic: Counter() for topic in SOURCES}
    for letter in dead:
        assert letter.headers["error.message"]
        reasons[letter.headers["source.topic"]][letter.headers["error.reason"]] += 1
    assert reasons == expected

    got: dict[tuple, dict[str, Any]] = {}
    for record in records:
        key = (record["window_start"], record["model_name"], record["model_version"],
               record["metric_type"])  # fmt: skip
        assert key not in got, f"{key} published twice"
        assert record["event_type"] == "model.metrics" and record["privacy_tier"] == "internal"
        assert record["window_end"] - record["window_start"] == WINDOW_MS
        got[key] = record
    assert set(got) == set(want)
    for key, metrics in want.items():
        for name, value in metrics.items():
            if name in ("p50", "p95", "p99") and value is not None:
                assert abs(got[key][name] - value) <= 0.01 * value, (key, name, got[key][name])
            else:
                assert got[key][name] == value, (key, name, got[key][name], value)
    assert {k[3] for k in got} >= {"latency_ms", "error_rate", "requests", "accuracy"}
    assert any(k[2] == "unknown" for k in got)
    assert any(r["mean"] and r["metric_type"] == "error_rate" for r in records)
