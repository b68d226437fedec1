"""WindowedTable.merge_local: the source side's in-place merge for partitions this worker owns
must leave the table exactly as the partials-topic path does, and ship the rest.

Both paths run on the same events against in-memory stand-ins for Faust (a dict as the table,
a producer that records what it is given): one table with every partition local, one with
none (its messages are then fed to ``on_partials`` as the partials agent would get them), one
with some. The expected table is computed separately: each aggregate's ``fold`` per window.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from app.engine.batching import SourceBatch
from app.engine.windowing import (
    WindowedTable,
    build_partials,
    encode_key,
    key_partition,
    serialized_key,
)
from app.tools.simulator.telemetry import TelemetryFactory
from models.telemetry import TELEMETRY_AGGREGATES

PARTITIONS = 4
WINDOW_MS = 60_000
BASE_MS = 1_754_922_600_000
TOPIC = "partials"


@dataclass
class Record:
    """The fields of an aiokafka ConsumerRecord a partials merge reads."""

    offset: int
    value: bytes
    timestamp: int = 0
    key: bytes | None = None
    headers: tuple = ()


@dataclass
class FakeProducer:
    """Records every send; a send is delivered at once."""

    sent: list[tuple[str, bytes, int]] = field(default_factory=list)
    buffer: Any = field(default_factory=lambda: type("Buffer", (), {"size": 0})())

    async def send(self, topic: str, key: Any, value: bytes, partition: int, *_: Any) -> Any:
        self.sent.append((topic, value, partition))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Event:
    """What ``table_context`` makes current (weak-referenceable)."""


@dataclass
class FakeConsumer:
    """Flow on; every partials partition read to its end (empty): merged in place at once."""

    flow_active: bool = True
    _committed_offset: dict = field(default_factory=dict)

    def highwater(self, tp: Any) -> int:
        return 0


@dataclass
class FakeApp:
    local: set[int]
    producer: FakeProducer = field(default_factory=FakeProducer)
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    consumer_generation_id: int = 1
    rebalancing: bool = False

    @property
    def assignor(self) -> Any:
        actives = {TP(TOPIC, p) for p in self.local} | {TP("acme-telemetry", 0)}
        return type("Assignor", (), {"assigned_actives": staticmethod(lambda: actives)})()

    def create_event(self, *_: Any) -> Event:
        return Event()


class NoPublisher:
    async def publish(self, *_: Any, **__: Any) -> None:
        raise AssertionError("no window may close in these tests")


def windowed_table(aggregate: Any, local: set[int], merge_locally: bool = True) -> WindowedTable:
    return WindowedTable(
        app=FakeApp(local), aggregate=aggregate, source_topic="acme-telemetry",
        time_field="event_timestamp", table={}, partials_topic=TOPIC,
        publisher=NoPublisher(), window_ms=WINDOW_MS, grace_ms=10_000,
        partitions=PARTITIONS, idle_advance_seconds=3600, closed_windows_kept=5,
        merge_locally=merge_locally,
    )  # fmt: skip


def fetches(count: int, size: int) -> list[tuple[list[dict[str, Any]], dict[int, int]]]:
    """``count`` fetches of ``size`` events over two windows, with their source times."""
    factory = TelemetryFactory(seed=7, customers=200, titles=40)
    rng = random.Random(7)
    out = []
    for f in range(count):
        events = []
        for i in range(size):
            _, event = factory.make(rng, BASE_MS + 1500 + (f * size + i) * 100)
            events.append(event)
        times = {f % 3: max(e["event_timestamp"] for e in events)}
        out.append((events, times))
    return out


def expected_table(aggregate: Any, events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_window: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        ts = event["event_timestamp"]
        by_window[ts - ts % WINDOW_MS].append(event)
    table: dict[str, dict[str, Any]] = {}
    for start, window_events in by_window.items():
        for key_values, acc in aggregate.fold(window_events).items():
            state = table.setdefault(encode_key(key_values), {"open": {}, "closed": {}})
            state["open"][str(start)] = acc
    return table


def feed_partials_agent(table: WindowedTable, sent: list[tuple[str, bytes, int]]) -> None:
    """What the partials agent does with the shipped messages: one batch per partition."""
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for topic, value, partition in sent:
        assert topic == TOPIC
        by_partition[partition].append(Record(len(by_partition[partition]), value))
    batches = [SourceBatch(TP(TOPIC, p), records) for p, records in by_partition.items()]
    asyncio.run(table.on_partials(batches))


def assert_same_numbers(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal accumulators, exactly: they are canonical (models/combine.py), so the path a
    partial took cannot change a digit."""
    assert actual.keys() == expected.keys()
    for key, state in expected.items():
        assert actual[key]["closed"] == {}
        assert actual[key]["open"].keys() == state["open"].keys(), key
        for start, acc in state["open"].items():
            assert actual[key]["open"][start] == acc, (key, start)


@pytest.mark.parametrize("aggregate", TELEMETRY_AGGREGATES, ids=lambda a: a.table)
def test_all_local_equals_the_partials_topic_path_and_the_fold(aggregate: Any) -> None:
    data = fetches(count=6, size=120)
    local = windowed_table(aggregate, local=set(range(PARTITIONS)))
    remote = windowed_table(aggregate, local=set(range(PARTITIONS)), merge_locally=False)
    for events, times in data:
        asyncio.run(local.ship(events, times, (BASE_MS, BASE_MS + 10)))
        asyncio.run(remote.ship(events, times, (BASE_MS, BASE_MS + 10)))
    assert local.app.producer.sent == []  # nothing crossed the broker
    # Off: every partition got a message per fetch (every watermark moves), none merged yet.
    assert remote.table == {}
    assert {p for _, _, p in remote.app.producer.sent} == set(range(PARTITIONS))
    feed_partials_agent(remote, remote.app.producer.sent)

    every_event = [e for events, _ in data for e in events]
    expected = expected_table(aggregate, every_event)
    assert_same_numbers(local.table, expected)
    assert_same_numbers(remote.table, expected)
    # The watermarks heard the same source partitions at the same event times.
    for partition in range(PARTITIONS):
        assert local.clock(partition).sources.keys() == remote.clock(partition).sources.keys()
        for source, (event_ms, _) in local.clock(partition).sources.items():
            assert remote.clock(partition).sources[source][0] == event_ms
    # And the open-window index the closer uses names the same keys.
    assert {p: {s: set(k) for s, k in w.items()} for p, w in local._open.items()} == {
        p: {s: set(k) for s, k in w.items()} for p, w in remote._open.items()
    }


def test_only_partitions_owned_elsewhere_are_shipped() -> None:
    aggregate = TELEMETRY_AGGREGATES[1]  # completion: by title, keys on every partition
    owned = {0, 2}
    table = windowed_table(aggregate, local=owned)
    other_worker = windowed_table(aggregate, local={1, 3}, merge_locally=False)
    data = fetches(count=3, size=200)
    for events, times in data:
        asyncio.run(table.ship(events, times))
    shipped_to = {p for _, _, p in table.app.producer.sent}
    assert shipped_to == {1, 3}
    # Owned keys are in this worker's table, the rest reach the other worker's table.
    feed_partials_agent(other_worker, table.app.producer.sent)
    for key in table.table:
        assert key_partition(serialized_key(key), PARTITIONS) in owned
    for key in other_worker.table:
        assert key_partition(serialized_key(key), PARTITIONS) not in owned
    combined = {**table.table, **other_worker.table}
    assert_same_numbers(combined, expected_table(aggregate, [e for ev, _ in data for e in ev]))


def test_latency_is_observed_once_per_fetch_for_all_local_partitions(tmp_path: Any) -> None:
    aggregate = TELEMETRY_AGGREGATES[0]
    table = windowed_table(aggregate, local=set(range(PARTITIONS)))
    table.latency_log = tmp_path / "latency.jsonl"
    events, times = fetches(count=1, size=50)[0]
    asyncio.run(table.ship(events, times, (BASE_MS, BASE_MS + 40)))
    lines = table.latency_log.read_text().splitlines()
    assert len(lines) == 1
    assert '"events": 50' in lines[0]
    assert f'"produced_ms_min": {BASE_MS}' in lines[0]
    assert f'"produced_ms_max": {BASE_MS + 40}' in lines[0]


@pytest.mark.parametrize("rebalance", ["rebalancing", "flow stopped", "new generation"])
def test_during_a_rebalance_owned_partitions_are_shipped_not_merged(rebalance: str) -> None:
    """A write after a rebalance began could miss the next owner's changelog recovery: the
    partials then take the partials topic, like any other worker's."""
    aggregate = TELEMETRY_AGGREGATES[0]
    table = windowed_table(aggregate, local=set(range(PARTITIONS)))
    events, times = fetches(count=1, size=100)[0]
    partials: dict[int, dict] = {p: {} for p in range(PARTITIONS)}
    for key, windows in build_partials(aggregate, events, WINDOW_MS, "event_timestamp").items():
        partials[key_partition(serialized_key(key), PARTITIONS)][key] = windows
    assert all(partials.values())  # every partition has keys to merge
    generation = table.app.consumer_generation_id
    if rebalance == "rebalancing":
        table.app.rebalancing = True
    elif rebalance == "flow stopped":
        table.app.consumer.flow_active = False
    else:
        table.app.consumer_generation_id += 1
    not_merged = asyncio.run(table.merge_local(partials, times, (0, 0), generation))
    assert not_merged == set(range(PARTITIONS))
    assert table.table == {}
    # Through ship(): everything goes to the partials topic, every partition gets its message.
    if rebalance != "new generation":  # ship() reads the generation itself
        asyncio.run(table.ship(events, times))
        assert {p for _, _, p in table.app.producer.sent} == set(range(PARTITIONS))
        assert table.table == {}
        other = windowed_table(aggregate, local=set(), merge_locally=False)
        feed_partials_agent(other, table.app.producer.sent)
        assert_same_numbers(other.table, expected_table(aggregate, events))


def test_a_rebalance_between_partitions_ships_the_rest() -> None:
    aggregate = TELEMETRY_AGGREGATES[1]
    table = windowed_table(aggregate, local=set(range(PARTITIONS)))
    events, times = fetches(count=1, size=300)[0]
    merged_before = []
    original_apply = table._apply

    def apply_then_rebalance(partition: int, *args: Any) -> None:
        original_apply(partition, *args)
        merged_before.append(partition)
        table.app.rebalancing = True  # begins right after the first partition's writes

    table._apply = apply_then_rebalance  # type: ignore[method-assign]
    asyncio.run(table.ship(events, times))
    assert merged_before == [0]
    assert {p for _, _, p in table.app.producer.sent} == {1, 2, 3}
    # Nothing lost, nothing twice: partition 0 here, the rest via the topic.
    other = windowed_table(aggregate, local=set(), merge_locally=False)
    feed_partials_agent(other, table.app.producer.sent)
    assert_same_numbers({**table.table, **other.table}, expected_table(aggregate, events))


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(
        self, topic: str, records: list[tuple[str, dict[str, Any]]], table: str | None = None
    ) -> None:
        self.published += [(table or topic, key, record) for key, record in records]


def test_windows_close_in_place_once_every_source_has_passed_them() -> None:
    aggregate = TELEMETRY_AGGREGATES[0]  # buffering: by country and ISP
    table = windowed_table(aggregate, local=set(range(PARTITIONS)))
    table.publisher = publisher = RecordingPublisher()
    data = fetches(count=6, size=120)  # 72 s of events: two windows
    first_window = BASE_MS
    early = [
        e for events, _ in data for e in events if e["event_timestamp"] < first_window + WINDOW_MS
    ]
    assert early and len(early) < sum(len(events) for events, _ in data)
    for events, _ in data:
        asyncio.run(table.ship(events, {}))  # no source heard: nothing can close
    assert publisher.published == []
    # Every source partition reports an event time past the first window's end + grace.
    past = first_window + WINDOW_MS + 10_000
    asyncio.run(table.ship([], {p: past for p in range(PARTITIONS)}))
    expected = {
        encode_key(k): acc for k, acc in aggregate.fold(early).items()
    }  # the first window only, folded separately
    got = {key: record for _, key, record in publisher.published}
    assert got.keys() == expected.keys()
    for key, acc in expected.items():
        assert got[key]["window_start"] == first_window
        assert got[key]["events"] == acc[0]
        assert str(first_window) in table.table[key]["closed"]
    # The second window is still open.
    assert all(str(first_window + WINDOW_MS) not in st["closed"] for st in table.table.values())
