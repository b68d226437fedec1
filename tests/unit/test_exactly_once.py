"""Replays count once (app/engine/windowing.py, "Exactly-once effect"): a crash after some of
a fetch's keys were written and before its offsets were committed replays the fetch, cut
differently; every key's marks must let exactly the events it has not absorbed through, on
both paths (in place, and through the partials topic event by event).

Uses the in-memory stand-ins of test_local_merge; the expected tables are each aggregate's
``fold`` of the events, computed separately.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import Any

import pytest

from app.engine.windowing import (
    _against_marks,
    build_event_partials,
    build_partials,
    encode_key,
    key_partition,
    serialized_key,
)
from models.combine import Aggregate
from models.telemetry import TELEMETRY_AGGREGATES
from tests.unit.test_local_merge import (
    PARTITIONS,
    WINDOW_MS,
    assert_same_numbers,
    expected_table,
    feed_partials_agent,
    fetches,
    windowed_table,
)

SOURCE = "0"  # every event of these tests comes from source partition 0, offsets 0, 1, ...


def ship(table: Any, events: list[dict], first_offset: int, replay: bool) -> None:
    """One fetch of source partition 0 whose records start at ``first_offset``."""
    offsets = range(first_offset, first_offset + len(events))
    ranges = {SOURCE: (offsets[0], offsets[-1])}
    times = {0: max(e["event_timestamp"] for e in events)}

    def positions() -> list[tuple[str, int]]:
        return [(SOURCE, o) for o in offsets]

    asyncio.run(table.ship(events, times, (0, 0), ranges, positions, replay))


def deliver(table: Any) -> None:
    """The partials agent's turn (remote path): what was sent, merged; then forgotten."""
    sent = table.app.producer.sent
    if sent:
        feed_partials_agent(table, list(sent))
        sent.clear()


def numbers_only(state: dict[str, Any]) -> dict[str, Any]:
    return {key: {"open": s["open"], "closed": s["closed"]} for key, s in state.items()}


@pytest.mark.parametrize("path", ["in-place", "partials-topic"])
@pytest.mark.parametrize("aggregate", TELEMETRY_AGGREGATES, ids=lambda a: a.table)
def test_a_crash_mid_fetch_then_a_differently_cut_replay_counts_every_event_once(
    aggregate: Aggregate, path: str
) -> None:
    (events, _), = fetches(1, 300)  # fmt: skip
    local = set(range(PARTITIONS)) if path == "in-place" else set()
    table = windowed_table(aggregate, local=local, merge_locally=path == "in-place")

    ship(table, events[:100], 0, replay=False)  # fetch A: offsets 0-99
    deliver(table)
    after_a = copy.deepcopy(table.table)
    ship(table, events[100:200], 100, replay=False)  # fetch B: offsets 100-199
    deliver(table)
    # The crash: partitions 0 and 1 lost B's writes (their values are A's), 2 and 3 kept
    # them; no offset was committed, so the source replays from 0, in other fetches.
    for key in list(table.table):
        if key_partition(serialized_key(key), PARTITIONS) in (0, 1):
            if key in after_a:
                table.table[key] = copy.deepcopy(after_a[key])
            else:
                del table.table[key]
    table.states.clear()  # the crash ended the process: nothing it had in memory is left
    assert numbers_only(table.table) != numbers_only(expected_table(aggregate, events[:200]))

    replayed_before = table._replayed._value.get()
    ship(table, events[0:150], 0, replay=True)  # replay C1: 0-149 (straddles B's 100)
    deliver(table)
    ship(table, events[150:300], 150, replay=True)  # C2: 150-299 (straddles 199)
    deliver(table)

    assert_same_numbers(table.table, expected_table(aggregate, events))
    # Each key's mark: the highest end of the fetches with one of its events it absorbed.
    def keys(first: int, last: int) -> set[str]:
        return {encode_key(aggregate.key_values(e)) for e in events[first : last + 1]}

    kept_b = {k for k in keys(100, 199) if key_partition(serialized_key(k), PARTITIONS) > 1}
    for key, state in table.table.items():
        absorbed = [(149, keys(0, 149)), (299, keys(150, 299)), (199, kept_b)]
        assert state["o"] == {SOURCE: max(end for end, ks in absorbed if key in ks)}, key
    assert table._replayed._value.get() - replayed_before > 0


@pytest.mark.parametrize("path", ["in-place", "partials-topic"])
def test_the_same_fetch_twice_changes_nothing(path: str) -> None:
    aggregate = TELEMETRY_AGGREGATES[0]
    (events, _), = fetches(1, 120)  # fmt: skip
    local = set(range(PARTITIONS)) if path == "in-place" else set()
    table = windowed_table(aggregate, local=local, merge_locally=path == "in-place")
    ship(table, events, 0, replay=False)
    deliver(table)
    once = copy.deepcopy(table.table)
    ship(table, events, 0, replay=False)  # e.g. the partials agent's own replay
    deliver(table)
    assert table.table == once
    assert_same_numbers(table.table, expected_table(aggregate, events))


def test_a_fetch_is_merged_after_a_restart_on_unmarked_state() -> None:
    """Values written before marks existed (an older version) hold no marks: all is new."""
    aggregate = TELEMETRY_AGGREGATES[1]
    (events, _), = fetches(1, 80)  # fmt: skip
    table = windowed_table(aggregate, local=set(range(PARTITIONS)))
    ship(table, events[:40], 0, replay=False)
    for state in table.table.values():
        del state["o"]
    ship(table, events[40:], 40, replay=True)
    assert_same_numbers(table.table, expected_table(aggregate, events))


@pytest.mark.parametrize(
    ("ranges", "marks", "expected"),
    [
        ({"0": (10, 20)}, {}, 1),  # nothing absorbed yet
        ({"0": (10, 20)}, {"0": 9}, 1),  # just above
        ({"0": (10, 20)}, {"0": 20}, 0),  # exactly what was absorbed
        ({"0": (10, 20)}, {"0": 30}, 0),
        ({"0": (10, 20)}, {"0": 10}, -1),  # straddles
        ({"0": (10, 20)}, {"0": 19}, -1),
        ({"0": (10, 20), "1": (5, 6)}, {"0": 9, "1": 4}, 1),
        ({"0": (10, 20), "1": (5, 6)}, {"0": 20, "1": 6}, 0),
        ({"0": (10, 20), "1": (5, 6)}, {"0": 20, "1": 4}, -1),  # one absorbed, one not
        ({}, {"0": 3}, 1),  # no ranges (tools): merged
    ],
)
def test_against_marks(ranges: dict, marks: dict, expected: int) -> None:
    assert _against_marks(ranges, marks) == expected


@pytest.mark.parametrize("aggregate", TELEMETRY_AGGREGATES, ids=lambda a: a.table)
def test_event_partials_merge_to_the_fetch_partials(aggregate: Aggregate) -> None:
    (events, _), = fetches(1, 200)  # fmt: skip
    positions: Sequence[tuple[str, int]] = [(SOURCE, i) for i in range(len(events))]
    per_event = build_event_partials(
        aggregate, events, positions, WINDOW_MS, "event_timestamp"
    )
    merged: dict[str, dict[int, Any]] = {}
    for key, entries in per_event.items():
        assert [offset for _, offset, _, _ in entries] == sorted(o for _, o, _, _ in entries)
        for _, _, start, acc in entries:
            windows = merged.setdefault(key, {})
            if start in windows:
                aggregate.merge(windows[start], acc)
            else:
                windows[start] = acc
    assert merged == build_partials(aggregate, events, WINDOW_MS, "event_timestamp")


class OffsetProducer:
    """Delivers at once and answers each send with its offset in its partition."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []
        self.ends: dict[int, int] = {}
        self.buffer = type("Buffer", (), {"size": 0})()

    async def send(self, topic: str, key: Any, value: bytes, partition: int, *_: Any) -> Any:
        self.sent.append((topic, value, partition))
        offset = self.ends.get(partition, 0)
        self.ends[partition] = offset + 1
        future = asyncio.get_running_loop().create_future()
        future.set_result(type("RecordMetadata", (), {"offset": offset})())
        return future


def test_a_fetch_shipped_during_a_rebalance_is_not_overtaken_by_the_next_in_place() -> None:
    """Fetch 1 goes through the partials topic while a rebalance is flagged (same generation);
    fetch 2 must not be merged in place before fetch 1 is read back, or fetch 1's marks would
    look like a replay and its events be lost."""
    aggregate = TELEMETRY_AGGREGATES[0]
    (events, _), = fetches(1, 200)  # fmt: skip
    table = windowed_table(aggregate, local=set(range(PARTITIONS)))
    producer = OffsetProducer()
    table.app.producer = producer
    table.app.consumer.highwater = lambda tp: producer.ends.get(tp.partition, 0)
    assert table.local_partitions() == frozenset(range(PARTITIONS))  # drained

    table.app.rebalancing = True
    ship(table, events[:100], 0, replay=False)
    first = list(producer.sent)
    assert {p for _, _, p in first} == set(range(PARTITIONS)), "fetch 1 through the topic"
    table.app.rebalancing = False
    producer.sent.clear()
    ship(table, events[100:], 100, replay=False)
    assert producer.sent, "fetch 2 too, until fetch 1 is read back"
    second = list(producer.sent)
    feed_partials_agent(table, first + second)
    assert_same_numbers(table.table, expected_table(aggregate, events))
    assert table.local_partitions() == frozenset(range(PARTITIONS))  # read back: in place again
