"""Restarts: a worker stopped with windows open (or killed with SIGKILL at random moments),
restarted on the same data directory or on a fresh one (its tables rebuilt from the changelogs
alone), becomes ready in bounded time and publishes exactly the windows an uninterrupted run
would.

Telemetry events of four 10-second windows are produced in two halves: the first half leaves
window 1 open in the tables when the worker stops; the second half, after the restart, adds to
it, and one event per source partition far ahead closes windows 1-3 (its own window is not
compared). The oracle is the telemetry pipeline test's (plain Python over the produced events).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time
from typing import Any

import pytest

from app.catalog import DERIVED_TOPICS
from app.tools.results import metric_sum, read_derived, read_metrics
from app.tools.run import stop_process
from tests.conftest import PARTITIONS
from tests.integration.test_telemetry_pipeline import (
    BASE_MS,
    TELEMETRY_TABLES,
    WINDOW_MS,
    oracle,
    produce,
    same,
    seeded_events,
)

pytestmark = pytest.mark.integration

#: Event time of the events that close windows 1-3 (one per source partition).
CLOSER_MS = BASE_MS + 6 * WINDOW_MS
WORKER_ENV = {
    "WINDOW_SECONDS": "10",
    "GRACE_SECONDS": "2",
    # Windows close on the data only: no idle advance while the worker is down or restarting.
    "IDLE_ADVANCE_SECONDS": "600",
    "STORE_URL": "rocksdb://",
}
#: A restart must be ready within this (rejoin ~5 s, recovery of a few thousand records).
READY_WITHIN_S = 60.0


def produce_to_partitions(stack: Any, events: list[dict[str, Any]]) -> None:
    """One event per source partition, each to its partition (so every watermark moves)."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from app.catalog import SCHEMA_DIR

    serializer = AvroSerializer(
        SchemaRegistryClient({"url": stack.registry_url}),
        (SCHEMA_DIR / "telemetry/TelemetryEvent.avsc").read_text(),
    )
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    ctx = SerializationContext("acme-telemetry", MessageField.VALUE)
    for partition, event in enumerate(events):
        producer.produce("acme-telemetry", value=serializer(event, ctx), partition=partition)
    assert producer.flush(30) == 0


def wait_aggregated(url: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        samples = read_metrics(url)
        if samples is not None:
            seen = metric_sum(
                samples, "streampulse_events_aggregated_total", topic="acme-telemetry"
            )
            if seen >= count:
                return
        time.sleep(0.5)
    raise AssertionError(f"{seen} of {count} events aggregated after {timeout:.0f}s")


def published(stack: Any, expected_count: int, timeout: float = 60.0) -> dict[str, list[dict]]:
    deadline = time.monotonic() + timeout
    while True:
        derived = asyncio.run(read_derived(stack.bootstrap, stack.registry_url, TELEMETRY_TABLES))
        compared = sum(
            1 for rows in derived.values() for r in rows if r["window_start"] < CLOSER_MS
        )
        if compared >= expected_count or time.monotonic() > deadline:
            return derived
        time.sleep(1.0)


def assert_equals_oracle(derived: dict[str, list[dict]], events: list[dict[str, Any]]) -> None:
    """Every window before the closers' is published once, with the oracle's numbers."""
    expected = oracle(events)
    for table in TELEMETRY_TABLES:
        fields = DERIVED_TOPICS[table].schema()["fields"][8:]
        key_fields = [f["name"] for f in fields if f["type"] == "string"]
        got: dict[tuple, dict[str, Any]] = {}
        for record in derived[table]:
            if record["window_start"] >= CLOSER_MS:
                continue
            key = (record["window_start"], *(record[k] for k in key_fields))
            assert key not in got, f"{table} published {key} twice"
            got[key] = record
        missing, extra = set(expected[table]) - set(got), set(got) - set(expected[table])
        assert not missing and not extra, (table, sorted(missing)[:5], sorted(extra)[:5])
        for key, metrics in expected[table].items():
            for name, value in metrics.items():
                assert same(got[key][name], value), (table, key, name, got[key][name], value)


@pytest.mark.parametrize("data_dir", ["same", "fresh"])
def test_a_restarted_worker_recovers_its_open_windows(
    stack, start_worker_process, tmp_path, data_dir: str
) -> None:
    events = seeded_events(seed=20251201)
    first = [e for e in events if e["event_timestamp"] < BASE_MS + 2 * WINDOW_MS]
    second = [e for e in events if e["event_timestamp"] >= BASE_MS + 2 * WINDOW_MS]
    closers = [{**events[i], "event_timestamp": CLOSER_MS} for i in range(PARTITIONS)]

    before_dir = tmp_path / "data-before"
    worker = start_worker_process("sp-restart", DATA_DIR=str(before_dir), **WORKER_ENV)
    produce(stack, first, [], [], [])
    wait_aggregated(worker.url, len(first))
    time.sleep(3.0)  # a commit interval: the offsets of what was aggregated are committed
    stop_process(worker.process)

    after_dir = before_dir if data_dir == "same" else tmp_path / "data-after"
    t0 = time.monotonic()
    restarted = start_worker_process("sp-restart", DATA_DIR=str(after_dir), **WORKER_ENV)
    ready_s = time.monotonic() - t0
    assert ready_s < READY_WITHIN_S, f"ready after {ready_s:.1f}s"
    log = restarted.log()
    assert "ConsistencyError" not in log and "from_data" not in log
    if data_dir == "fresh":  # everything came from the changelogs: a recovery, timed
        assert re.search(r"table recovery finished in [0-9.]+ s", log)
        samples = read_metrics(restarted.url)
        assert samples is not None
        assert metric_sum(samples, "streampulse_recoveries_total") >= 1

    produce(stack, second, [], [], [])
    produce_to_partitions(stack, closers)
    expected_count = sum(len(v) for v in oracle(events).values())
    assert_equals_oracle(published(stack, expected_count), events)


# -- SIGKILL at random moments --------------------------------------------------------------

#: The crash run: chunks of events produced while the worker is killed and restarted.
CHUNKS = 40
CHUNK_EVENTS = 150
CHUNK_INTERVAL_S = 1.5  # 40 chunks over a minute: the kills land while events arrive
KILLS = 3


def chunked_events(seed: int) -> list[list[dict[str, Any]]]:
    """``CHUNKS`` chunks of valid events, chunk i one second of event time from BASE + i s:
    four 10-second windows, produced in order (none late)."""
    from app.tools.simulator.telemetry import TelemetryFactory

    factory = TelemetryFactory(seed=seed, customers=300, titles=30)
    rng = random.Random(seed)
    chunks = []
    for i in range(CHUNKS):
        chunk = []
        for j in range(CHUNK_EVENTS):
            _, event = factory.make(rng, BASE_MS)
            event["event_timestamp"] = BASE_MS + i * 1000 + (j * 1000) // CHUNK_EVENTS
            chunk.append(event)
        chunks.append(chunk)
    return chunks


def assert_republished_identically(derived: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """A window published more than once (a crash between publishing and marking it closed)
    must carry the same numbers and the same event_id each time; returns one copy of each."""
    unique: dict[str, list[dict]] = {}
    for table, records in derived.items():
        fields = DERIVED_TOPICS[table].schema()["fields"][8:]
        key_fields = [f["name"] for f in fields if f["type"] == "string"]
        first: dict[tuple, dict] = {}
        for record in records:
            key = (record["window_start"], *(record[k] for k in key_fields))
            if key in first:
                a = {k: v for k, v in first[key].items() if k != "occurred_at"}
                b = {k: v for k, v in record.items() if k != "occurred_at"}
                assert a == b, f"{table} {key} published twice with different values"
            else:
                first[key] = record
        unique[table] = list(first.values())
    return unique


@pytest.mark.parametrize("data_dir", ["same", "fresh"])
def test_sigkill_three_times_publishes_what_an_uninterrupted_run_would(
    stack, start_worker_process, tmp_path, data_dir: str
) -> None:
    chunks = chunked_events(seed=20261201)
    events = [e for chunk in chunks for e in chunk]
    closers = [{**events[i], "event_timestamp": CLOSER_MS} for i in range(PARTITIONS)]
    rng = random.Random(11)
    dirs = iter(tmp_path / f"data-{i}" for i in range(KILLS + 1))
    directory = next(dirs)
    worker = start_worker_process("sp-crash", DATA_DIR=str(directory), **WORKER_ENV)

    errors: list[BaseException] = []

    def producing() -> None:
        try:
            for chunk in chunks:
                produce(stack, chunk, [], [], [])
                time.sleep(CHUNK_INTERVAL_S)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    producer = threading.Thread(target=producing, daemon=True)
    producer.start()
    kills = []
    for _ in range(KILLS):
        delay = rng.uniform(0.5, 3.0)
        time.sleep(delay)
        kills.append(round(delay, 2))
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        if data_dir == "fresh":
            directory = next(dirs)
        worker = start_worker_process("sp-crash", DATA_DIR=str(directory), **WORKER_ENV)
    producer.join(timeout=120)
    assert not errors, errors
    print(f"killed {KILLS} times, {kills} s after readiness")

    produce_to_partitions(stack, closers)
    expected_count = sum(len(v) for v in oracle(events).values())
    derived = published(stack, expected_count, timeout=90)
    assert_equals_oracle(assert_republished_identically(derived), events)


def test_two_workers_one_killed_for_good_the_other_takes_over_exactly(
    stack, start_worker_process, tmp_path
) -> None:
    """Standby-free failover: the survivor restores the dead worker's table partitions from
    their changelogs, replays its uncommitted source partitions and partials, and publishes
    exactly the uninterrupted run's windows (partials cross between the workers before)."""
    chunks = chunked_events(seed=20261202)[:24]
    events = [e for chunk in chunks for e in chunk]
    closers = [{**events[i], "event_timestamp": CLOSER_MS} for i in range(PARTITIONS)]
    doomed = start_worker_process("sp-failover", DATA_DIR=str(tmp_path / "a"), **WORKER_ENV)
    survivor = start_worker_process("sp-failover", DATA_DIR=str(tmp_path / "b"), **WORKER_ENV)
    errors: list[BaseException] = []

    def producing() -> None:
        try:
            for chunk in chunks:
                produce(stack, chunk, [], [], [])
                time.sleep(1.0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    producer = threading.Thread(target=producing, daemon=True)
    producer.start()
    time.sleep(random.Random(5).uniform(8.0, 12.0))  # the two have split the partitions
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait()
    producer.join(timeout=120)
    assert not errors, errors

    produce_to_partitions(stack, closers)
    expected_count = sum(len(v) for v in oracle(events).values())
    derived = published(stack, expected_count, timeout=120)
    assert_equals_oracle(assert_republished_identically(derived), events)
    assert "Traceback" not in survivor.log()
