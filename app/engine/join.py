"""The per-user join across topics and workers: repartition by user, a table keyed by user,
deltas into windowed aggregates (README "Joins").

Three stages:

1. Source side (:class:`JoinFeed`, one per joined source topic): a fetch's valid events become
   join events (``models/users.py``; ``None`` for the events the join does not need), each
   with its user id and its source offset, sent on the internal repartition topic
   ``<app id>-users-repartition`` as one message per user partition (Kafka's murmur2 of the
   JSON user id, as the table routes keys), like the partials: in batches, not per event.
   Every user partition gets one per fetch, with how far each source partition has got, so
   the join's watermarks move. Orders are keyed by ``order_id``, the LENS topics by user: the
   repartition puts every user's events of every topic in one partition whatever the source
   partitioning was (no producer's partitioner is trusted to co-partition).
2. The join (:class:`UserJoin`, the repartition topic's batch agent): the owner of a user
   partition applies its events in offset order (the messages it sent itself as soon as the
   broker acks them, when they come next in that order: :meth:`UserJoin.send`) to the
   ``users`` table (keyed by user: A/B assignments, conversions, recent responses and
   clicks; the only per-user state, which GDPR erasure removes). Each user's value keeps,
   per source partition, the last source offset it absorbed (``"o"``), written with the
   state in one table write, so a source replayed after a crash is recognised and skipped.
   Each applied event gives deltas.
3. The deltas go to windowed tables (``ab.conversions``, ``agg.model.metrics.ctr``) with the
   shared machinery (``app/engine/windowing.py``), exactly as a source's events would: their
   "source partitions" are the repartition topic's partitions, their offsets the repartition
   records', their event times each user partition's join watermark (the lowest over the
   joined source partitions, as the tables compute theirs). The tables' marks recognise a
   replayed repartition record.

Why this order is crash-safe: the deltas are handed to the broker (and the in-place merges'
changelog records flushed) before the user states that absorbed them are written. A crash
before the states are written replays the same repartition records against the same states:
the join is deterministic, so the deltas are the same, and the tables skip what they had. A
crash after it skips the events in the join (its marks) and the tables have the deltas. The
join does not decide lateness (that would depend on wall-clock time and differ in a replay);
the tables downstream do, with their own watermarks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.engine import metrics
from app.engine.batching import (
    SourceBatch,
    flush_producer,
    owned_partitions,
    table_context,
    wait_for_changelog_room,
)
from app.engine.pipeline import ReplayZones
from app.engine.tables import internal_topic, json_table
from app.engine.windowing import (
    PARTIAL_KEYS_PER_MESSAGE,
    PartitionClock,
    Ranges,
    WindowedTable,
    key_partition,
    serialized_key,
)
from app.settings import Settings
from models.users import JoinParams, apply, empty_state

__all__ = ["USERS_TABLE", "Extractor", "JoinFeed", "UserJoin", "repartition_topic_name"]

log = logging.getLogger(__name__)

USERS_TABLE = "users"
#: a joined topic's events as join events: (user id, join event), or None when not needed
Extractor = Callable[[dict[str, Any]], tuple[str, list[Any]] | None]


def repartition_topic_name(app_id: str) -> str:
    return f"{app_id}-users-repartition"


@dataclass(frozen=True)
class _SentRecord:
    """A repartition message this worker sent (its payload, not re-decoded), its offset and
    the consumer generation it was sent in."""

    offset: int
    payload: dict[str, Any]
    generation: int | None


class JoinFeed:
    """Source side of the join for one source topic (stage 1 of the module docstring): the
    pipeline ships its valid events here as it does to its windowed tables."""

    def __init__(self, join: UserJoin, topic: str, extract: Extractor) -> None:
        self.join = join
        self.topic = topic
        self.extract = extract

    def source_id(self, partition: int | str) -> str:
        """How the join names a source partition (marks, watermarks): ``topic:partition``."""
        return f"{self.topic}:{partition}"

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
        """Send the join events of one fetch to the user partitions; returns the delivery
        futures. ``positions()`` (each event's source partition and offset) lets the join
        skip replays; without it (tools) nothing is checked."""
        join = self.join
        where = positions() if positions is not None else None
        by_partition: dict[int, list[list[Any]]] = defaultdict(list)
        extract, partitions = self.extract, join.partitions
        for index, event in enumerate(events):
            found = extract(event)
            if found is None:
                continue
            user, join_event = found
            source, offset = where[index] if where is not None else (None, None)
            by_partition[key_partition(serialized_key(user), partitions)].append(
                [user, self.source_id(source) if source is not None else self.topic, offset,
                 join_event]
            )  # fmt: skip
        times = {self.source_id(p): t for p, t in source_times.items()}
        send = join.send
        futures = []
        for partition in range(partitions):
            entries = by_partition.get(partition, [])
            chunks = [
                entries[i : i + PARTIAL_KEYS_PER_MESSAGE]
                for i in range(0, len(entries), PARTIAL_KEYS_PER_MESSAGE)
            ] or [[]]
            for index, chunk in enumerate(chunks):
                payload: dict[str, Any] = {"v": chunk}
                if produced_ms[0]:
                    payload["p"], payload["q"] = produced_ms
                if index == len(chunks) - 1:
                    payload["t"] = times
                futures.append(await send(partition, payload))
        return futures

    async def hold(self, source_partitions: set[int] | None) -> None:
        """While the source side waits on the registry: keep these source partitions (None:
        every active one) active in every user partition's join watermark."""
        held: Any = "*" if source_partitions is None else [
            self.source_id(p) for p in sorted(source_partitions)
        ]  # fmt: skip
        for partition in range(self.join.partitions):
            await self.join.send(partition, {"h": held})


class UserJoin:
    """The ``users`` table and the repartition topic's batch agent (stages 2 and 3 of the
    module docstring). ``downstream`` maps a delta kind (``"ab"``, ``"ctr"``) to the windowed
    table its deltas feed."""

    def __init__(
        self,
        app: Any,
        settings: Settings,
        joined_topics: Sequence[str],
        downstream: Mapping[str, WindowedTable],
    ) -> None:
        self.app = app
        self.partitions = settings.topic_partitions
        self.idle_advance_seconds = settings.idle_advance_seconds
        # Kept behind a user's newest event of the kind that needs it (models/users.py): two
        # windows and graces, for responses the attribution time on top.
        self.params = JoinParams(
            attribution_ms=settings.ctr_attribution_ms,
            horizon_ms=2 * (settings.window_ms + settings.grace_ms),
        )
        self.downstream = dict(downstream)
        self.table = json_table(
            app, USERS_TABLE, self.partitions,
            "Per-user join state (A/B assignments and conversions, recent recommendation"
            " responses and clicks): restricted, never served by the web views.",
        )  # fmt: skip
        #: the repartition topic (its batch agent is :meth:`on_events`)
        self.source = internal_topic(app, repartition_topic_name(settings.app_id), self.partitions)
        self.topic = self.source.get_topic_name()
        #: source id (``topic:partition``) -> its index in the join's watermark clocks
        self._source_index = {
            f"{topic}:{p}": i
            for i, (topic, p) in enumerate(
                (t, p) for t in sorted(joined_topics) for p in range(self.partitions)
            )
        }
        self._clocks: dict[int, PartitionClock] = {}
        self._zones = ReplayZones(app)
        self._lock = asyncio.Lock()
        #: partition -> user -> (its state not yet in the table, the batch version that has it)
        self._unwritten: dict[int, dict[str, tuple[dict[str, Any], int]]] = {}
        #: partition -> the task writing its latest batch's states
        self._writers: dict[int, asyncio.Task[None]] = {}
        self._version = 0
        self._unwritten_generation: int | None = None
        self._replayed = metrics.REPLAYED_EVENTS.labels(table=USERS_TABLE)
        #: LOCAL_MERGE: a message this worker sent to a partition it owns is applied once the
        #: broker has it (:meth:`_apply_sent`), not when the consumer reads it back
        self.apply_own = settings.merge_locally
        #: partition -> the highest repartition offset applied in this generation (either way)
        self._applied_upto: dict[int, int] = {}
        #: partition -> this worker's messages to it not yet delivered: (delivery, payload,
        #: generation), in sending order; and the task applying them as they are delivered
        self._sent: dict[int, deque[tuple[Any, dict[str, Any], int | None]]] = {}
        #: partition -> this worker's delivered messages not yet applied (waiting their
        #: turn), in offset order (one producer: a partition's acks come in sending order)
        self._acked: dict[int, deque[_SentRecord]] = {}
        self._appliers: dict[int, asyncio.Future[None]] = {}
        self._applier_error: BaseException | None = None

    def feed(self, topic: str, extract: Extractor) -> JoinFeed:
        return JoinFeed(self, topic, extract)

    def clock(self, partition: int, now: float) -> PartitionClock:
        clock = self._clocks.get(partition)
        if clock is None:
            clock = PartitionClock(len(self._source_index), self.idle_advance_seconds, now)
            self._clocks[partition] = clock
        return clock

    def partition_of(self, user: str) -> int:
        return key_partition(serialized_key(user), self.partitions)

    async def send(self, partition: int, payload: dict[str, Any]) -> Any:
        """Send one message to the repartition topic's ``partition``; returns its delivery
        future. When this worker owns the partition, the message is also applied here as soon
        as the broker has it, if every earlier message of the partition has been applied
        (:meth:`_apply_sent`); the consumer then skips it. Why: reading it back costs a fetch
        cycle or two (the join's tables were one broker round trip behind the others), and
        applying in the partition's offset order keeps the crash argument (module docstring)
        exactly as it is: the same records, in the same order, against the same states."""
        value = json.dumps(payload).encode()
        future = await self.app.producer.send(self.topic, None, value, partition, None, None)
        if self.apply_own and partition in owned_partitions(self.app, self.topic):
            self._sent.setdefault(partition, deque()).append(
                (future, payload, self.app.consumer_generation_id)
            )
            applier = self._appliers.get(partition)
            if applier is None or applier.done():
                self._appliers[partition] = asyncio.ensure_future(self._apply_sent(partition))
        return future

    async def _apply_sent(self, partition: int) -> None:
        """As this worker's messages to ``partition`` are delivered (oldest first), apply
        those that come next in the partition (:meth:`_apply_acked`). Its errors are raised
        by the repartition topic's next batch."""
        sent = self._sent[partition]
        try:
            while sent:
                await asyncio.gather(sent[0][0], return_exceptions=True)
                generation = sent[0][2]
                acked = self._acked.setdefault(partition, deque())
                while sent and sent[0][0].done() and sent[0][2] == generation:
                    future, payload, _ = sent.popleft()
                    if future.cancelled() or future.exception() is not None:
                        continue  # the source batch's ack raises the failed send
                    if generation == self.app.consumer_generation_id:
                        acked.append(_SentRecord(future.result().offset, payload, generation))
                async with self._lock:
                    await self._apply_acked(partition, generation)
        except BaseException as exc:
            self._applier_error = exc
            raise

    async def _apply_acked(self, partition: int, generation: int | None) -> None:
        """Under the lock: apply the delivered messages of this worker that come next in
        ``partition`` (offset ``applied + 1`` on), as one batch. Those behind another
        worker's messages wait until the consumer has applied those; those the consumer has
        applied are dropped."""
        acked = self._acked.get(partition)
        upto = self._applied_upto.get(partition)
        if not acked or upto is None:
            return
        if (
            generation != self.app.consumer_generation_id
            or generation != self._unwritten_generation
            or partition not in owned_partitions(self.app, self.topic)
        ):
            acked.clear()  # the consumer applies them, in their turn
            return
        while acked and acked[0].offset <= upto:
            acked.popleft()
        records: list[tuple[int, dict[str, Any]]] = []
        while acked and acked[0].offset == upto + 1 + len(records):
            record = acked.popleft()
            records.append((record.offset, record.payload))
        if not records:
            return
        await self._handle(partition, records, generation, replay=False)
        self._applied_upto[partition] = records[-1][0]
        metrics.JOIN_APPLIED_WHEN_SENT.inc(len(records))

    async def on_events(self, batches: Sequence[SourceBatch]) -> Awaitable[Any]:
        """The repartition topic's batch agent: apply and ship the deltas now; the states are
        written in the background once the deltas are with the broker (:meth:`_write_states`).
        Returns what resolves once they are written: the batches are acked then, not before.
        Records this worker has already applied when they were acked (:meth:`send`) are
        skipped; their acks wait for the states' writes all the same.

        Why in the background: the batch handlers run one after another in the consumer's
        fetch loop, and waiting here for the broker (the deltas' delivery, a producer flush)
        would hold up every topic's next fetch by that round trip. Meanwhile the next batch
        reads the states not yet written from :attr:`_unwritten`."""
        async with self._lock:
            if self._applier_error is not None:
                raise self._applier_error
            generation = self.app.consumer_generation_id
            if generation != self._unwritten_generation:
                # A new assignment: a partition may have been another worker's meanwhile, so
                # nothing read from before may stand in for the table. Let the writes land.
                await asyncio.gather(*self._writers.values(), return_exceptions=True)
                self._writers.clear()
                self._unwritten.clear()
                self._applied_upto.clear()
                for partition, acked in self._acked.items():  # sent before it: read back
                    self._acked[partition] = deque(r for r in acked if r.generation == generation)
                self._unwritten_generation = generation
            writes: list[Any] = []
            for batch in batches:
                partition = batch.partition
                upto = self._applied_upto.get(partition)
                records = batch.records
                if upto is not None:
                    records = [r for r in records if r.offset > upto]
                if records:
                    replay = self._zones.covers(batch)
                    decoded = [(r.offset, json.loads(r.value)) for r in records]
                    writes.append(await self._handle(partition, decoded, generation, replay))
                    self._applied_upto[partition] = records[-1].offset
                    # this worker's messages delivered since: apply them now, not next fetch
                    await self._apply_acked(partition, generation)
                elif (writer := self._writers.get(partition)) is not None:
                    writes.append(writer)  # applied when acked: its states' write
        return asyncio.gather(*writes)

    async def _handle(
        self,
        partition: int,
        records: Sequence[tuple[int, dict[str, Any]]],
        generation: int | None,
        replay: bool,
    ) -> asyncio.Task[None]:
        """Apply one partition's repartition messages, ``(offset, payload)`` in offset order;
        returns the task writing their states."""
        now = time.monotonic()
        clock = self.clock(partition, now)
        unwritten = self._unwritten.setdefault(partition, {})
        states: dict[str, dict[str, Any]] = {}
        deltas: dict[str, list[dict[str, Any]]] = {kind: [] for kind in self.downstream}
        offsets: dict[str, list[tuple[str, int]]] = {kind: [] for kind in self.downstream}
        source = str(partition)
        applied: Counter[str] = Counter()
        replayed: Counter[str] = Counter()
        reassignments = 0
        produced: list[tuple[int, int]] = []
        table, params = self.table, self.params
        with table_context(self.app, self.topic, partition):
            for record_offset, payload in records:
                for user, source_id, offset, event in payload.get("v", ()):
                    state = states.get(user)
                    if state is None:
                        pending = unwritten.get(user)
                        state = pending[0] if pending is not None else table.get(user)
                        state = state or {**empty_state(), "o": {}}
                        states[user] = state
                    topic = source_id.rsplit(":", 1)[0]
                    if offset is not None:
                        marks = state["o"]
                        if offset <= marks.get(source_id, -1):
                            replayed[topic] += 1
                            continue
                        marks[source_id] = offset
                    result = apply(state, event, params)
                    applied[topic] += 1
                    reassignments += result.reassignment
                    for kind, delta in result.deltas:
                        deltas[kind].append(delta)
                        offsets[kind].append((source, record_offset))
                self._observe(clock, payload, now)
                if payload.get("p"):
                    produced.append((payload["p"], payload["q"]))
        watermark = clock.watermark(now)
        ranges: Ranges = {source: (records[0][0], records[-1][0])}
        produced_ms = (
            (min(p for p, _ in produced), max(q for _, q in produced)) if produced else (0, 0)
        )
        futures: list[Any] = []
        for kind, windowed in self.downstream.items():
            futures.extend(await windowed.ship(
                deltas[kind], {partition: watermark}, produced_ms, ranges,
                lambda kind=kind: offsets[kind], replay, generation,
            ))  # fmt: skip
        # What is written is the states as of this batch (the next batch changes them in
        # place): a snapshot, and a version per user so the newest stays readable.
        self._version += 1
        version = self._version
        snapshots = {user: json.loads(json.dumps(state)) for user, state in states.items()}
        for user, state in states.items():
            unwritten[user] = (state, version)
        previous = self._writers.get(partition)
        task = asyncio.ensure_future(
            self._write_states(partition, snapshots, version, futures, previous)
        )
        self._writers[partition] = task
        for topic, count in applied.items():
            metrics.JOIN_EVENTS.labels(topic=topic, replayed="false").inc(count)
        for topic, count in replayed.items():
            metrics.JOIN_EVENTS.labels(topic=topic, replayed="true").inc(count)
            self._replayed.inc(count)
        if reassignments:
            metrics.AB_REASSIGNMENTS.inc(reassignments)
        return task

    async def _write_states(
        self,
        partition: int,
        snapshots: dict[str, dict[str, Any]],
        version: int,
        deliveries: list[Any],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Write one batch's user states once its deltas are with the broker (and the
        in-place merges' changelog records flushed): the module docstring's crash argument.
        In batch order per partition (``previous`` first)."""
        if previous is not None:
            await previous
        await asyncio.gather(*deliveries)
        await flush_producer(self.app)
        unwritten = self._unwritten.get(partition, {})
        with table_context(self.app, self.topic, partition):
            for user, state in snapshots.items():
                self.table[user] = state
                pending = unwritten.get(user)
                if pending is not None and pending[1] == version:
                    del unwritten[user]  # no later batch changed it: the table has it
        await wait_for_changelog_room(self.app)

    def _observe(self, clock: PartitionClock, payload: dict[str, Any], now: float) -> None:
        """A repartition message's source positions and registry holds, into the clock."""
        index = self._source_index
        for source_id, event_ms in payload.get("t", {}).items():
            if (i := index.get(source_id)) is not None:
                clock.observe(i, event_ms, now)
        hold = payload.get("h")
        if hold == "*":
            clock.touch_active(now)
        elif hold:
            for source_id in hold:
                if (i := index.get(source_id)) is not None:
                    clock.touch(i, now)

    async def erase(self, user: str) -> dict[str, Any] | None:
        """GDPR erasure: remove ``user``'s state from the ``users`` table (a changelog
        tombstone, so it stays removed after a restart); what was removed, or None when the
        user had no state here. Call on the worker owning the user's partition."""
        partition = self.partition_of(user)
        async with self._lock:
            writer = self._writers.get(partition)
            if writer is not None:
                await writer  # every applied batch's states are in the table
            with table_context(self.app, self.topic, partition):
                state = self.table.get(user)
                if state is None:
                    metrics.ERASURES.labels(outcome="not_found").inc()
                    return None
                del self.table[user]
            await self.app.producer.flush()  # the tombstone is with the broker when we answer
        metrics.ERASURES.labels(outcome="erased").inc()
        return {
            "table": USERS_TABLE,
            "partition": partition,
            "assignments": len(state.get("a", {})),
            "conversions": len(state.get("g", ())) + sum(map(len, state.get("x", {}).values())),
            "responses": len(state.get("r", ())),
            "clicks": len(state.get("c", ())),
        }
