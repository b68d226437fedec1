"""A registry outage while a new schema version is in use: the worker holds the messages it
cannot decode yet (nothing skipped, nothing dead-lettered, nothing overtaking), the waiting
source partitions hold the watermarks (nothing late), readiness is false during the outage and
true after, and every window equals the oracle's.

The worker is started first; then a newer (compatible) telemetry schema is registered, so the
worker has never seen its id; the registry is stopped, the events of the next window are
produced with the new schema, and the registry comes back 20 seconds later. Idle advance is 2 s:
without the holds the watermarks would run on with wall-clock time and close the window
whose events wait.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import pytest

from app.catalog import SCHEMA_DIR
from app.tools.results import metric_sum, read_dead_letters, read_metrics
from tests.conftest import PARTITIONS
from tests.integration.test_recovery import (
    CLOSER_MS,
    assert_equals_oracle,
    assert_republished_identically,
    chunked_events,
    oracle,
    produce_to_partitions,
    published,
    wait_aggregated,
)
from tests.integration.test_telemetry_pipeline import evolved_telemetry_schema

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0


def serializers(stack: Any) -> tuple[Any, Any, Any]:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer

    registry = SchemaRegistryClient({"url": stack.registry_url})
    v1 = AvroSerializer(registry, (SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text())
    v2 = AvroSerializer(registry, evolved_telemetry_schema())
    return Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5}), v1, v2


def send(producer: Any, serializer: Any, events: list[dict[str, Any]]) -> None:
    from confluent_kafka.serialization import MessageField, SerializationContext

    ctx = SerializationContext("acme-telemetry", MessageField.VALUE)
    for event in events:
        producer.produce("acme-telemetry", key=event["customer_id"], value=serializer(event, ctx))
    assert producer.flush(30) == 0


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:  # HTTPError (503: not ready) included
        return False


def test_a_registry_outage_loses_nothing_and_makes_nothing_late(
    stack, start_worker_process
) -> None:
    chunks = chunked_events(seed=20261203)[:30]  # 30 s of event time: windows 0, 1, 2
    before, during, after = chunks[:10], chunks[10:20], chunks[20:]
    events = [e for chunk in chunks for e in chunk]
    env = {"WINDOW_SECONDS": "10", "GRACE_SECONDS": "2", "IDLE_ADVANCE_SECONDS": "2",
           "STORE_URL": "rocksdb://"}  # fmt: skip
    worker = start_worker_process("sp-outage", **env)
    producer, v1, v2 = serializers(stack)
    send(producer, v1, [e for chunk in before for e in chunk])
    from confluent_kafka.serialization import MessageField, SerializationContext

    # Registers the new version (and caches its id in the producer): an id the worker lacks.
    v2(during[0][0], SerializationContext("acme-telemetry", MessageField.VALUE))
    wait_aggregated(worker.url, sum(map(len, before)))

    stack.stop_registry()
    outage_started = time.monotonic()
    send(producer, v2, [e for chunk in during for e in chunk])
    readiness = []
    while time.monotonic() - outage_started < OUTAGE_S:
        readiness.append(ready(worker.url))
        time.sleep(1.0)
    stack.start_registry()
    deadline = time.monotonic() + 30
    while not ready(worker.url) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready(worker.url), "ready again once the registry answers"
    assert readiness and not any(readiness[3:]), f"not ready during the outage: {readiness}"

    send(producer, v1, [e for chunk in after for e in chunk])
    wait_aggregated(worker.url, len(events))
    produce_to_partitions(stack, [{**events[i], "event_timestamp": CLOSER_MS}
                                  for i in range(PARTITIONS)])  # fmt: skip
    expected_count = sum(len(v) for v in oracle(events).values())
    derived = published(stack, expected_count, timeout=60)
    assert_equals_oracle(assert_republished_identically(derived), events)

    samples = read_metrics(worker.url)
    assert samples is not None
    assert metric_sum(samples, "streampulse_late_events_total", topic="acme-telemetry") == 0
    assert metric_sum(samples, "streampulse_dlq_messages_total", topic="acme-telemetry") == 0
    assert metric_sum(samples, "streampulse_registry_requests_total", outcome="error") > 0
    assert asyncio.run(read_dead_letters(stack.bootstrap)) == []
