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
published, then the window moves to the key's ``closed`` list (kept for the web views). In the
worker closes run in a task of their own (``close_in_background``): publishing waits for the
broker's acks, and a window over a thousand keys took 200 ms that the fetch loop would have
waited through (measured on the live mix: the p99 of every table). A
partial for a closed window is late: its events are counted in
``streampulse_late_events_total`` (by the topic's first table, so once per event) and
``streampulse_late_contributions_total{table}``, and not merged.

Exactly-once effect without transactions (README "Crashes and restarts"): Faust commits source
offsets on a timer, after the table writes, so a crash replays what was applied but not
committed. Every contribution carries the source offsets it covers (``ranges``: source
partition -> first and last offset of the fetch's records), and every key's table value keeps,
per source partition, the last offset it has absorbed (``"o"``), written with the value in one
table write. A contribution wholly at or below a key's marks is a replay and is skipped;
wholly above, it is merged; one that straddles a mark (a replayed fetch cut differently from
the original) is merged event by event, each event only if its offset is above the mark
(:func:`build_event_partials`). In place the source side has its events for that; through the
partials topic, a source partition's records up to its end offset at assignment (the replay
zone: a previous owner may have applied them) travel event by event. Marks only work if each
key sees a source partition's fetches in offset order, so a worker merges in place into a
partition it has just been assigned only once it has read that partition's partials topic up
to its end (``_caught_up``); until then it ships to itself through the topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from aiokafka.partitioner import murmur2
from faust.types import TP

from app.engine import metrics
from app.engine.batching import (
    SourceBatch,
    owned_partitions,
    table_context,
)
from app.engine.publish import AggregatePublisher, derived_records
from app.engine.states import TableStates
from models.combine import Accumulator, Aggregate

__all__ = [
    "Contribution",
    "EventPartials",
    "Partials",
    "PartitionClock",
    "Ranges",
    "WindowedTable",
    "build_event_partials",
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
#: source partition (as a JSON key: str) -> (first offset, last offset) a contribution covers
Ranges = dict[str, tuple[int, int]]
#: one event's contribution: (source partition as str, offset, window start, accumulator)
EventPartial = tuple[str, int, int, Accumulator]
#: key -> that key's events of a fetch, one accumulator each
EventPartials = dict[str, list[EventPartial]]
#: what the table side merges into one key: (ranges, windows | None, events | None)
Contribution = tuple[Ranges, dict[int, Accumulator] | None, list[EventPartial] | None]


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


def build_event_partials(
    aggregate: Aggregate,
    events: Sequence[dict[str, Any]],
    positions: Sequence[tuple[str, int]],
    window_ms: int,
    time_field: str,
) -> EventPartials:
    """One accumulator per event (``positions[i]``: event i's source partition and offset),
    grouped by key: what a replayed fetch is merged from where it may straddle a key's marks
    (the module docstring). Slower than :func:`build_partials`; used only on replays."""
    out: EventPartials = {}
    key_values, create, add = aggregate.key_values, aggregate.create, aggregate.add
    for event, (source, offset) in zip(events, positions, strict=True):
        ts = event[time_field]
        acc = create()
        add(acc, event)
        out.setdefault(encode_key(key_values(event)), []).append(
            (source, offset, ts - ts % window_ms, acc)
        )
    return out


def _against_marks(ranges: Ranges, marks: dict[str, int]) -> int:
    """1: every range above the key's marks (new); 0: every range at or below them (already
    absorbed); -1: straddling (merge event by event)."""
    above = below = 0
    for source, (first, last) in ranges.items():
        mark = marks.get(source, -1)
        if first > mark:
            above += 1
        elif last <= mark:
            below += 1
        else:
            return -1
    if not below:
        return 1
    return 0 if not above else -1


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

    def touch(self, source_partition: int, now: float) -> None:
        """``source_partition`` is alive but has nothing new (it waits on the registry): it
        stays active, so the watermark stays at or below its last event time."""
        state = self.sources.get(source_partition)
        if state is None:
            self.sources[source_partition] = [0, now]
        else:
            state[1] = now

    def touch_active(self, now: float) -> None:
        """Keep every source that is active now active (the whole consumer waits: the data
        of every partition it has fetched waits with it)."""
        idle_after = self.idle_after
        for state in self.sources.values():
            if now - state[1] < idle_after:
                state[1] = now

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
        counts_late_events: bool = True,
        close_in_background: bool = False,
    ) -> None:
        self.app = app
        #: Closes run in :meth:`_run_closes` (the worker), not before ship/on_partials/tick
        #: return (tools and unit tests, which then see what closed).
        self.close_in_background = close_in_background
        self._close_wanted: dict[int, int | None] = {}  # partition -> generation asked in
        self._closer: asyncio.Task[None] | None = None
        self._close_error: BaseException | None = None
        # The topic's late-events counter counts each event once: only its first table adds.
        self._late_events = (
            metrics.LATE_EVENTS.labels(topic=source_topic) if counts_late_events else None
        )
        self._late_contributions = metrics.LATE_CONTRIBUTIONS.labels(table=aggregate.table)
        self.merge_locally = merge_locally
        self.aggregate = aggregate
        self.source_topic = source_topic
        self.time_field = time_field
        self.table = table
        self.states = TableStates(app, table)  # what merges and closes read and write
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
        self._replayed = metrics.REPLAYED_EVENTS.labels(table=aggregate.table)
        # In-place merge after an assignment (``local_partitions``): partitions read up to
        # their partials topic's end, the offset read up to, messages sent to owned partitions.
        self._drain_generation: int | None = None
        self._drained: set[int] = set()
        self._consumed_to: dict[int, int] = {}
        self._self_sends_pending: dict[int, int] = {}
        self._self_sent_to: dict[int, int] = {}

    # -- source side -------------------------------------------------------------------------

    async def ship(
        self,
        events: Sequence[dict[str, Any]],
        source_times: dict[int, int],
        produced_ms: tuple[int, int] = (0, 0),
        ranges: Ranges | None = None,
        positions: Callable[[], Sequence[tuple[str, int]]] | None = None,
        replay: bool = False,
        generation: int | None = None,
    ) -> list[Any]:
        """Deliver the partials of one fetch's events to every table partition: merged in
        place into the partitions this worker owns (:meth:`merge_local`), sent to the others
        as one message per partition (chunked when large), the last one carrying how far each
        source partition has got (``source_times``: partition -> highest event time); every
        table partition gets one, so every watermark moves; every one carries the
        production-time range of the fetch's events (``produced_ms``: oldest, newest) for the
        table-latency measurement. Returns the delivery futures to await before acking.

        ``ranges`` are the source offsets the events cover, ``positions()`` each event's
        (source partition, offset), ``replay`` whether some of them may have been applied
        already by a previous owner (then the messages carry one accumulator per event):
        the exactly-once bookkeeping of the module docstring. Without ``ranges`` (tools,
        tests) nothing is checked against the marks. ``generation``: the consumer generation
        the events were read in (default: now)."""
        partials = build_partials(self.aggregate, events, self.window_ms, self.time_field)
        ranges = ranges or {}
        by_partition: dict[int, list[tuple[str, dict[int, Accumulator]]]] = defaultdict(list)
        partitions = self.partitions
        for key, windows in partials.items():
            by_partition[key_partition(serialized_key(key), partitions)].append((key, windows))
        event_partials: EventPartials | None = None

        def per_event() -> EventPartials:
            nonlocal event_partials
            if event_partials is None:
                if positions is None:
                    raise RuntimeError("a replayed contribution needs the events' offsets")
                event_partials = build_event_partials(
                    self.aggregate, events, positions(), self.window_ms, self.time_field
                )
            return event_partials

        if generation is None:
            generation = self.app.consumer_generation_id
        if self._owns_partitions_still(generation):
            local = self.local_partitions()
        else:  # everything goes through the topic: read it back before merging in place again
            local = frozenset()
            self._drained.clear()
        if local:
            not_merged = await self.merge_local(
                {p: dict(by_partition.get(p, ())) for p in sorted(local)},
                source_times, produced_ms, generation, ranges,
                per_event if positions is not None else None,
            )  # fmt: skip
            local -= not_merged
            # Shipped through the topic now: merging a later fetch in place before this one
            # is read back would overtake it (its marks would then skip it as a replay).
            self._drained -= not_merged
        if not self._owns_partitions_still(generation):
            # A rebalance began since the fetch was read: whoever owns the partitions next
            # may replay these offsets cut differently, so send them event by event.
            replay = True
        replay = replay and positions is not None  # tools and tests ship without offsets
        times = {str(p): t for p, t in source_times.items()}
        send = self.app.producer.send
        topic = self.partials_topic
        owned = self._owned_partitions() if self.merge_locally else frozenset()
        futures = []
        remote_events: dict[int, list[tuple[str, list[EventPartial]]]] = defaultdict(list)
        if replay and events and len(local) < partitions:
            for key, entries in per_event().items():
                remote_events[key_partition(serialized_key(key), partitions)].append(
                    (key, entries)
                )
        for partition in range(partitions):
            if partition in local:
                continue
            field = "e" if replay and events else "k"
            entries = remote_events[partition] if field == "e" else by_partition.get(partition, [])
            chunks = [
                entries[i : i + PARTIAL_KEYS_PER_MESSAGE]
                for i in range(0, len(entries), PARTIAL_KEYS_PER_MESSAGE)
            ] or [[]]
            for index, chunk in enumerate(chunks):
                payload: dict[str, Any] = {field: dict(chunk)}
                if ranges:
                    payload["r"] = ranges
                if produced_ms[0]:
                    payload["p"], payload["q"] = produced_ms
                if index == len(chunks) - 1:
                    # Only the last chunk moves the watermark: the others of this fetch are
                    # then merged already, whichever stage-2 fetch they arrive in.
                    payload["t"] = times
                value = json.dumps(payload).encode()
                future = await send(topic, None, value, partition, None, None)
                if partition in owned:
                    self._track_self_send(partition, future)
                futures.append(future)
        if local and (delivered := self.states.delivered()) is not None:
            futures.append(asyncio.ensure_future(delivered))  # the in-place writes
        return futures

    async def hold(self, source_partitions: set[int] | None) -> None:
        """Keep ``source_partitions`` (None: every source active now) active in every table
        partition's watermark while the source side waits (on the registry): touched in
        place where this worker owns the partition, a small ``{"h": ...}`` message to the
        others."""
        # Every owned partition in place (one not yet read to its end too: this worker's drain
        # loop, blocked, could not read an "h" sent to itself); every source active now is held
        # (the others' data waits behind the blocked loop), and the waiting ones.
        local = self._owned_partitions() if self.merge_locally else frozenset()
        now = time.monotonic()
        for partition in local:
            clock = self.clock(partition, now)
            clock.touch_active(now)
            for source in source_partitions or ():
                clock.touch(source, now)
        held = "*" if source_partitions is None else sorted(source_partitions)
        value = json.dumps({"h": held}).encode()
        send = self.app.producer.send
        for partition in range(self.partitions):
            if partition not in local:
                await send(self.partials_topic, None, value, partition, None, None)

    def _owned_partitions(self) -> frozenset[int]:
        """Table partitions this worker owns now (its active partials-topic partitions)."""
        return owned_partitions(self.app, self.partials_topic)

    def local_partitions(self) -> frozenset[int]:
        """Table partitions the source side merges in place: owned, and read up to the end of
        their partials topic since the assignment (``_caught_up``: so each key gets a source
        partition's fetches in order). Empty when ``merge_locally`` is off."""
        if not self.merge_locally:
            return frozenset()
        generation = self.app.consumer_generation_id
        if generation != self._drain_generation:
            self._drain_generation = generation
            self._drained = set()
            self._consumed_to = {}
        owned = self._owned_partitions()
        for partition in owned - self._drained:
            if self._caught_up(partition):
                self._drained.add(partition)
        return owned & frozenset(self._drained)

    def _caught_up(self, partition: int) -> bool:
        """Whether this worker has merged everything its partials topic partition held when
        it was assigned, and everything it has sent itself there since."""
        if self._self_sends_pending.get(partition):
            return False
        tp = TP(self.partials_topic, partition)
        consumer = self.app.consumer
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not assigned to the consumer (yet)
            return False
        if highwater is None:
            return False  # no fetch of it answered yet
        position = self._consumed_to.get(partition)
        if position is None:
            position = consumer._committed_offset.get(tp) or 0
        return position >= highwater and position > self._self_sent_to.get(partition, -1)

    def _track_self_send(self, partition: int, future: Any) -> None:
        """Count a message sent to a partition this worker owns until it is delivered, and
        remember its offset: the partition is merged in place only once it has read it."""
        pending = self._self_sends_pending
        pending[partition] = pending.get(partition, 0) + 1

        def delivered(done: Any) -> None:
            pending[partition] -= 1
            if not done.cancelled() and done.exception() is None:
                offset = getattr(done.result(), "offset", None)
                if offset is not None and offset > self._self_sent_to.get(partition, -1):
                    self._self_sent_to[partition] = offset

        future.add_done_callback(delivered)

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
        ranges: Ranges | None = None,
        per_event: Callable[[], EventPartials] | None = None,
    ) -> set[int]:
        """The source side's shortcut for partitions this worker owns: exactly what
        :meth:`on_partials` does with a partials message (merge, watermark, close), without
        the broker round trip. Why: on one worker every partial would otherwise cross the
        broker twice (send, fetch), which is most of the table latency (README "Hot path").
        A key whose marks the fetch straddles is merged from ``per_event()``.

        A partition is merged only while the assignment of consumer generation ``generation``
        still holds, checked just before its (synchronous) writes: a write made before a
        rebalance stops the flow is flushed to the changelog by Faust before the partition
        can move, one made after could be missed by the next owner's recovery. Returns the
        partitions not merged for that reason; the caller ships them through the partials
        topic, where whoever owns them next finds them."""
        not_merged: set[int] = set()
        size = self.aggregate.size
        ranges = ranges or {}
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
                contributions = {key: [(ranges, w, None)] for key, w in partials.items()}
                self._apply(partition, contributions, source_times, [], now, per_event)
                await self.states.room()
            if produced_ms[0] and events:
                # Once for the whole fetch: its partitions were merged within the same moment.
                self._observe_latency([(*produced_ms, int(events))])
            await self._close_soon(partials_by_partition.keys() - not_merged, generation, now)
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

    async def on_partials(self, batches: Sequence[SourceBatch]) -> Awaitable[Any] | None:
        """Merge one fetch's partials into the table (one write per key per partition), then
        close what the partitions' watermarks have passed. Returns what completes once the
        writes are with the broker (the batches are acked then)."""
        async with self._lock:
            self._maybe_reindex()
            now = time.monotonic()
            for batch in batches:
                self._merge(batch, now)
                self._consumed_to[batch.partition] = batch.records[-1].offset + 1
                await self.states.room()
            generation = self.app.consumer_generation_id
            await self._close_soon([batch.partition for batch in batches], generation, now)
        return self.states.delivered()

    def _merge(self, batch: SourceBatch, now: float) -> None:
        """Merge the partials of one table partition's batch (see the module docstring):
        each key's contributions in message order, against its marks, one write per key."""
        contributions: dict[str, list[Contribution]] = {}
        source_times: dict[int, int] = {}
        held: set[int] = set()  # sources waiting on the registry (``hold``)
        hold_active = False  # the whole source side waits: every active source held
        #: per partials message with a production range: (oldest, newest, events carried)
        produced: list[tuple[int, int, int]] = []
        size = self.aggregate.size
        for record in batch.records:
            payload = json.loads(record.value)
            hold = payload.get("h", ())
            if hold == "*":
                hold_active = True
            else:
                held.update(hold)
            for source_key, event_ms in payload.get("t", {}).items():
                source = int(source_key)
                if event_ms > source_times.get(source, -1):
                    source_times[source] = event_ms
            ranges: Ranges = payload.get("r") or {}
            events = 0
            for key, key_windows in payload.get("k", {}).items():
                windows = {int(start): acc for start, acc in key_windows.items()}
                events += sum(size(acc) for acc in windows.values())
                contributions.setdefault(key, []).append((ranges, windows, None))
            for key, entries in payload.get("e", {}).items():
                events += sum(size(entry[3]) for entry in entries)
                contributions.setdefault(key, []).append(
                    (ranges, None, [tuple(entry) for entry in entries])
                )
            if payload.get("p") and events:
                produced.append((payload["p"], payload["q"], int(events)))
        self._apply(batch.partition, contributions, source_times, produced, now)
        if held or hold_active:
            clock = self.clock(batch.partition, now)
            if hold_active:
                clock.touch_active(now)
            for source in held:
                clock.touch(int(source), now)

    def _apply(
        self,
        partition: int,
        contributions: dict[str, list[Contribution]],
        source_times: dict[int, int],
        produced: list[tuple[int, int, int]],
        now: float,
        per_event: Callable[[], EventPartials] | None = None,
    ) -> None:
        """Merge each key's ``contributions`` (in order, against the key's marks: the module
        docstring) into table partition ``partition``, one write per key, then let its
        watermark hear ``source_times``. ``per_event()`` gives a straddling in-place
        contribution's events."""
        clock = self.clock(partition, now)
        watermark = clock.watermark(now)
        open_index = self._open[partition]
        late = replayed = 0
        states = self.states
        size, merge = self.aggregate.size, self.aggregate.merge
        cumulative = self.aggregate.cumulative
        with table_context(self.app, self.partials_topic, partition):
            for key, key_contributions in contributions.items():
                state = states.get(key) or {"open": {}, "closed": {}}
                opened, closed = state["open"], state["closed"]
                marks = state.get("o")
                if marks is None:
                    marks = state["o"] = {}
                for ranges, windows, entries in key_contributions:
                    if windows is not None:
                        position = _against_marks(ranges, marks)
                        if position == 0:
                            replayed += sum(size(acc) for acc in windows.values())
                            windows = None
                        elif position < 0:
                            entries = per_event().get(key, []) if per_event else None
                            if entries is None:
                                log.error(
                                    "table %s key %r: a contribution straddles the key's"
                                    " marks %s (%s) with no events to split it: merged whole",
                                    self.aggregate.table, key, marks, ranges,
                                )  # fmt: skip
                            else:
                                windows = None
                    if entries is not None:
                        windows = {}
                        for source, offset, start_ms, acc in entries:
                            if offset <= marks.get(source, -1):
                                replayed += size(acc)
                            elif (existing := windows.get(start_ms)) is None:
                                windows[start_ms] = acc
                            else:
                                merge(existing, acc)
                    for start_ms, acc in (windows or {}).items():
                        start = str(start_ms)
                        if start in closed or self._is_closed(start_ms, watermark):
                            late += size(acc)
                            if cumulative:  # not in its window, but in every later total
                                total = state.get("c")
                                state["c"] = acc if total is None else merge(total, acc)
                            continue
                        existing = opened.get(start)
                        if existing is None:
                            opened[start] = acc
                            open_index[start_ms].add(key)
                        else:
                            merge(existing, acc)
                    for source, (_, last) in ranges.items():
                        if last > marks.get(source, -1):
                            marks[source] = last
                # Written even when everything was a replay: the changelog may not have had
                # the value the local database replayed against (a crash before its send).
                states.put(key, state)
        if late:
            self._late_contributions.inc(late)
            if self._late_events is not None:
                self._late_events.inc(late)
        if replayed:
            self._replayed.inc(replayed)
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
            if not self._maybe_reindex():
                return  # recovering: nothing closes on a half-restored table
            generation = self.app.consumer_generation_id
            await self._close_soon(list(self._open), generation, time.monotonic())

    async def _close_soon(
        self, partitions: Iterable[int], generation: int | None, now: float
    ) -> None:
        """Close what is due in ``partitions`` (read in consumer generation ``generation``):
        at once, or in the background closer (``close_in_background``). A failed background
        close (its publishing failed) is raised here, to the next merge: the worker stops as
        it would have if the close had run inline."""
        if self._close_error is not None:
            error, self._close_error = self._close_error, None
            raise error
        if not self.close_in_background:
            for partition in partitions:
                if self._owns_partitions_still(generation):  # else the next owner closes it
                    await self._close_due(partition, now, generation)
            return
        for partition in partitions:
            self._close_wanted[partition] = generation
        if self._closer is None or self._closer.done():
            self._closer = asyncio.ensure_future(self._run_closes())

    async def _run_closes(self) -> None:
        """The background closer: one partition at a time, until none is wanted."""
        try:
            while self._close_wanted:
                partition = min(self._close_wanted)
                generation = self._close_wanted.pop(partition)
                if self._owns_partitions_still(generation):  # else the next owner closes it
                    await self._close_due(partition, time.monotonic(), generation)
        except Exception as exc:
            log.exception("table %s: closing windows failed", self.aggregate.table)
            self._close_error = exc

    async def settled(self) -> None:
        """Wait until the background closer has nothing left to do (tests)."""
        while self._closer is not None and not self._closer.done():
            await asyncio.shield(self._closer)
        if self._close_error is not None:
            error, self._close_error = self._close_error, None
            raise error

    async def _close_due(self, partition: int, now: float, generation: int | None = None) -> None:
        """Publish and mark closed every window of ``partition`` its watermark has passed.

        Safe beside merges without the table lock: merges into a window the watermark has
        passed are late (they never touch it), and each slice re-reads its keys after the
        publishing await, so what merges wrote meanwhile (other windows, marks, a cumulative
        total's late contributions) is kept. A rebalance during the await (``generation`` no
        longer holds) leaves the slice unmarked: the next owner closes it again (at least
        once, like a crash between publishing and marking)."""
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
        states = self.states
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
                    closing = []
                    for key in slice_keys:
                        state = states.get(key)
                        acc = state and state["open"].get(start)
                        if acc is None:
                            continue
                        total = self._running_total(state, acc)
                        records.extend((key, record) for record in derived_records(
                            self.aggregate, key, decode_key(key), start_ms, self.window_ms, acc,
                            now_ms, total,
                        ))  # fmt: skip
                        closing.append(key)
                    await self.publisher.publish(
                        self.aggregate.topic, records, table=self.aggregate.table
                    )
                    if generation is not None and not self._owns_partitions_still(generation):
                        return
                    # Marked closed only once published: a crash in between republishes
                    # (at least once; event_id is deterministic so consumers can dedupe).
                    for key in closing:
                        state = states.get(key)
                        acc = state and state["open"].get(start)
                        if acc is not None:
                            self._mark_closed(key, state, start, self._running_total(state, acc))
                await self.states.room()

    def _running_total(self, state: dict[str, Any], acc: Accumulator) -> Accumulator | None:
        """A cumulative aggregate's total as of the end of the window ``acc`` closes: the key's
        running total (``"c"``: every window closed before, and late contributions) merged
        with it, in a fresh accumulator. None for other aggregates."""
        if not self.aggregate.cumulative:
            return None
        merge = self.aggregate.merge
        total = self.aggregate.create()
        if state.get("c") is not None:
            merge(total, state["c"])
        return merge(total, acc)

    def _mark_closed(
        self, key: str, state: dict[str, Any], start: str, total: Accumulator | None = None
    ) -> None:
        """Move window ``start`` of ``state`` (just read for ``key``) to its closed windows
        (and, cumulative, keep the running total it closed with)."""
        if total is not None:
            state["c"] = total
        closed = state["closed"]
        closed[start] = state["open"].pop(start)
        if self.closed_windows_kept:
            for old in sorted(closed, key=int)[: -self.closed_windows_kept]:
                del closed[old]
        else:
            closed.clear()
        self.states.put(key, state)

    def _maybe_reindex(self) -> bool:
        """After a rebalance, once its table recovery has completed, rebuild the open-window
        index from the table. Returns whether the index is that of the current assignment.

        Why wait for the recovery: an index built from a half-restored table misses the
        restored windows for good (they would never close: seen on a failover, where the
        timer's tick ran during the recovery). Before it completes, the index is rebuilt on
        every call and not kept."""
        app = self.app
        generation = app.consumer_generation_id
        if generation == self._indexed_generation:
            return True
        recovered = getattr(app, "recovered_generation", generation) == generation
        if recovered:
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
        if recovered:
            log.info(
                "table %s indexed: %d open windows after generation %s",
                self.aggregate.table, windows, generation,
            )  # fmt: skip
        return recovered

    def key_count(self) -> int:
        return sum(1 for _ in self.table)
