"""Event-time tumbling windows over Faust tables, closed by a watermark and published once.

Two stages per derived table (see README "Hot path"):

1. Source side (:func:`build_partials`): a batch of valid events is folded into one partial
   accumulator per (group key, window). Partials are shipped on an internal topic keyed by the
   group key (combine before shuffle: a batch of thousands of events becomes a handful of
   messages for low-cardinality keys).
2. Table side (:class:`WindowedTable`): partials of a batch are merged per key, with one table
   write (one changelog record) per key per batch. The table key is the group key, so the
   table is partitioned by it and Faust routes key lookups to the owning worker.

Window close: a window [start, end) closes when the watermark passes ``end + grace``. The
watermark is the highest event time this worker has seen for the table; while no partials
arrive for ``idle_advance_seconds`` it advances with wall-clock time so the last windows of a
stream close too. A closed window's record is published, then the window moves to the key's
``closed`` list (kept for the web views). A partial for a closed window is late: its events
are counted in ``streampulse_late_events_total`` and not merged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.partitioner import murmur2

from app import metrics
from app.batching import SourceBatch, table_context
from app.publish import AggregatePublisher, derived_record
from models.windowed import Accumulator, WindowedAggregate, merge_into

__all__ = [
    "Partials",
    "WindowedTable",
    "build_partials",
    "decode_key",
    "encode_key",
    "key_partition",
    "serialized_key",
]

log = logging.getLogger(__name__)

#: key -> window start -> accumulator
Partials = dict[str, dict[int, Accumulator]]


def encode_key(values: Iterable[str]) -> str:
    """Group-key values as one table key: joined by ``|`` (``%`` and ``|`` percent-encoded)."""
    return "|".join(v.replace("%", "%25").replace("|", "%7C") for v in values)


def decode_key(key: str) -> tuple[str, ...]:
    """Inverse of :func:`encode_key`."""
    return tuple(p.replace("%7C", "|").replace("%25", "%") for p in key.split("|"))


def serialized_key(key: str) -> bytes:
    """The table key as Faust's ``json`` key serializer writes it (and as partials are keyed)."""
    return json.dumps(key, ensure_ascii=False).encode()


def key_partition(key_bytes: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as Faust's router computes a key's partition."""
    return (murmur2(key_bytes) & 0x7FFFFFFF) % partitions


def build_partials(
    aggregate: WindowedAggregate, events: Sequence[dict[str, Any]], window_ms: int
) -> Partials:
    """Fold ``events`` into one accumulator per (group key, window start)."""
    by_tuple: dict[tuple[str, ...], dict[int, Accumulator]] = {}
    key_values = aggregate.key_values
    add = aggregate.add
    new = aggregate.new
    for event in events:
        ts = event["event_timestamp"]
        window_start = ts - ts % window_ms
        windows = by_tuple.get(key := key_values(event))
        if windows is None:
            windows = by_tuple[key] = {}
        acc = windows.get(window_start)
        if acc is None:
            acc = windows[window_start] = new()
        add(acc, event)
    return {encode_key(k): v for k, v in by_tuple.items()}


class WindowedTable:
    """Table side of one derived aggregate: merge partials, close windows, publish."""

    def __init__(
        self,
        *,
        app: Any,
        aggregate: WindowedAggregate,
        table: Any,
        partials_topic: str,
        publisher: AggregatePublisher,
        window_ms: int,
        grace_ms: int,
        partitions: int,
        idle_advance_seconds: float,
        closed_windows_kept: int,
    ) -> None:
        self.app = app
        self.aggregate = aggregate
        self.table = table
        self.partials_topic = partials_topic
        self.publisher = publisher
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.partitions = partitions
        self.idle_advance_ms = int(idle_advance_seconds * 1000)
        self.closed_windows_kept = closed_windows_kept
        self.max_event_ms = 0
        self._last_arrival = time.monotonic()
        self._open: dict[int, dict[str, int]] = defaultdict(dict)  # start -> key -> partition
        self._indexed_generation: int | None = None
        self._lock = asyncio.Lock()

    # -- source side -------------------------------------------------------------------------

    async def ship(self, events: Sequence[dict[str, Any]], max_event_ms: int) -> list[Any]:
        """Send this batch's partials; returns the delivery futures to await before acking."""
        partials = build_partials(self.aggregate, events, self.window_ms)
        send = self.app.producer.send
        futures = []
        for key, windows in partials.items():
            key_bytes = serialized_key(key)
            payload = json.dumps({"t": max_event_ms, "w": windows}).encode()
            partition = key_partition(key_bytes, self.partitions)
            futures.append(
                await send(self.partials_topic, key_bytes, payload, partition, None, None)
            )
        return futures

    # -- table side --------------------------------------------------------------------------

    def watermark(self, now: float | None = None) -> int:
        """Highest event time seen, advanced by wall-clock time while the stream is idle."""
        idle_ms = int(((time.monotonic() if now is None else now) - self._last_arrival) * 1000)
        if idle_ms >= self.idle_advance_ms:
            return self.max_event_ms + idle_ms
        return self.max_event_ms

    def _is_closed(self, window_start: int, watermark: int) -> bool:
        return window_start + self.window_ms + self.grace_ms <= watermark

    async def on_partials(self, batch: SourceBatch) -> None:
        """Merge one batch of partials into the table: one write per key."""
        merged: dict[str, dict[int, Accumulator]] = {}
        batch_max = 0
        for record in batch.records:
            key = json.loads(record.key)
            payload = json.loads(record.value)
            batch_max = max(batch_max, payload["t"])
            windows = merged.setdefault(key, {})
            for start, acc in payload["w"].items():
                start_ms = int(start)
                existing = windows.get(start_ms)
                if existing is None:
                    windows[start_ms] = acc
                else:
                    merge_into(existing, acc)
        async with self._lock:
            self._maybe_reindex()
            watermark = self.watermark()
            late = 0
            partition = batch.partition
            table = self.table
            with table_context(self.app, self.partials_topic, partition):
                for key, windows in merged.items():
                    state = table.get(key) or {"open": {}, "closed": {}}
                    opened, closed = state["open"], state["closed"]
                    for start_ms, acc in windows.items():
                        start = str(start_ms)
                        if start in closed or self._is_closed(start_ms, watermark):
                            late += int(acc[0])
                            continue
                        existing = opened.get(start)
                        if existing is None:
                            opened[start] = acc
                            self._open[start_ms][key] = partition
                        else:
                            merge_into(existing, acc)
                    table[key] = state
            if late:
                metrics.LATE_EVENTS.labels(topic=self.aggregate.source_topic).inc(late)
            if batch_max > self.max_event_ms:
                self.max_event_ms = batch_max
            self._last_arrival = time.monotonic()
            await self._close_due()

    async def tick(self) -> None:
        """Periodic: close windows the idle watermark has passed."""
        async with self._lock:
            self._maybe_reindex()
            await self._close_due()

    async def _close_due(self) -> None:
        watermark = self.watermark()
        due = sorted(s for s in self._open if self._is_closed(s, watermark))
        if not due:
            return
        if watermark > self.max_event_ms and self.max_event_ms:
            # Idle advance: keep it, so events older than what we just closed count as late.
            self.max_event_ms = watermark
            self._last_arrival = time.monotonic()
        now_ms = int(time.time() * 1000)
        for start_ms in due:
            keys = self._open.pop(start_ms)
            start = str(start_ms)
            records = []
            for key in keys:
                state = self.table.get(key)
                acc = state and state["open"].get(start)
                if acc is None:
                    continue
                record = derived_record(
                    self.aggregate, key, decode_key(key), start_ms, self.window_ms, acc, now_ms
                )
                records.append((key, record))
            await self.publisher.publish(self.aggregate.table, records)
            by_partition: dict[int, list[str]] = defaultdict(list)
            for key, partition in keys.items():
                by_partition[partition].append(key)
            for partition, part_keys in by_partition.items():
                with table_context(self.app, self.partials_topic, partition):
                    for key in part_keys:
                        self._mark_closed(key, start)

    def _mark_closed(self, key: str, start: str) -> None:
        state = self.table.get(key)
        if not state or start not in state["open"]:
            return
        closed = state["closed"]
        closed[start] = state["open"].pop(start)
        for old in sorted(closed, key=int)[: -self.closed_windows_kept or None]:
            del closed[old]
        if not self.closed_windows_kept:
            closed.clear()
        self.table[key] = state

    def _maybe_reindex(self) -> None:
        """After a rebalance or recovery, rebuild the open-window index from the table."""
        generation = self.app.consumer_generation_id
        if generation == self._indexed_generation:
            return
        self._indexed_generation = generation
        self._open.clear()
        newest_closed = 0
        for key, state in self.table.items():
            if not state:
                continue
            partition = key_partition(serialized_key(key), self.partitions)
            for start in state.get("open", {}):
                self._open[int(start)][key] = partition
            for start in state.get("closed", {}):
                newest_closed = max(newest_closed, int(start))
        if newest_closed:
            # Restores the watermark: nothing at or before the newest closed window reopens.
            restored = newest_closed + self.window_ms + self.grace_ms
            self.max_event_ms = max(self.max_event_ms, restored)
        log.info(
            "table %s indexed: %d open windows after generation %s",
            self.aggregate.table, len(self._open), generation,
        )  # fmt: skip

    def key_count(self) -> int:
        return sum(1 for _ in self.table)
