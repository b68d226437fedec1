"""The replay hook of ``app/engine/batching.py``, the argument helpers of ``app/tools/replay.py``.

``StreamPulseApp.configure_sources`` (SOURCE_TOPICS, REPLAY_FROM_MS) and
``seek_replay_start`` run here against fakes: the embedded Tansu broker answers every lookup by
timestamp with offset 0, so the seek branch Apache Kafka takes is only exercised here (the
integration test ``tests/integration/test_replay.py`` covers the whole replay on Tansu).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import OffsetAndTimestamp
from faust.exceptions import ImproperlyConfigured
from faust.types import TP

from app.engine.batching import SourceBatch, StreamPulseApp
from app.settings import Settings
from app.tools.replay import default_app_id, parse_from


def make_app() -> tuple[StreamPulseApp, dict[str, list[SourceBatch]]]:
    """An app with batch agents on two source topics and one internal topic."""
    app = StreamPulseApp("unit-replay", broker="kafka://127.0.0.1:1", store="memory://")
    seen: dict[str, list[SourceBatch]] = defaultdict(list)
    for name, internal in (("src-a", False), ("src-b", False), ("unit-partials", True)):
        topic = app.topic(name, key_type=bytes, value_type=bytes, internal=internal)

        async def handler(batches: list[SourceBatch], name: str = name) -> Any:
            seen[name].extend(batches)
            return ("delivered", batches)  # what the drain loop awaits before acking

        app.batch_agent(topic)(handler)
    return app, seen


def records(*timestamps: int | None) -> list[Any]:
    return [SimpleNamespace(offset=i, timestamp=t) for i, t in enumerate(timestamps)]


def test_no_replay_settings_change_nothing() -> None:
    app, _ = make_app()
    handlers = dict(app.batch_handlers)
    app.configure_sources(Settings())
    assert app.batch_handlers == handlers
    assert app.replay_from_ms is None


def test_source_topics_keep_only_the_named_source_agents() -> None:
    app, _ = make_app()
    app.configure_sources(Settings(source_topics=("src-a",)))
    assert set(app.batch_handlers) == {"src-a", "unit-partials"}
    assert [t.topics for t in app._batch_topics] == [("src-a",), ("unit-partials",)]


def test_source_topic_without_agent_fails_clearly() -> None:
    app, _ = make_app()
    with pytest.raises(ImproperlyConfigured, match=r"\['orders.raw'\].*'src-a', 'src-b'"):
        app.configure_sources(Settings(source_topics=("orders.raw",)))


def test_replay_hands_on_only_records_at_or_after_the_start() -> None:
    app, seen = make_app()
    app.configure_sources(Settings(source_topics=("src-a",), replay_from_ms=100))
    assert app.replay_topics == {"src-a"}
    tp, tp1 = TP("src-a", 0), TP("src-a", 1)
    mixed = SourceBatch(tp, records(50, 100, None, 150), 9)
    before = SourceBatch(tp1, records(10, 99))
    after = SourceBatch(tp, records(100, 200))
    handler = app.batch_handlers["src-a"]
    # One fetch: partition 0 half before the start, partition 1 entirely before it.
    returned = asyncio.run(handler([mixed, before]))
    assert [[r.timestamp for r in b.records] for b in seen["src-a"]] == [[100, 150]]
    kept = seen["src-a"][0]
    assert (kept.tp, kept.read_offset) == (tp, 9)  # gap detection still sees the true position
    # The handler's deliveries reach the drain loop (acks wait for them).
    assert returned == ("delivered", [kept])
    # A fetch with nothing at or after the start produced nothing to wait for.
    assert asyncio.run(handler([before])) is None
    # A batch with nothing to skip is passed on as it is.
    assert asyncio.run(handler([after])) == ("delivered", [after])
    assert seen["src-a"][-1] is after
    internal = SourceBatch(TP("unit-partials", 0), records(1))
    asyncio.run(app.batch_handlers["unit-partials"]([internal]))
    assert seen["unit-partials"] == [internal]  # internal topics are never filtered


class FakeConsumer:
    """What ``seek_replay_start`` uses of Faust's aiokafka consumer and its thread."""

    def __init__(self, assignment: set[TP], committed: dict[TP, int], found: dict) -> None:
        self._assignment = assignment
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset.update(committed)
        self.found = found
        self.seeks: dict[TP, int] = {}
        self.asked: list[set[TP]] = []
        self._thread = SimpleNamespace(
            _ensure_consumer=lambda: SimpleNamespace(
                offsets_for_times=self.offsets_for_times, end_offsets=self.end_offsets
            ),
            call_thread=self.call_thread,
        )

    def assignment(self) -> set[TP]:
        return self._assignment

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)

    async def offsets_for_times(self, timestamps: dict[TP, int]) -> dict[TP, Any]:
        self.asked.append(set(timestamps))
        assert set(timestamps.values()) == {100}
        return {tp: self.found.get(tp) for tp in timestamps}

    async def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        return {tp: 900 + tp.partition for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks[tp] = offset


def test_seek_moves_unread_replayed_partitions_to_the_start_time() -> None:
    app, _ = make_app()
    app.configure_sources(Settings(source_topics=("src-a",), replay_from_ms=100))
    a0, a1, a2, a3 = (TP("src-a", p) for p in range(4))
    consumer = FakeConsumer(
        {a0, a1, a2, a3, TP("unit-partials", 0)},
        committed={a2: 7},
        found={a0: OffsetAndTimestamp(42, 100), a3: OffsetAndTimestamp(0, 120)},
    )
    asyncio.run(app.seek_replay_start(consumer))
    # a1: no record at/after the time -> its end; a2: committed -> untouched; a3: already 0.
    assert consumer.asked == [{a0, a1, a3}]
    assert consumer.seeks == {a0: 42, a1: 901}


def test_seek_does_nothing_without_replay() -> None:
    app, _ = make_app()
    app.configure_sources(Settings())
    consumer = FakeConsumer({TP("src-a", 0)}, committed={}, found={})
    asyncio.run(app.seek_replay_start(consumer))
    assert consumer.asked == [] and consumer.seeks == {}


def test_from_argument() -> None:
    assert parse_from("earliest") is None
    assert parse_from("2025-08-11T14:30:20Z") == 1_754_922_620_000
    assert parse_from("2025-08-11T14:30:20") == 1_754_922_620_000  # no zone: UTC
    assert parse_from("2025-08-11T16:30:20+02:00") == 1_754_922_620_000
    with pytest.raises(Exception, match="ISO-8601"):
        parse_from("yesterday")
    now = datetime(2025, 8, 11, 14, 30, 5, tzinfo=UTC)
    assert default_app_id("streampulse", now) == "streampulse-replay-20250811T143005Z"
