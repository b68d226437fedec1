"""End to end: a seeded batch of telemetry (valid and broken) through a real worker process.

Events are produced with confluent-kafka's own producer and AvroSerializer (an independent
client of our registry). The expected aggregates are computed here, from the produced events,
with plain Python that shares no code with ``models/``; every published number must match and
every produced message must be accounted for: counted in the aggregates or in the DLQ.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import struct
import time
from collections import defaultdict
from typing import Any

import pytest

from app.catalog import DERIVED_TOPICS, SCHEMA_DIR
from app.tools.results import read_dead_letters, read_derived
from app.tools.simulator.telemetry import RULE_BREAKERS, TelemetryFactory, break_rule

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
BASE_MS = 1_754_922_600_000  # 2025-08-11T14:30:00Z, aligned to the window
VALID_EVENTS = 2400
SPAN_MS = 35_000  # 4 windows, the last one partial

TELEMETRY_TABLES = ("agg.telemetry.buffering", "agg.telemetry.completion", "agg.telemetry.errors")


def f32(value: float) -> float:
    """What an Avro ``float`` carries of ``value``."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def seeded_events(seed: int) -> list[dict[str, Any]]:
    factory = TelemetryFactory(seed=seed, customers=400, titles=40)
    rng = random.Random(seed)
    events = []
    for i in range(VALID_EVENTS):
        _, event = factory.make(rng, BASE_MS)
        event["event_timestamp"] = BASE_MS + (i * SPAN_MS) // VALID_EVENTS + rng.randint(0, 400)
        events.append(event)
    return events


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def oracle(events: list[dict[str, Any]]) -> dict[str, dict[tuple, dict[str, Any]]]:
    """The three telemetry tables, straight from the contract's definitions."""
    sums: dict[str, dict[tuple, dict[str, float]]] = {t: defaultdict(lambda: defaultdict(float))
                                                      for t in TELEMETRY_TABLES}  # fmt: skip
    for e in events:
        start = e["event_timestamp"] // WINDOW_MS * WINDOW_MS
        b = sums["agg.telemetry.buffering"][(start, e["country"], e["isp"])]
        b["events"] += 1
        b["buffering_events"] += e["buffering_events"]
        b["buffering_seconds"] += e["buffering_duration_seconds"]
        b["watch_seconds"] += e["watch_duration_seconds"]
        c = sums["agg.telemetry.completion"][(start, e["title_id"])]
        c["starts"] += e["event_type"] == "start"
        c["completes"] += e["event_type"] == "complete"
        if e["event_type"] in ("stop", "complete"):
            c["ended"] += 1
            c["pct"] += f32(e["completion_percentage"])
        c["watch_seconds"] += e["watch_duration_seconds"]
        r = sums["agg.telemetry.errors"][(start, e["device_os"], e["app_version"])]
        r["events"] += 1
        r["error_events"] += e["error_count"] > 0
        r["error_count"] += e["error_count"]
    out: dict[str, dict[tuple, dict[str, Any]]] = {t: {} for t in TELEMETRY_TABLES}
    for key, b in sums["agg.telemetry.buffering"].items():
        out["agg.telemetry.buffering"][key] = {
            "events": b["events"], "buffering_events": b["buffering_events"],
            "buffering_seconds": b["buffering_seconds"], "watch_seconds": b["watch_seconds"],
            "buffering_ratio": ratio(b["buffering_seconds"], b["watch_seconds"]),
        }  # fmt: skip
    for key, c in sums["agg.telemetry.completion"].items():
        out["agg.telemetry.completion"][key] = {
            "starts": c["starts"], "completes": c["completes"],
            "completion_rate": ratio(c["completes"], c["starts"]),
            "avg_completion_percentage": ratio(c["pct"], c["ended"]),
            "watch_seconds": c["watch_seconds"],
        }  # fmt: skip
    for key, r in sums["agg.telemetry.errors"].items():
        out["agg.telemetry.errors"][key] = {
            "events": r["events"], "error_events": r["error_events"],
            "error_count": r["error_count"], "error_rate": ratio(r["error_events"], r["events"]),
        }  # fmt: skip
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def evolved_telemetry_schema() -> str:
    """The telemetry schema with one more event type: a newer producer's (BACKWARD-compatible)."""
    schema = json.loads((SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text())
    for field in schema["fields"]:
        if field["name"] == "event_type":
            field["type"]["symbols"].append("rewind")
    return json.dumps(schema)


def produce(stack: Any, valid: list[dict], broken_values: list[dict], raw: list[bytes],
            unknown_type: list[dict]) -> None:  # fmt: skip
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient({"url": stack.registry_url})
    v1 = AvroSerializer(registry, (SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text())
    newer = AvroSerializer(registry, evolved_telemetry_schema())
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    ctx = SerializationContext("acme-telemetry", MessageField.VALUE)
    for event in [*valid, *broken_values]:
        producer.produce("acme-telemetry", key=event["customer_id"], value=v1(event, ctx))
    for event in unknown_type:
        producer.produce("acme-telemetry", key=event["customer_id"], value=newer(event, ctx))
    for i, value in enumerate(raw):
        producer.produce("acme-telemetry", key=f"CUST_raw{i:04d}", value=value)
    assert producer.flush(30) == 0


def broken_frames(good: bytes) -> dict[str, list[bytes]]:
    """Undecodable messages by the DLQ reason the worker must give them."""
    return {
        "decode.magic_byte": [b"", b"not avro at all", b"\x01" + good[1:]],
        "decode.unknown_schema": [b"\x00\x00\x0f\x42\x3f" + good[5:]],
        "decode.malformed": [good[: len(good) // 2], b"\x00\x00\x00", good + b"\x00\x01"],
    }


# LOCAL_MERGE=1 (the default): one worker owns every table partition and merges partials in
# place; 0: every partial takes the partials topic, the path other workers' partitions take.
@pytest.mark.parametrize("local_merge", ["1", "0"], ids=["local-merge", "partials-topic"])
def test_every_message_is_aggregated_or_dead_lettered(
    stack, start_worker_process, local_merge: str
) -> None:
    events = seeded_events(seed=20251111)
    rng = random.Random(7)
    broken_values, expected_reasons = [], defaultdict(int)
    for rule in sorted(RULE_BREAKERS):
        if rule == "unknown_event_type":
            continue
        for _ in range(2):
            broken_values.append(break_rule(rng.choice(events), rule))
            expected_reasons[f"validation.{rule}"] += 1
    unknown_type = [{**rng.choice(events), "event_type": "rewind"} for _ in range(3)]
    expected_reasons["unknown_event_type"] += len(unknown_type)

    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    serializer = AvroSerializer(
        SchemaRegistryClient({"url": stack.registry_url}),
        (SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text(),
    )
    good = serializer(events[0], SerializationContext("acme-telemetry", MessageField.VALUE))
    raw: list[bytes] = []
    for reason, values in broken_frames(good).items():
        raw.extend(values)
        expected_reasons[reason] += len(values)

    t0 = time.monotonic()
    start_worker_process(
        "sp-e2e", WINDOW_SECONDS="10", GRACE_SECONDS="2", IDLE_ADVANCE_SECONDS="2",
        STORE_URL="rocksdb://", LOCAL_MERGE=local_merge,
    )  # fmt: skip
    print(f"worker ready in {time.monotonic() - t0:.1f}s")
    produce(stack, events, broken_values, raw, unknown_type)

    expected = oracle(events)
    expected_count = sum(len(v) for v in expected.values())
    dead_expected = sum(expected_reasons.values())
    started = time.monotonic()
    deadline = started + 90
    while True:
        derived = asyncio.run(read_derived(stack.bootstrap, stack.registry_url, TELEMETRY_TABLES))
        dead = asyncio.run(read_dead_letters(stack.bootstrap))
        published = sum(len(v) for v in derived.values())
        if (published >= expected_count and len(dead) >= dead_expected) or (
            time.monotonic() > deadline
        ):
            break
        print(f"{time.monotonic() - started:.1f}s: {published}/{expected_count} records, "
              f"{len(dead)}/{dead_expected} dead letters")  # fmt: skip
        time.sleep(2)

    # Dead letters: exactly the broken messages, each with its reason and the original bytes.
    reasons: dict[str, int] = defaultdict(int)
    for letter in dead:
        assert letter.headers["source.topic"] == "acme-telemetry"
        assert int(letter.headers["source.partition"]) in range(4)
        assert int(letter.headers["source.offset"]) >= 0
        assert letter.headers["error.message"]
        reasons[letter.headers["error.reason"]] += 1
    assert dict(reasons) == dict(expected_reasons)
    raw_values = {letter.value for letter in dead if letter.key.startswith(b"CUST_raw")}
    assert raw_values == set(raw)

    # Aggregates: every window record equals the oracle, published exactly once.
    for table in TELEMETRY_TABLES:
        spec = DERIVED_TOPICS[table]
        key_fields = [f["name"] for f in spec.schema()["fields"][8:] if f["type"] == "string"]
        got: dict[tuple, dict[str, Any]] = {}
        for record in derived[table]:
            key = (record["window_start"], *(record[k] for k in key_fields))
            assert key not in got, f"{table} published {key} twice"
            assert record["window_end"] - record["window_start"] == WINDOW_MS
            assert record["event_type"] == table.removeprefix("agg.")
            assert record["producer"] == "streampulse" and record["privacy_tier"] == "internal"
            got[key] = record
        assert set(got) == set(expected[table]), table
        for key, metrics in expected[table].items():
            for name, value in metrics.items():
                assert same(got[key][name], value), (table, key, name, got[key][name], value)

    # Accounting: every valid event is in each table exactly once.
    buffering_events = sum(r["events"] for r in derived["agg.telemetry.buffering"])
    assert buffering_events == len(events)
    assert len(dead) == len(broken_values) + len(unknown_type) + len(raw)
