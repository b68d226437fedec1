"""Event replay (seed 003): ``python -m app.tools.replay`` rebuilds telemetry aggregates.

Telemetry over four 10-second windows in the past is produced with confluent-kafka's producer
and AvroSerializer, half with the v1 ``TelemetryEvent`` schema and half with an evolved,
BACKWARD-compatible writer schema (an optional field with a default, placed among the v1 fields
so that reading v2 bytes with the v1 schema would garble every later field) that the serializer
registers as version 2 of ``acme-telemetry-value``. Each message's record timestamp is set to
its ``event_timestamp``, so ``--from`` (which compares record timestamps) and the windows
(event time) agree.

No worker runs before the replay. The first replay (``--from earliest``) must publish exactly
the oracle's records (plain Python over the produced events, ``test_telemetry_pipeline``) with
no dead letter, which proves every message was decoded with the schema it was written with.
The second (``--from`` the third window's start) must publish only the windows from that time
on, counting only the events at or after it, each record with the same ``event_id`` as the
first replay's record of that window (what lets consumers drop the duplicates).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from app.catalog import DERIVED_TOPICS, SCHEMA_DIR
from app.tools.results import read_dead_letters, read_derived
from tests.integration.test_telemetry_pipeline import (
    BASE_MS,
    TELEMETRY_TABLES,
    WINDOW_MS,
    oracle,
    same,
    seeded_events,
)

pytestmark = pytest.mark.integration

TOPIC = "acme-telemetry"
SUBJECT = "acme-telemetry-value"
NEW_FIELD = "player_build"


def v2_schema() -> str:
    """TelemetryEvent plus an optional string with a default, right after ``event_id``."""
    schema = json.loads((SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text())
    field = {"name": NEW_FIELD, "type": ["null", "string"], "default": None}
    schema["fields"].insert(1, field)
    return json.dumps(schema)


def produce_two_versions(stack: Any, events: list[dict[str, Any]]) -> tuple[int, int]:
    """Even events with v1, odd ones with v2 (a player build set); returns both schema ids."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient({"url": stack.registry_url})
    v1 = AvroSerializer(registry, (SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text())
    v2 = AvroSerializer(registry, v2_schema())
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    ids: dict[str, int] = {}
    for i, event in enumerate(events):
        if i % 2:
            value = v2({**event, NEW_FIELD: f"build-{i % 7}"}, ctx)
            ids["v2"] = int.from_bytes(value[1:5], "big")
        else:
            value = v1(event, ctx)
            ids["v1"] = int.from_bytes(value[1:5], "big")
        producer.produce(
            TOPIC, key=event["customer_id"], value=value, timestamp=event["event_timestamp"]
        )
    assert producer.flush(30) == 0
    assert registry.get_versions(SUBJECT) == [1, 2]
    assert registry.get_latest_version(SUBJECT).schema_id == ids["v2"] != ids["v1"]
    return ids["v1"], ids["v2"]


def run_replay(stack: Any, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ, **stack.env(), "WINDOW_SECONDS": "10", "GRACE_SECONDS": "2",
        "STORE_URL": "rocksdb://",
    }  # fmt: skip
    env.pop("APP_ID", None)
    result = subprocess.run(
        [sys.executable, "-m", "app.tools.replay", "--topic", TOPIC, "--idle-seconds", "2",
         "--timeout", "60", *args],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    print(result.stdout)
    print(result.stderr[-5000:], file=sys.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def records_by_window(table: str, records: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(window start, *group key) -> record; fails on a window published twice."""
    spec = DERIVED_TOPICS[table]
    key_fields = [f["name"] for f in spec.schema()["fields"][8:] if f["type"] == "string"]
    out: dict[tuple, dict[str, Any]] = {}
    for record in records:
        key = (record["window_start"], *(record[k] for k in key_fields))
        assert key not in out, f"{table} published {key} twice in one replay"
        assert record["window_end"] - record["window_start"] == WINDOW_MS
        out[key] = record
    return out


def assert_matches(table: str, got: dict[tuple, dict], expected: dict[tuple, dict]) -> None:
    assert set(got) == set(expected), table
    for key, metrics in expected.items():
        for name, value in metrics.items():
            assert same(got[key][name], value), (table, key, name, got[key][name], value)


def test_replay_rebuilds_aggregates_from_two_schema_versions(stack) -> None:
    events = seeded_events(seed=3003)
    assert {e["event_timestamp"] // WINDOW_MS for e in events} == {
        BASE_MS // WINDOW_MS + i for i in range(4)
    }
    produce_two_versions(stack, events)

    # 1. From the earliest offset: every event, both schema versions, no dead letter.
    t0 = time.time() * 1000
    first = run_replay(stack, "--from", "earliest", "--app-id", "sp-replay-all")
    assert f"{len(events)} records read, {len(events)} counted as consumed" in first.stdout
    assert f"{len(events)} aggregated, 0 dead-lettered, 0 late" in first.stdout
    assert asyncio.run(read_dead_letters(stack.bootstrap)) == []
    derived = asyncio.run(read_derived(stack.bootstrap, stack.registry_url, TELEMETRY_TABLES))
    expected = oracle(events)
    first_records: dict[str, dict[tuple, dict[str, Any]]] = {}
    for table in TELEMETRY_TABLES:
        assert all(r["occurred_at"] >= t0 for r in derived[table])
        first_records[table] = records_by_window(table, derived[table])
        assert_matches(table, first_records[table], expected[table])
    assert sum(r["events"] for r in derived["agg.telemetry.buffering"]) == len(events)

    # 2. From the third window's start, under the default (fresh) app id.
    from_ms = BASE_MS + 2 * WINDOW_MS
    since = datetime.fromtimestamp(from_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    later = [e for e in events if e["event_timestamp"] >= from_ms]
    t1 = time.time() * 1000
    second = run_replay(stack, "--from", since)
    assert "replay streampulse-replay-" in second.stdout
    # Tansu looks no offset up by timestamp: the worker reads everything and skips the rest.
    assert f"{len(later)} counted as consumed" in second.stdout
    assert f"{len(later)} aggregated, 0 dead-lettered, 0 late" in second.stdout
    derived = asyncio.run(read_derived(stack.bootstrap, stack.registry_url, TELEMETRY_TABLES))
    expected_later = oracle(later)
    for table in TELEMETRY_TABLES:
        rebuilt = [r for r in derived[table] if r["occurred_at"] >= t1]
        assert len(rebuilt) + len(first_records[table]) == len(derived[table])
        got = records_by_window(table, rebuilt)
        assert all(key[0] >= from_ms for key in got), table
        assert_matches(table, got, expected_later[table])
        # The same windows as the first replay's, with the same event_id: duplicates to drop.
        for key, record in got.items():
            assert record["event_id"] == first_records[table][key]["event_id"]
            assert all(
                same(record[m], first_records[table][key][m]) for m in expected_later[table][key]
            )


def test_replay_of_a_topic_without_agent_fails_clearly() -> None:
    # Every source topic has an agent now; a derived topic has none.
    result = subprocess.run(
        [sys.executable, "-m", "app.tools.replay", "--topic", "agg.orders.summary"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no agent consumes 'agg.orders.summary'" in result.stderr
    assert "acme-telemetry" in result.stderr
