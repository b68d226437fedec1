"""Late events are counted once per event for their topic, however many tables the topic
feeds (each table also counts its own drops by table)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.engine import metrics
from app.engine.windowing import WindowedTable
from models.telemetry import TELEMETRY_AGGREGATES
from tests.unit.test_local_merge import BASE_MS, PARTITIONS, TOPIC, WINDOW_MS, FakeApp, fetches


class RecordingPublisher:
    def __init__(self) -> None:
        self.records: list[Any] = []

    async def publish(self, topic: str, records: list[Any], table: str | None = None) -> None:
        self.records.extend(records)


def table(aggregate: Any, counts_late_events: bool) -> tuple[WindowedTable, RecordingPublisher]:
    publisher = RecordingPublisher()
    windowed = WindowedTable(
        app=FakeApp(set(range(PARTITIONS))), aggregate=aggregate, source_topic="acme-telemetry",
        time_field="event_timestamp", table={}, partials_topic=TOPIC, publisher=publisher,
        window_ms=WINDOW_MS, grace_ms=10_000, partitions=PARTITIONS,
        idle_advance_seconds=3600, closed_windows_kept=5, counts_late_events=counts_late_events,
    )  # fmt: skip
    return windowed, publisher


def test_a_late_event_is_counted_once_for_its_topic_and_once_per_table() -> None:
    (events, _), = fetches(1, 60)  # fmt: skip
    on_time, late = events[:40], events[40:]
    assert all(e["event_timestamp"] < BASE_MS + WINDOW_MS for e in events)  # all in window 0
    past_close = {p: BASE_MS + WINDOW_MS + 20_000 for p in range(PARTITIONS)}
    tables = [table(a, counts_late_events=i == 0) for i, a in enumerate(TELEMETRY_AGGREGATES)]
    topic_late = metrics.LATE_EVENTS.labels(topic="acme-telemetry")
    before = topic_late._value.get()
    by_table = [metrics.LATE_CONTRIBUTIONS.labels(table=t.aggregate.table) for t, _ in tables]
    before_tables = [c._value.get() for c in by_table]

    for windowed, publisher in tables:
        asyncio.run(windowed.ship(on_time, past_close))  # merged, then window 0 closes
        assert publisher.records, "window 0 closed and was published"
        asyncio.run(windowed.ship(late, past_close))  # window 0 is closed: late

    assert topic_late._value.get() - before == len(late)
    assert [c._value.get() - b for c, b in zip(by_table, before_tables, strict=True)] == [
        len(late)
    ] * len(tables)
