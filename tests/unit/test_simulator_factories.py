"""Simulator factories: schema-valid, seeded, keyed per the catalog, consistent across topics."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import validate

from app.catalog import SOURCE_TOPICS, load_schema
from app.tools.simulator import downloads, lens, orders
from app.tools.simulator.population import EXPERIMENTS, EventFactory, Population

SEED = 20240601
NOW_MS = 1_717_200_000_000
STEP_MS = 250
ROOT = Path(__file__).resolve().parents[2]


def _lens(cls: type) -> Callable[[Population], EventFactory]:
    def build(population: Population) -> EventFactory:
        return next(f for f in lens.factories(population) if isinstance(f, cls))

    return build


BUILDERS: dict[str, Callable[[Population], EventFactory]] = {
    "downloads-v1": downloads.ContentDownloadFactory,
    "downloads-v2": downloads.ContentDownloadV2Factory,
    "orders": orders.OrderFactory,
    "interactions": _lens(lens.UserInteractionFactory),
    "requests": _lens(lens.RecommendationRequestFactory),
    "responses": _lens(lens.RecommendationResponseFactory),
    "model-metrics": _lens(lens.ModelMetricFactory),
    "ab-tests": _lens(lens.ABTestFactory),
}


def _run(factory: EventFactory, seed: int = SEED, n: int = 200) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    return [factory.make(rng, NOW_MS + i * STEP_MS) for i in range(n)]


def _all_factories(population: Population) -> list[EventFactory]:
    return [
        *downloads.factories(population),
        *orders.factories(population),
        *lens.factories(population),
    ]


def _mixed(seed: int = SEED, rounds: int = 1500) -> list[tuple[str, str, dict[str, Any]]]:
    """All default factories interleaved, as the simulator runs them: (topic, key, value)."""
    population = Population(seed)
    factories = _all_factories(population)
    rng = random.Random(seed)
    events = []
    for i in range(rounds):
        for factory in factories:
            key, value = factory.make(rng, NOW_MS + i * STEP_MS)
            events.append((factory.topic, key, value))
    return events


def _parsed(schema_file: str) -> Any:
    return parse_schema(load_schema(schema_file))


@pytest.mark.parametrize("name", BUILDERS)
def test_events_validate_strictly_against_their_schema(name: str) -> None:
    factory = BUILDERS[name](Population(SEED))
    schema = _parsed(factory.schema_file)
    for _, value in _run(factory):
        assert validate(value, schema, strict=True)


@pytest.mark.parametrize("name", BUILDERS)
def test_same_seed_gives_identical_events(name: str) -> None:
    first = _run(BUILDERS[name](Population(SEED)))
    again = _run(BUILDERS[name](Population(SEED)))
    other = _run(BUILDERS[name](Population(SEED + 1)), seed=SEED + 1)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", BUILDERS)
def test_key_is_the_catalog_key_field(name: str) -> None:
    factory = BUILDERS[name](Population(SEED))
    key_field = SOURCE_TOPICS[factory.topic].key_field
    assert key_field is not None
    for key, value in _run(factory):
        assert isinstance(key, str) and key
        if factory.topic == "orders.raw":
            assert key == value["order_id"]
        assert key == value[key_field]


@pytest.mark.parametrize("name", BUILDERS)
def test_event_ids_are_unique_uuids(name: str) -> None:
    factory = BUILDERS[name](Population(SEED))
    id_field = {"recommendation-requests": "requestId", "recommendation-responses": "requestId"}
    field = id_field.get(factory.topic, "eventId" if "lens" in factory.schema_file else "event_id")
    ids = [value[field] for _, value in _run(factory)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_every_source_topic_but_telemetry_has_a_default_factory() -> None:
    topics = {f.topic for f in _all_factories(Population(SEED))}
    assert topics == set(SOURCE_TOPICS) - {"acme-telemetry"}
    for factory in _all_factories(Population(SEED)):
        assert factory.schema_file == SOURCE_TOPICS[factory.topic].schema_file


def test_mixed_run_validates_and_is_independent_of_hash_seed() -> None:
    schemas = {topic: _parsed(spec.schema_file) for topic, spec in SOURCE_TOPICS.items()}
    for topic, _, value in _mixed(rounds=300):
        assert validate(value, schemas[topic], strict=True)
    # Simulator processes run with random string hashing: seeded output must not depend on it.
    script = (
        "import hashlib, json, sys; sys.path.insert(0, 'tests/unit'); "
        "import test_simulator_factories as t; "
        "print(hashlib.sha256(json.dumps(t._mixed(rounds=200)).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        digests.add(out.stdout.strip())
    expected = hashlib.sha256(json.dumps(_mixed(rounds=200)).encode()).hexdigest()
    assert digests == {expected}


def _same(read: Any, written: Any) -> bool:
    """Equal after an Avro round trip: floats are 32-bit, timestamps come back as datetimes."""
    if isinstance(written, dict):
        return read.keys() == written.keys() and all(_same(read[k], written[k]) for k in written)
    if isinstance(written, float):
        return math.isclose(read, written, rel_tol=1e-6)
    return read == written


def test_v2_events_are_readable_with_the_v1_schema() -> None:
    v1 = _parsed(downloads.ContentDownloadFactory.schema_file)
    v2 = _parsed(downloads.V2_SCHEMA_FILE)
    events = _run(downloads.ContentDownloadV2Factory(Population(SEED)))
    assert {value["content_rating"] for _, value in events} >= {None, "G", "PG", "PG-13", "R"}
    for _, value in events:
        buffer = io.BytesIO()
        schemaless_writer(buffer, v2, value)
        buffer.seek(0)
        read = schemaless_reader(buffer, v2, v1)
        expected = {k: v for k, v in value.items() if k != "content_rating"}
        assert read["timestamp"] == datetime.fromtimestamp(value["timestamp"] / 1000, UTC)
        assert _same({**read, "timestamp": value["timestamp"]}, expected)


def test_v1_events_are_readable_with_the_v2_schema() -> None:
    v1 = _parsed(downloads.ContentDownloadFactory.schema_file)
    v2 = _parsed(downloads.V2_SCHEMA_FILE)
    for _, value in _run(downloads.ContentDownloadFactory(Population(SEED)), n=50):
        buffer = io.BytesIO()
        schemaless_writer(buffer, v1, value)
        buffer.seek(0)
        assert schemaless_reader(buffer, v1, v2)["content_rating"] is None


def test_download_outcomes_follow_the_seed_value_sets() -> None:
    events = [v for _, v in _run(downloads.ContentDownloadFactory(Population(SEED)), n=4000)]
    statuses = Counter(v["download"]["status"] for v in events)
    assert 0.81 < statuses["success"] / len(events) < 0.89
    assert 0.07 < statuses["failed"] / len(events) < 0.13
    assert 0.03 < statuses["cancelled"] / len(events) < 0.07
    for v in events:
        status, code = v["download"]["status"], v["download"]["error_code"]
        assert (code is not None) == (v["download"]["error_message"] is not None)
        if status == "failed":
            assert code in downloads.ERROR_CODES
        elif status == "success":
            assert code is None
        else:
            assert code in (None, downloads.CANCEL_CODE)
        assert v["content"]["type"] in {"movie", "tv_show", "music", "app", "book"}
        assert v["user_context"]["connection_type"] in {"wifi", "5g", "4g"}
    codes = Counter(v["download"]["error_code"] for v in events if v["download"]["error_code"])
    assert {"cdn_timeout", "network_error", downloads.CANCEL_CODE} <= set(codes)
    cancelled = [v for v in events if v["download"]["status"] == "cancelled"]
    assert 0 < sum(v["download"]["error_code"] is None for v in cancelled) < len(cancelled)


def test_download_failure_rates_differ_by_connection_and_region() -> None:
    """The simulated rates follow downloads.failure_rate: mobile and far regions fail more."""
    population = Population(SEED, size=2000)
    events = [v for _, v in _run(downloads.ContentDownloadFactory(population), n=30000)]

    def rate(predicate: Any) -> float:
        chosen = [v for v in events if predicate(v)]
        return sum(v["download"]["status"] == "failed" for v in chosen) / len(chosen)

    by_connection = {c: rate(lambda v, c=c: v["user_context"]["connection_type"] == c)
                     for c in ("wifi", "5g", "4g")}  # fmt: skip
    assert by_connection["wifi"] < by_connection["5g"] < by_connection["4g"]
    wifi = {r: rate(lambda v, r=r: v["user_context"]["region"] == r
                    and v["user_context"]["connection_type"] == "wifi")
            for r in ("APAC-Sydney", "EU-Berlin", "US-California")}  # fmt: skip
    for region, observed in wifi.items():
        assert observed == pytest.approx(downloads.failure_rate(region, "wifi"), abs=0.025)
    assert wifi["EU-Berlin"] < wifi["US-California"] < wifi["APAC-Sydney"]
    assert {v["user_context"]["region"] for v in events} >= {"US-California", "EU-London"}


def test_orders_follow_a_plausible_lifecycle() -> None:
    events = [v for _, v in _run(orders.OrderFactory(Population(SEED)), n=3000)]
    by_order: dict[str, list[str]] = defaultdict(list)
    for v in events:
        by_order[v["order_id"]].append(v["event_type"])
        assert v["payload"]["user_id"] is not None
    for history in by_order.values():
        assert history[0] == "ORDER_CREATED"
        assert history.count("ORDER_CREATED") == 1
        for before, after in itertools.pairwise(history):
            if after in ("PAYMENT_AUTHORIZED", "PAYMENT_FAILED"):
                assert before in ("ORDER_CREATED", "PAYMENT_FAILED")
            if after == "ORDER_CONFIRMED":
                assert before == "PAYMENT_AUTHORIZED"
            if after == "ORDER_DELIVERED":
                assert before == "ORDER_SHIPPED"
        if "ORDER_REFUNDED" in history:
            assert "PAYMENT_AUTHORIZED" in history
    types = Counter(v["event_type"] for v in events)
    assert set(types) == set(orders.EVENT_TYPES)
    failure_rate = types["PAYMENT_FAILED"] / (types["PAYMENT_AUTHORIZED"] + types["PAYMENT_FAILED"])
    assert 0.03 < failure_rate < 0.15
    created = [v for v in events if v["event_type"] == "ORDER_CREATED"]
    assert len({v["payload"]["currency"] for v in created}) >= 4
    for v in created:
        items = v["payload"]["items"]
        total = sum(i["quantity"] * i["unit_price"] for i in items)
        assert v["payload"]["total_amount"] == pytest.approx(total, abs=0.01)


def test_lens_events_reference_each_other() -> None:
    events = _mixed()
    requests = {v["requestId"]: v for t, _, v in events if t == "recommendation-requests"}
    responses = {v["requestId"]: v for t, _, v in events if t == "recommendation-responses"}
    assert len(responses) > 1000
    for request_id, response in responses.items():
        request = requests[request_id]
        assert response["userId"] == request["userId"]
        assert response["modelName"] == request["modelName"]
        assert response["timestamp"] >= request["timestamp"]
        ranks = [r["rank"] for r in response["recommendations"]]
        assert ranks == list(range(1, len(ranks) + 1))
        scores = [r["score"] for r in response["recommendations"]]
        assert scores == sorted(scores, reverse=True)
        if response["status"] == "success":
            assert len(ranks) == request["numRecommendations"]
    assert {r["status"] for r in responses.values()} == {"success", "partial", "error"}
    assert len({r["modelName"] for r in responses.values()}) == 3
    # Latency is log-normal: right-skewed, mean above median, each model near its own median.
    for model in lens.MODELS:
        latencies = [
            r["processingTime"] for r in responses.values() if r["modelName"] == model.name
        ]
        median = statistics.median(latencies)
        assert median == pytest.approx(model.median_latency_ms, rel=0.2)
        assert statistics.fmean(latencies) > median
    interactions = [v for t, _, v in events if t == "user-interactions"]
    recommended = [v for v in interactions if v["fromRecommendation"]]
    kinds = Counter(v["interactionType"] for v in recommended)
    assert kinds["view"] > 0 and kinds["click"] > 0 and kinds["purchase"] > 0
    assert Counter(v["interactionType"] for v in interactions if not v["fromRecommendation"])
    for v in recommended:
        response = responses[v["recommendationRequestId"]]
        shown = {r["itemId"]: r["rank"] for r in response["recommendations"]}
        assert shown[v["itemId"]] == v["position"]
        assert v["userId"] == response["userId"]
        assert v["modelName"] == response["modelName"]
    ctr = kinds["click"] / kinds["view"]
    assert 0.02 < ctr < 0.2


def test_responses_without_waiting_requests_still_get_their_request_emitted() -> None:
    world_factories = lens.factories(Population(SEED))
    requests = next(f for f in world_factories if f.topic == "recommendation-requests")
    responses = next(f for f in world_factories if f.topic == "recommendation-responses")
    rng = random.Random(SEED)
    answered = [responses.make(rng, NOW_MS)[1]["requestId"] for _ in range(5)]
    emitted = [requests.make(rng, NOW_MS + 1)[1]["requestId"] for _ in range(5)]
    assert emitted == answered


def test_model_metrics_cover_several_models_and_minute_windows() -> None:
    events = [v for _, v in _run(_lens(lens.ModelMetricFactory)(Population(SEED)), n=500)]
    assert len({v["modelName"] for v in events}) == 3
    assert {"accuracy", "precision", "recall", "latency"} <= {v["metricType"] for v in events}
    for v in events:
        assert v["windowEnd"] - v["windowStart"] == 60_000
        assert v["windowEnd"] <= v["timestamp"]
        if v["metricType"] != "latency":
            assert 0.0 <= v["value"] <= 1.0


def test_ab_assignments_precede_outcomes_and_join_other_topics() -> None:
    events = _mixed(rounds=3000)
    assigned_at: dict[tuple[str, str], int] = {}
    variants: dict[tuple[str, str], set[str]] = defaultdict(set)
    converted: dict[tuple[str, str], set[str]] = defaultdict(set)
    assigned: dict[tuple[str, str], set[str]] = defaultdict(set)
    cross_topic = 0
    for topic, _, v in events:
        if topic == "ab-test-events":
            pair = (v["experimentId"], v["userId"])
            variants[pair].add(v["variant"])
            if v["eventType"] == "assignment":
                assert pair not in assigned_at
                assigned_at[pair] = v["timestamp"]
                assigned[(v["experimentId"], v["variant"])].add(v["userId"])
            else:
                assert pair in assigned_at
                if v["eventType"] == "conversion":
                    converted[(v["experimentId"], v["variant"])].add(v["userId"])
        buyer = None
        if topic == "user-interactions" and v["interactionType"] == "purchase":
            buyer = v["userId"]
        elif topic == "orders.raw" and v["event_type"] == "ORDER_CREATED":
            buyer = v["payload"]["user_id"]
        if buyer is not None:
            cross_topic += sum((e, buyer) in assigned_at for e in EXPERIMENTS)
    assert all(len(v) == 1 for v in variants.values())
    assert {variant for (_, variant) in assigned} == {"control", "treatment", "treatment_b"}
    assert {experiment for (experiment, _) in assigned} == set(EXPERIMENTS)
    assert cross_topic > 0
    # Treatment converts slightly more, pooled over both experiments.
    rates = {
        variant: sum(len(converted[(e, variant)]) for e in EXPERIMENTS)
        / sum(len(assigned[(e, variant)]) for e in EXPERIMENTS)
        for variant in ("control", "treatment")
    }
    assert 0.0 < rates["control"] < rates["treatment"] < 2 * rates["control"]


def test_each_variant_has_its_stated_true_conversion_rate() -> None:
    """The share of shoppers (who all convert over a long run) among a variant's users is
    :func:`true_conversion_rate`, within a 4-sigma binomial band; treatments beat control."""
    from scipy.stats import binom

    from app.tools.simulator.population import VARIANTS, true_conversion_rate

    population = Population(SEED, size=40_000)
    for experiment, variants in VARIANTS.items():
        for variant in variants:
            users = [u for u in population.users if population.variant(experiment, u.user_id)
                     == variant]  # fmt: skip
            shoppers = sum(u.shopper for u in users)
            rate = true_conversion_rate(experiment, variant)
            low, high = binom.interval(0.99994, len(users), rate)
            assert low <= shoppers <= high, (experiment, variant, shoppers / len(users), rate)
        rates = [true_conversion_rate(experiment, v) for v in variants]
        assert rates[0] == min(rates) and len(set(rates)) == len(rates)


def test_population_is_shared_across_topics() -> None:
    population = Population(SEED)
    users = {u.user_id for u in population.users}
    for topic, key, value in _mixed(rounds=200):
        user_id = value.get("user_id") or value.get("userId")
        if topic == "orders.raw":
            user_id = value["payload"]["user_id"]
        if topic != "model-metrics":
            assert user_id in users, (topic, key)
