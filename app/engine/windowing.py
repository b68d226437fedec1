"""Event-time tumbling windows over Faust tables, closed by a watermark and published once.

Two stages per derived table (see README "Hot path"):

1. Source side (:func:`build_partials`): one fetch's valid events are folded into one partial
   accumulator per (group key, window), and shipped on an internal partials topic as one
   message per table partition (the partition Kafka's partitioner gives the group key), split
   only when large (combine before shuffle: a fetch of thousands of events becomes a few
   messages).
2. Table side (:class:`WindowedTable`): the partials of a fetch are merged per key, with one
   table write (one changelog record) per key per fetch. The table key is the group key, so
   the table is partitioned by it and Faust routes key lookups to the owning worker. Partials
   for a table partition the shipping worker owns itself skip the partials topic and are
   merged in place (:meth:`WindowedTable.merge_local`): the same merge, one broker round trip
   less (on one worker: every partition).

Window close: a window [start, end) closes when the watermark passes ``end + grace``. Every
fetch tells every table partition how far each of its source partitions has got (highest event
time), in the last partials message it sends there, in order with its partials. Each table
partition keeps its own watermark: the lowest of those times over the
source partitions heard from within ``idle_advance_seconds`` (Kafka Streams' and Flink's rule:
a lagging partition holds windows open). Per table partition, because partitions are consumed
one after another: a worker-wide watermark could run ahead of data still queued on another
partition. When every source partition is idle it advances with wall-clock time, so the last
windows of a stream close too. The watermark never goes back. A closed window's record is
published, then the window moves to the key's ``closed`` list (kept for the web views). A
partial for a closed window is late: its events are counted in
``streampulse_late_events_total`` and not merged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from aiokafka.partitioner import murmur2

from app.engine import metrics
from app.engine.batching import SourceBatch, table_context, wait_for_changelog_room
from app.engine.publish import AggregatePublisher, derived_record
from models.combine import Accumulator, Aggregate

__all__ = [
    "Partials",
    "PartitionClock",
    "WindowedTable",
    "build_partials",
    "decode_key",
    "encode_key",
    "key_partition",
    "serialized_key",
]

log = logging.getLogger(__name__)

#: Keys per partials message: one fetch's partials for a table partition travel together,
#: split only when large (50,000 title keys would make a multi-megabyte message).
PARTIAL_KEYS_PER_MESSAGE = 2000
#: Keys closed (published, then marked closed) together when a window closes.
CLOSE_SLICE_KEYS = 2000

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
    aggregate: Aggregate, events: Sequence[dict[str, Any]], window_ms: int, time_field: str
) -> Partials:
    """Fold ``events`` into one accumulator per (group key, window start). ``time_field`` is
    the source topic's event time (epoch ms).

    A group's first event is folded at once (``Aggregate.add``); the rest of a group are folded
    together at the end (``Aggregate.add_all``: a pass per field, not a call per event). Why
    both: with many keys most groups have one event per fetch, and with few keys most events
    are in large groups; the laws of the combine function make the result the same."""
    groups: dict[tuple[str, ...], dict[int, Accumulator]] = {}
    rest: dict[int, tuple[Accumulator, list[dict[str, Any]]]] = {}  # id(acc) -> later events
    key_values, create, add = aggregate.key_values, aggregate.create, aggregate.add
    for event in events:
        ts = event[time_field]
        window_start = ts - ts % window_ms
        windows = groups.get(key := key_values(event))
        if windows is None:
            windows = groups[key] = {}
        acc = windows.get(window_start)
        if acc is None:
            windows[window_start] = acc = create()
            add(acc, event)
            continue
        later = rest.get(id(acc))
        if later is None:
            rest[id(acc)] = (acc, [event])
        else:
            later[1].append(event)
    add_all = aggregate.add_all
    for acc, later_events in rest.values():
        add_all(acc, later_events)
    return {encode_key(k): v for k, v in groups.items()}


class PartitionClock:
    """The watermark of one table partition (see the module docstring)."""

    __slots__ = ("floor", "idle_after", "last_arrival", "sources")

    def __init__(self, source_partitions: int, idle_after: float, now: float) -> None:
        # Source partitions not heard from yet hold the watermark back until they count as
        # idle, so a partition that first hears from one fast source does not close early.
        self.sources: dict[int, list[float]] = {p: [0, now] for p in range(source_partitions)}
        self.idle_after = idle_after
        self.last_arrival = now
        self.floor = 0  # the highest watermark so far (also restored after a restart)

    def observe(self, source_partition: int, event_ms: int, now: float) -> None:
        state = self.sources.get(source_partition)
        if state is None:
            self.sources[source_partition] = [event_ms, now]
        else:
            if event_ms > state[0]:
                state[0] = event_ms
            state[1] = now
        self.last_arrival = now

    def watermark(self, now: float) -> int:
        """Lowest event time over active sources; wall-clock advance once all are idle."""
        idle_after = self.idle_after
        active = [t for t, seen in self.sources.values() if now - seen < idle_after]
        if active:
            computed = int(min(active))
        else:
            newest = max((t for t, _ in self.sources.values()), default=0)
            computed = int(newest + (now - self.last_arrival) * 1000) if newest else 0
        if computed > self.floor:
            self.floor = computed  # the watermark never goes back
        return self.floor


class WindowedTable:
    """One derived aggregate's table, fed by one source topic: the source side ships its
    partials (:meth:`ship`), the table side merges them, closes windows and publishes.

    ``time_field`` is the source topic's event-time field (epoch ms), ``source_topic`` labels
    the late-events metric."""

    def __init__(
        self,
        *,
        app: Any,
        aggregate: Aggregate,
        source_topic: str,
        time_field: str,
        table: Any,
        partials_topic: str,
        publisher: AggregatePublisher,
        window_ms: int,
        grace_ms: int,
        partitions: int,
        idle_advance_seconds: float,
        closed_windows_kept: int,
        latency_log: Path | None = None,
        merge_locally: bool = True,
    ) -> None:
        self.app = app
        self.merge_locally = merge_locally
        self.aggregate = aggregate
        self.source_topic = source_topic
        self.time_field = time_field
        self.table = table
        self.partials_topic = partials_topic
        self.publisher = publisher
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.partitions = partitions
        self.idle_advance_seconds = idle_advance_seconds
        self.closed_windows_kept = closed_windows_kept
        self.latency_log = latency_log
        self._clocks: dict[int, PartitionClock] = {}
        #: table partition -> window start -> keys with that window open
        self._open: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._indexed_generation: int | None = None
        self._lock = asyncio.Lock()
        self._latency = metrics.TABLE_LATENCY.labels(table=aggregate.table)
        self._latency_file: TextIO | None = None  # LATENCY_LOG, opened on first use

    # -- source side -------------------------------------------------------------------------

    async def ship(
        self,
        events: Sequence[dict[str, Any]],
        source_times: dict[int, int],
        produced_ms: tuple[int, int] = (0, 0),
    ) -> list[Any]:
        """Deliver the partials of one fetch's events to every table partition: merged in
        place into the partitions this worker owns (:meth:`merge_local`), sent to the others
        as one message per partition (chunked when large), the last one carrying how far each
        source partition has got (``source_times``: partition -> highest event time); every
        table partition gets one, so every watermark moves; every one carries the
        production-time range of the fetch's events (``produced_ms``: oldest, newest) for the
        table-latency measurement. Returns the delivery futures to await before acking."""
        partials = build_partials(self.aggregate, events, self.window_ms, self.time_field)
        by_partition: dict[int, list[tuple[str, dict[int, Accumulator]]]] = defaultdict(list)
        partitions = self.partitions
        for key, windows in partials.items():
            by_partition[key_partition(serialized_key(key), partitions)].append((key, windows))
        generation = self.app.consumer_generation_id
        local = self.local_partitions()
        if local:
            local -= await self.merge_local(
                {p: dict(by_partition.get(p, ())) for p in sorted(local)},
                source_times, produced_ms, generation,
            )  # fmt: skip
        times = {str(p): t for p, t in source_times.items()}
        send = self.app.producer.send
        topic = self.partials_topic
        futures = []
        for partition in range(partitions):
            if partition in local:
                continue
            entries = by_partition.get(partition, [])
            chunks = [
                entries[i : i + PARTIAL_KEYS_PER_MESSAGE]
                for i in range(0, len(entries), PARTIAL_KEYS_PER_MESSAGE)
            ] or [[]]
            for index, chunk in enumerate(chunks):
                payload: dict[str, Any] = {"k": dict(chunk)}
                if produced_ms[0]:
                    payload["p"], payload["q"] = produced_ms
                if index == len(chunks) - 1:
                    # Only the last chunk moves the watermark: the others of this fetch are
                    # then merged already, whichever stage-2 fetch they arrive in.
                    payload["t"] = times
                value = json.dumps(payload).encode()
                futures.append(await send(topic, None, value, partition, None, None))
        return futures

    def local_partitions(self) -> frozenset[int]:
        """Table partitions this worker owns now (its active partials-topic partitions): the
        source side merges their partials in place instead of through the broker. Empty when
        ``merge_locally`` is off."""
        if not self.merge_locally:
            return frozenset()
        topic = self.partials_topic
        return frozenset(
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic
        )

    def _owns_partitions_still(self, generation: int | None) -> bool:
        """Whether the assignment ``local_partitions`` was read in still holds: no rebalance
        begun (Faust sets ``rebalancing`` first, then stops the flow) or completed since."""
        app = self.app
        return (
            not app.rebalancing
            and app.consumer.flow_active
            and app.consumer_generation_id == generation
        )

    async def merge_local(
        self,
        partials_by_partition: dict[int, Partials],
        source_times: dict[int, int],
        produced_ms: tuple[int, int],
        generation: int | None,
    ) -> set[int]:
        """The source side's shortcut for partitions this worker owns: exactly what
        :meth:`on_partials` does with a partials message (merge, watermark, close), without
        the broker round trip. Why: on one worker every partial would otherwise cross the
        broker twice (send, fetch), which is most of the table latency (README "Hot path").

        A partition is merged only while the assignment of consumer generation ``generation``
        still holds, checked just before its (synchronous) writes: a write made before a
        rebalance stops the flow is flushed to the changelog by Faust before the partition
        can move, one made after could be missed by the next owner's recovery. Returns the
        partitions not merged for that reason; the caller ships them through the partials
        topic, where whoever owns them next finds them."""
        not_merged: set[int] = set()
        size = self.aggregate.size
        async with self._lock:
            self._maybe_reindex()
            now = time.monotonic()
            events = 0
            for partition, partials in partials_by_partition.items():
                if not self._owns_partitions_still(generation):
                    not_merged.add(partition)
                    continue
                events += sum(
                    size(acc) for windows in partials.values() for acc in windows.values()
                )
                self._apply(partition, partials, source_times, [], now)
                await wait_for_changelog_room(self.app)
            if produced_ms[0] and events:
                # Once for the whole fetch: its partitions were merged within the same moment.
                self._observe_latency([(*produced_ms, int(events))])
            for partition in partials_by_partition.keys() - not_merged:
                if self._owns_partitions_still(generation):  # else the next owner closes it
                    await self._close_due(partition, now)
        if not_merged:
            log.info(
                "table %s: rebalance under way, partitions %s shipped through %s instead",
                self.aggregate.table, sorted(not_merged), self.partials_topic,
            )  # fmt: skip
        return not_merged

    # -- table side --------------------------------------------------------------------------

    def clock(self, partition: int, now: float | None = None) -> PartitionClock:
        clock = self._clocks.get(partition)
        if clock is None:
            now = time.monotonic() if now is None else now
            clock = PartitionClock(self.partitions, self.idle_advance_seconds, now)
            self._clocks[partition] = clock
        return clock

    def watermark(self, partition: int, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        return self.clock(partition, now).watermark(now)

    def _is_closed(self, window_start: int, watermark: int) -> bool:
        return window_start + self.window_ms + self.grace_ms <= watermark

    async def on_partials(self, batches: Sequence[SourceBatch]) -> None:
        """Merge one fetch's partials into the table (one write per key per partition), then
        close what the partitions' watermarks have passed."""
        async with self._lock:
            self._maybe_reindex()
            now = time.monotonic()
            for batch in batches:
                self._merge(batch, now)
                await wait_for_changelog_room(self.app)
            for batch in batches:
                await self._close_due(batch.partition, now)

    def _merge(self, batch: SourceBatch, now: float) -> None:
        """Merge the partials of one table partition's batch (see the module docstring)."""
        merged: Partials = {}
        source_times: dict[int, int] = {}
        #: per partials message with a production range: (oldest, newest, events carried)
        produced: list[tuple[int, int, int]] = []
        for record in batch.records:
            payload = json.loads(record.value)
            for source_key, event_ms in payload.get("t", {}).items():
                source = int(source_key)
                if event_ms > source_times.get(source, -1):
                    source_times[source] = event_ms
            events = 0
            size, merge = self.aggregate.size, self.aggregate.merge
            for key, key_windows in payload["k"].items():
                windows = merged.get(key)
                if windows is None:
                    windows = merged[key] = {}
                for start, acc in key_windows.items():
                    events += size(acc)
                    start_ms = int(start)
                    existing = windows.get(start_ms)
                    if existing is None:
                        windows[start_ms] = acc
                    else:
                        merge(existing, acc)
            if payload.get("p") and events:
                produced.append((payload["p"], payload["q"], int(events)))
        self._apply(batch.partition, merged, source_times, produced, now)

    def _apply(
        self,
        partition: int,
        merged: Partials,
        source_times: dict[int, int],
        produced: list[tuple[int, int, int]],
        now: float,
    ) -> None:
        """Write ``merged`` (key -> window -> accumulator, one write per key) into table
        partition ``partition``, then let its watermark hear ``source_times``."""
        clock = self.clock(partition, now)
        watermark = clock.watermark(now)
        open_index = self._open[partition]
        late = 0
        table = self.table
        size, merge = self.aggregate.size, self.aggregate.merge
        with table_context(self.app, self.partials_topic, partition):
            for key, windows in merged.items():
                state = table.get(key) or {"open": {}, "closed": {}}
                opened, closed = state["open"], state["closed"]
                for start_ms, acc in windows.items():
                    start = str(start_ms)
                    if start in closed or self._is_closed(start_ms, watermark):
                        late += size(acc)
                        continue
                    existing = opened.get(start)
                    if existing is None:
                        opened[start] = acc
                        open_index[start_ms].add(key)
                    else:
                        merge(existing, acc)
                table[key] = state
        if late:
            metrics.LATE_EVENTS.labels(topic=self.source_topic).inc(late)
        if produced:
            self._observe_latency(produced)
        for source, event_ms in source_times.items():
            clock.observe(source, event_ms, now)

    def _observe_latency(self, produced: list[tuple[int, int, int]]) -> None:
        """Table latency of the events just merged: the histogram, and the LATENCY_LOG hook."""
        merged_ms = time.time() * 1000.0
        for oldest, newest, events in produced:
            metrics.observe_spread(
                self._latency, max(0.0, (merged_ms - newest) / 1000.0),
                max(0.0, (merged_ms - oldest) / 1000.0), events,
            )  # fmt: skip
        if self.latency_log is not None:
            lines = "".join(
                json.dumps({
                    "table": self.aggregate.table, "merged_ms": merged_ms, "events": events,
                    "produced_ms_min": oldest, "produced_ms_max": newest,
                }) + "\n"
                for oldest, newest, events in produced
            )  # fmt: skip
            if self._latency_file is None:
                self._latency_file = self.latency_log.open("a", buffering=1)
            self._latency_file.write(lines)

    async def tick(self) -> None:
        """Periodic: close windows the idle-advanced watermarks have passed."""
        async with self._lock:
            self._maybe_reindex()
            now = time.monotonic()
            for partition in list(self._open):
                await self._close_due(partition, now)

    async def _close_due(self, partition: int, now: float) -> None:
        open_index = self._open.get(partition)
        if not open_index:
            return
        clock = self.clock(partition, now)
        watermark = clock.watermark(now)
        due = sorted(s for s in open_index if self._is_closed(s, watermark))
        if not due:
            return
        clock.floor = watermark  # what has closed stays closed
        now_ms = int(time.time() * 1000)
        for start_ms in due:
            keys = list(open_index.pop(start_ms))
            start = str(start_ms)
            # In slices, so a window over tens of thousands of keys never holds all its records,
            # deliveries and changelog writes in memory at once. In the partition's context:
            # reads go straight to its database, writes to its changelog partition
            # (contextvars are per task, so the awaits below are safe).
            for first in range(0, len(keys), CLOSE_SLICE_KEYS):
                slice_keys = keys[first : first + CLOSE_SLICE_KEYS]
                with table_context(self.app, self.partials_topic, partition):
                    records = []
                    states = []
                    for key in slice_keys:
                        state = self.table.get(key)
                        acc = state and state["open"].get(start)
                        if acc is None:
                            continue
                        record = derived_record(
                            self.aggregate, key, decode_key(key), start_ms, self.window_ms, acc,
                            now_ms,
                        )  # fmt: skip
                        records.append((key, record))
                        states.append((key, state))
                    await self.publisher.publish(self.aggregate.table, records)
                    # Marked closed only once published: a crash in between republishes
                    # (at least once; event_id is deterministic so consumers can dedupe).
                    for key, state in states:
                        self._mark_closed(key, state, start)
                await wait_for_changelog_room(self.app)

    def _mark_closed(self, key: str, state: dict[str, Any], start: str) -> None:
        """Move window ``start`` of ``state`` (just read for ``key``) to its closed windows."""
        closed = state["closed"]
        closed[start] = state["open"].pop(start)
        if self.closed_windows_kept:
            for old in sorted(closed, key=int)[: -self.closed_windows_kept]:
                del closed[old]
        else:
            closed.clear()
        self.table[key] = state

    def _maybe_reindex(self) -> None:
        """After a rebalance or recovery, rebuild the open-window index from the table."""
        generation = self.app.consumer_generation_id
        if generation == self._indexed_generation:
            return
        self._indexed_generation = generation
        self._open.clear()
        newest_closed: dict[int, int] = {}
        windows = 0
        for key, state in self.table.items():
            if not state:
                continue
            partition = key_partition(serialized_key(key), self.partitions)
            for start in state.get("open", {}):
                self._open[partition][int(start)].add(key)
                windows += 1
            for start in state.get("closed", {}):
                newest_closed[partition] = max(newest_closed.get(partition, 0), int(start))
        for partition, start in newest_closed.items():
            # Restores the watermark: nothing at or before the newest closed window reopens.
            clock = self.clock(partition)
            clock.floor = max(clock.floor, start + self.window_ms + self.grace_ms)
        log.info(
            "table %s indexed: %d open windows after generation %s",
            self.aggregate.table, windows, generation,
        )  # fmt: skip

    def key_count(self) -> int:
        return sum(1 for _ in self.table)
