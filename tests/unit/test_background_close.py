"""Window closes in the background (the worker's ``close_in_background``) and the table-value
cache (``app/engine/states.py``).

A close publishes, waits for the broker, then marks the window closed; in the background it
runs beside merges. What merges write meanwhile must survive the close, the published records
must be the window's exact fold, and a failed close must stop the worker's next merge as an
inline one would have. Against in-memory stand-ins for Faust (``test_local_merge``); the
expected values come from each aggregate's own ``fold``, per window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.engine.states import TableStates
from app.engine.windowing import WindowedTable, encode_key
from models.telemetry import TELEMETRY_AGGREGATES
from tests.unit.test_local_merge import (
    BASE_MS,
    PARTITIONS,
    TOPIC,
    WINDOW_MS,
    FakeApp,
    expected_table,
    fetches,
)

AGGREGATE = TELEMETRY_AGGREGATES[0]  # buffering: by country and ISP
PAST_FIRST = BASE_MS + WINDOW_MS + 10_000  # the first window's end + grace


class GatedPublisher:
    """Records what is published; each publish waits for ``gate`` (the broker's acks)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(
        self, topic: str, records: list[tuple[str, dict[str, Any]]], table: str | None = None
    ) -> None:
        self.entered.set()
        await self.gate.wait()
        self.published += records


class FailingPublisher:
    async def publish(self, *_: Any, **__: Any) -> None:
        raise ConnectionError("broker gone")


class JsonTable(dict):
    """A table that, like Faust's over RocksDB, hands out a fresh decoded copy per read."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, json.dumps(value))

    def __getitem__(self, key: str) -> Any:
        return json.loads(super().__getitem__(key))

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return (self[key] for key in self)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return ((key, self[key]) for key in self)


def background_table(publisher: Any, cached_keys: int = 4096) -> WindowedTable:
    app, table = FakeApp(set(range(PARTITIONS))), JsonTable()
    windowed = WindowedTable(
        app=app, aggregate=AGGREGATE, source_topic="acme-telemetry",
        time_field="event_timestamp", table=table, partials_topic=TOPIC, publisher=publisher,
        window_ms=WINDOW_MS, grace_ms=10_000, partitions=PARTITIONS,
        idle_advance_seconds=3600, closed_windows_kept=5, close_in_background=True,
    )  # fmt: skip
    windowed.states = TableStates(app, table, size=cached_keys)
    return windowed


def split_by_window(count: int, size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = [e for batch, _ in fetches(count, size) for e in batch]
    first = [e for e in events if e["event_timestamp"] < BASE_MS + WINDOW_MS]
    second = [e for e in events if e["event_timestamp"] >= BASE_MS + WINDOW_MS]
    assert first and second
    return first, second


@pytest.mark.parametrize("cached_keys", [4096, 1], ids=["cached", "reads-from-the-table"])
def test_a_background_close_keeps_what_merges_wrote_while_it_published(cached_keys: int) -> None:
    first, second = split_by_window(6, 120)

    async def scenario() -> tuple[WindowedTable, GatedPublisher, bool]:
        publisher = GatedPublisher()
        table = background_table(publisher, cached_keys)
        await table.ship(first, {})
        # Every source past the first window: its close starts, and ship does not wait for it.
        await table.ship([], {p: PAST_FIRST for p in range(PARTITIONS)})
        await asyncio.wait_for(publisher.entered.wait(), 5)
        published_early = bool(publisher.published)
        # Merges while the close waits on the broker: the second window, the same keys.
        await table.ship(second, {})
        publisher.gate.set()
        await table.settled()
        return table, publisher, published_early

    table, publisher, published_early = asyncio.run(scenario())
    assert not published_early
    closed = {encode_key(k): acc for k, acc in AGGREGATE.fold(first).items()}
    got = {key: record for key, record in publisher.published}
    assert got.keys() == closed.keys()
    for key, acc in closed.items():
        assert got[key]["window_start"] == BASE_MS
        assert got[key]["events"] == acc[0]
    expected = expected_table(AGGREGATE, first + second)
    start = str(BASE_MS)
    for state in expected.values():
        if start in state["open"]:
            state["closed"][start] = state["open"].pop(start)
    assert table.table.keys() == expected.keys()
    for key, state in expected.items():
        assert table.table[key]["open"] == state["open"], key
        assert table.table[key]["closed"] == state["closed"], key
    # The table holds what the cache answered.
    for key in table.table:
        assert table.states.get(key) == table.table[key]


def test_a_failed_background_close_stops_the_next_merge() -> None:
    first, second = split_by_window(6, 120)

    async def scenario() -> None:
        table = background_table(FailingPublisher())
        await table.ship(first, {})
        await table.ship([], {p: PAST_FIRST for p in range(PARTITIONS)})
        with pytest.raises(ConnectionError):
            await table.settled()
        await table.ship([], {p: PAST_FIRST for p in range(PARTITIONS)})  # closes again
        while table._closer is not None and not table._closer.done():
            await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            await table.ship(second, {})
        # Nothing was marked closed: the window is published again once the broker is back.
        assert all(str(BASE_MS) not in s["closed"] for s in table.table.values())
        assert any(str(BASE_MS) in s["open"] for s in table.table.values())

    asyncio.run(scenario())


class GenerationApp:
    consumer_generation_id = 1
    recovered_generation = 1


def test_the_value_cache_reads_back_writes_and_drops_them_at_a_rebalance() -> None:
    app, table = GenerationApp(), {"a": {"n": 1}}
    states = TableStates(app, table, size=2)
    assert states.get("a") == {"n": 1}
    assert states.get("missing") is None
    value = {"n": 2}
    states.put("b", value)
    assert table["b"] is value and states.get("b") is value
    table["b"] = {"n": 3}  # a recovery writes the table under the cache...
    assert states.get("b") is value
    app.consumer_generation_id = 2  # ...during a rebalance, which empties the cache
    assert states.get("b") == {"n": 3}
    app.recovered_generation = 2
    table["b"] = {"n": 4}
    assert states.get("b") == {"n": 4}
    states.put("c", {"n": 5})
    states.put("d", {"n": 6})  # over the size: the least recently used ("b") goes
    table["b"], table["c"] = {"n": 7}, {"n": 8}
    assert states.get("c") == {"n": 5}
    assert states.get("b") == {"n": 7}
