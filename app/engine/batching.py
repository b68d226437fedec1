"""Batch agents: Faust's consumer hands whole fetched batches to a handler, once per fetch.

Why: Faust's per-event path (conductor -> channel queue -> stream iteration -> ack) costs about
200 us per message here (lessons.md), far more than decoding and aggregating an event. A
batch agent keeps Faust's consumer group, rebalancing, offset commits, tables, changelogs and
recovery, but replaces the per-event delivery for its topics: :class:`BatchingConsumer`
overrides ``Consumer._drain_messages`` so records of batch topics go, as the lists the fetcher
returned (one :class:`SourceBatch` per partition), to one ``async handler(batches)`` call per
topic per fetch; the batches' offsets are acked in bulk into the same bookkeeping Faust's
commit uses once what the handler produced is acknowledged by the broker. Records of other
topics (ordinary Faust agents, changelogs) still take Faust's per-message path unchanged.

Table writes inside a handler need a "current event" (Faust picks the changelog partition and
the RocksDB partition from it): :func:`table_context` provides one for a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiokafka
import faust
from faust.exceptions import ImproperlyConfigured
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

from app.engine import metrics
from app.engine.offsets import true_end_offsets
from app.settings import Settings, load_settings

__all__ = [
    "BatchHandler",
    "BatchingConsumer",
    "BatchingTransport",
    "SourceBatch",
    "StreamPulseApp",
    "flush_producer",
    "owned_partitions",
    "table_context",
    "wait_for_changelog_room",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """The records one fetch returned for one topic-partition, oldest first."""

    tp: TP
    records: Sequence[Any]  # aiokafka ConsumerRecord: .offset .key .value .timestamp .headers
    read_offset: int | None = None  # the offset read before this batch (gap detection)

    @property
    def topic(self) -> str:
        return self.tp.topic

    @property
    def partition(self) -> int:
        return self.tp.partition


#: A batch agent: called once per fetch with that fetch's batches of its topic, one per
#: partition (one call, so that per-fetch work such as shipping partials and watermarks is done
#: once, not once per partition). It may return an awaitable that completes when everything it
#: produced is acknowledged by the broker: the batches' offsets are acked only then, but the
#: next fetch does not wait for it. Returning None means "acknowledged already".
BatchHandler = Callable[[Sequence[SourceBatch]], Awaitable[Awaitable[Any] | None]]

#: Batches whose deliveries may be outstanding at once (bounds memory and redelivery on crash).
#: A fetch has a batch per topic (nine on the full mix, 20 fetches a second), and a batch's
#: table writes reach the changelog up to 100 ms later (``app/engine/states.py``): 8 made the
#: fetch loop wait on acks (measured: p50 230 ms instead of 60 on the live mix).
MAX_BATCHES_IN_FLIGHT = 64


class BatchingConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the app's fetch wait (``FETCH_MAX_WAIT_MS``; Faust
    hard-codes 1.5 s, which the embedded Tansu adds to every idle hop) and changelog end
    offsets read from the data (:mod:`app.engine.offsets`)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read when it starts
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """The end offsets table recovery reads up to (its only caller): the broker's answer,
        raised to the last record really held (Tansu reports the last batch's base + 1)."""
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported  # the last stable offset: the broker's transactions decide it
        return await true_end_offsets(self._create_probe_consumer, reported)

    def _create_probe_consumer(self) -> aiokafka.AIOKafkaConsumer:
        """A consumer without a group, for :func:`true_end_offsets` (the worker's own consumer
        must keep its positions)."""
        conf = self.app.conf
        transport = self.transport
        return aiokafka.AIOKafkaConsumer(
            client_id=f"{conf.broker_client_id}-end-offsets",
            bootstrap_servers=aiokafka_driver.server_list(transport.url, transport.default_port),
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=self.app.fetch_max_wait_ms,
            **aiokafka_driver.credentials_to_aiokafka_auth(
                conf.broker_credentials, conf.ssl_context
            ),
        )


class BatchingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, delivering batch topics' records a batch at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: acks waiting for their batch's deliveries, oldest first
        self._inflight_acks: deque[asyncio.Future[None]] = deque()

    def _new_consumer_thread(self) -> BatchingConsumerThread:
        return BatchingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _batch_handlers(self) -> dict[str, BatchHandler]:
        return cast("StreamPulseApp", self.app).batch_handlers

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, then a replay's start (REPLAY_FROM_MS) for
        the replayed partitions this group has not committed yet (before any batch is read)."""
        await super().perform_seek()
        await cast("StreamPulseApp", self.app).seek_replay_start(self)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs a broker
        """Faust's fetch loop, with whole batches for batch topics (see module docstring)."""
        handlers = self._batch_handlers()
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        app = self.app
        monitor = app.monitor
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, active_partitions = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                generation = app.consumer_generation_id
                by_topic: dict[str, list[SourceBatch]] = {}
                for tp, tp_records in records.items():
                    if not self.flow_active or app.consumer_generation_id != generation:
                        by_topic.clear()
                        await self._wait_inflight()
                        break  # rebalancing: Faust re-seeks to the committed offsets
                    if not (
                        active_partitions is None
                        or tp in active_partitions
                        or tp in self._buffered_partitions
                    ):
                        continue
                    monitor.track_tp_end_offset(tp, self.highwater(tp))
                    r_offset = get_read_offset(tp)
                    if r_offset is not None:
                        tp_records = [r for r in tp_records if r.offset >= r_offset]
                        if not tp_records:
                            continue
                    if tp.topic in handlers:
                        by_topic.setdefault(tp.topic, []).append(
                            SourceBatch(tp, tp_records, r_offset)
                        )
                    else:
                        await self._deliver_one_by_one(tp, tp_records, callback, r_offset)
                    set_read_offset(tp, tp_records[-1].offset)
                for topic, batches in by_topic.items():
                    if not self.flow_active or app.consumer_generation_id != generation:
                        # A rebalance began while an earlier handler awaited: these records
                        # are not acked, Faust re-seeks to the committed offsets.
                        await self._wait_inflight()
                        break
                    delivered = await handlers[topic](batches)
                    if acks_enabled_for(topic):
                        await self._ack_when_delivered(delivered, batches)
                    for batch in batches:
                        monitor.messages_received_total += len(batch.records)
                        monitor.messages_received_by_topic[topic] += len(batch.records)
                        monitor.tp_read_offsets[batch.tp] = batch.records[-1].offset
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Batch drain raised: %r", exc)
            raise

    async def _ack_when_delivered(
        self, delivered: Awaitable[Any] | None, batches: Sequence[SourceBatch]
    ) -> None:
        """Ack the batches once what their handler produced is acknowledged by the broker,
        without holding up the next fetch (at most ``MAX_BATCHES_IN_FLIGHT`` wait at once)."""
        if delivered is None:
            for batch in batches:
                await self._ack_batch(batch.tp, batch.records, batch.read_offset)
            return

        async def ack_after_delivery() -> None:
            await delivered
            for batch in batches:
                await self._ack_batch(batch.tp, batch.records, batch.read_offset)

        inflight = self._inflight_acks
        inflight.append(asyncio.ensure_future(ack_after_delivery()))
        while inflight and (inflight[0].done() or len(inflight) > MAX_BATCHES_IN_FLIGHT):
            await inflight.popleft()  # re-raises a failed delivery: the worker crashes

    async def _wait_inflight(self) -> None:
        """Before a rebalance takes effect: every handled batch delivered and acked."""
        inflight = self._inflight_acks
        while inflight:
            await inflight.popleft()

    async def _deliver_one_by_one(
        self, tp: TP, records: Sequence[Any], callback: Any, r_offset: int | None
    ) -> None:
        """Faust's own per-message delivery, for topics without a batch handler."""
        for record in records:
            offset = record.offset
            if r_offset and offset - r_offset > 1 and self.app.topics.acks_enabled_for(tp.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())
            r_offset = offset

    async def _ack_batch(self, tp: TP, records: Sequence[Any], r_offset: int | None) -> None:
        """Mark a handled batch's offsets as acked, as ``Consumer.ack`` does one at a time."""
        committed = self._committed_offset[tp]
        acked_index = self._acked_index[tp]
        offsets = [
            r.offset
            for r in records
            if (committed is None or r.offset >= committed) and r.offset not in acked_index
        ]
        previous = r_offset
        for offset in offsets:
            if previous is not None and offset - previous > 1:
                await self._add_gap(tp, previous + 1, offset - 1)
            previous = offset
        acked_index.update(offsets)
        self._acked[tp].extend(offsets)
        self._n_acked += len(offsets)


class BatchingTransport(aiokafka_driver.Transport):
    """The aiokafka transport with :class:`BatchingConsumer`."""

    Consumer = BatchingConsumer


class StreamPulseApp(faust.App):
    """A ``faust.App`` that also runs batch agents (``@app.batch_agent(topic)``)."""

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int = Settings.fetch_max_wait_ms, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        #: Longest a fetch of the worker's consumer waits for new data (FETCH_MAX_WAIT_MS).
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # `faust worker --web-port` replaces canonical_url with http://<hostname>:<port>; a
        # configured one (how other workers reach this one for table routing) must win.
        self._configured_canonical_url = kwargs.get("canonical_url")
        self.batch_handlers: dict[str, BatchHandler] = {}
        self._batch_topics: list[faust.TopicT] = []
        #: The consumer generation whose table recovery has completed (``_measure_recovery``).
        self.recovered_generation: int | None = None
        #: Set by :meth:`configure_sources` under REPLAY_FROM_MS (app/tools/replay.py).
        self.replay_from_ms: int | None = None
        self.replay_topics: frozenset[str] = frozenset()

    def batch_agent(self, topic: faust.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register ``handler`` for every batch fetched from ``topic``'s partitions."""

        def register(handler: BatchHandler) -> BatchHandler:
            for name in topic.topics:
                if name in self.batch_handlers:
                    raise ValueError(f"topic {name} already has a batch agent")
                self.batch_handlers[name] = handler
            self._batch_topics.append(topic)
            return handler

        return register

    def _new_transport(self) -> Any:
        if self.conf.broker_consumer[0].scheme not in ("kafka", "aiokafka"):
            return super()._new_transport()
        return BatchingTransport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        if self._configured_canonical_url:
            self.conf.canonical_url = self._configured_canonical_url
        await super().on_first_start()

    async def on_start(self) -> None:
        await super().on_start()
        _measure_recovery(self.tables.recovery)
        self.configure_sources()
        # Subscribing through the conductor puts the topics in the consumer group, declares the
        # internal ones and enables acks for them, exactly as an ordinary agent's topic.
        for topic in self._batch_topics:
            self.topics.add(topic)

    # -- which source topics, from when (SOURCE_TOPICS, REPLAY_FROM_MS: app/tools/replay.py) ------

    def configure_sources(self, settings: Settings | None = None) -> None:
        """Keep only the source batch agents SOURCE_TOPICS names; under REPLAY_FROM_MS, hand
        their handlers only the records whose Kafka record timestamp is >= that time.

        Source topics are the batch topics that are not internal (partials topics are). A
        SOURCE_TOPICS name without a batch agent fails the worker's start. Skipped records are
        still acked and committed with their batch. The skip is what makes a timestamp replay
        exact on every broker: Tansu answers ListOffsets by timestamp with the partition's first
        offset whatever the time (lessons.md), so :meth:`seek_replay_start` only saves reading
        where the broker implements it (Apache Kafka), and on a broker that does, records after
        the sought offset with an earlier (out-of-order) timestamp are skipped the same way.
        """
        settings = settings or load_settings()
        sources = {name for t in self._batch_topics if not t.internal for name in t.topics}
        if settings.source_topics:
            wanted = set(settings.source_topics)
            if wanted - sources:
                raise ImproperlyConfigured(
                    f"SOURCE_TOPICS names {sorted(wanted - sources)}, which no batch agent"
                    f" consumes; topics with agents: {sorted(sources)}"
                )
            dropped = sources - wanted
            self._batch_topics = [t for t in self._batch_topics if not dropped & set(t.topics)]
            for name in dropped:
                del self.batch_handlers[name]
            sources = wanted
        if settings.replay_from_ms is None or self.replay_from_ms is not None:
            return
        self.replay_from_ms = from_ms = settings.replay_from_ms
        self.replay_topics = frozenset(sources)
        for name in sources:
            self.batch_handlers[name] = _skip_before(self.batch_handlers[name], from_ms)
        log.info("replay: %s from record timestamp %d ms", sorted(sources), from_ms)

    async def seek_replay_start(self, consumer: BatchingConsumer) -> None:
        """Move each assigned replayed partition without a committed offset in this group to
        the first offset whose record timestamp is >= REPLAY_FROM_MS (Kafka's ListOffsets by
        timestamp; past the last record: the end). No replay: nothing."""
        if self.replay_from_ms is None:
            return
        tps = [
            tp for tp in consumer.assignment()
            if tp.topic in self.replay_topics and consumer._committed_offset.get(tp) is None
        ]  # fmt: skip
        if not tps:
            return
        thread = consumer._thread
        client = thread._ensure_consumer()
        try:
            found = await thread.call_thread(
                client.offsets_for_times, {tp: self.replay_from_ms for tp in tps}
            )
            past_end = [tp for tp in tps if found.get(tp) is None]
            ends = await thread.call_thread(client.end_offsets, past_end) if past_end else {}
        except Exception as exc:  # the skip in configure_sources keeps the replay exact
            log.warning("replay: no offsets by timestamp (%r); reading from the start", exc)
            return
        for tp in tps:
            hit = found.get(tp)
            offset = hit.offset if hit is not None else ends[tp]
            if offset > 0:
                await consumer.seek(tp, offset)
                log.info("replay: %s[%d] starts at offset %d", tp.topic, tp.partition, offset)


def _measure_recovery(recovery: Any) -> None:
    """Log and export (``streampulse_recovery_seconds``) how long each table recovery that had
    something to read took.

    Faust's Recovery marks a recovery's start and end in two methods and keeps no duration;
    wrapping them on the instance is the narrowest hook (the Recovery class is Faust's)."""
    started_at: list[float] = []
    set_started, set_ended = recovery._set_recovery_started, recovery._set_recovery_ended

    def started() -> None:
        if not started_at:  # Faust marks one recovery's start twice: keep the first
            started_at.append(time.monotonic())
        set_started()

    def ended() -> None:
        set_ended()
        if not started_at:  # nothing to read, or the second call of the same end
            return
        seconds = time.monotonic() - started_at.pop()
        metrics.RECOVERY_SECONDS.set(seconds)
        metrics.RECOVERIES.inc()
        log.info("table recovery finished in %.2f s", seconds)

    recovery._set_recovery_started, recovery._set_recovery_ended = started, ended
    on_completed = recovery.on_recovery_completed
    app = recovery.app

    async def completed(generation_id: int = 0) -> None:
        await on_completed(generation_id)
        # What WindowedTable waits for before it indexes its open windows (all restored).
        app.recovered_generation = generation_id

    recovery.on_recovery_completed = completed


def _skip_before(handler: BatchHandler, from_ms: int) -> BatchHandler:
    """``handler`` for the records of each batch with a record timestamp >= ``from_ms`` (the
    skipped records are still acked: the drain loop acks the batches it fetched)."""

    async def handle(batches: Sequence[SourceBatch]) -> Awaitable[Any] | None:
        kept: list[SourceBatch] = []
        for batch in batches:
            records = [
                r for r in batch.records if r.timestamp is not None and r.timestamp >= from_ms
            ]
            if len(records) == len(batch.records):
                kept.append(batch)
            elif records:
                kept.append(SourceBatch(batch.tp, records, batch.read_offset))
        if not kept:
            return None  # nothing produced: the skipped batches are acked at once
        return await handler(kept)

    return handle


#: Table changelog records Faust's producer buffer may hold before a table writer waits.
MAX_PENDING_CHANGELOG = 2000


async def wait_for_changelog_room(app: faust.App, limit: int = MAX_PENDING_CHANGELOG) -> None:
    """Wait until Faust's producer buffer holds at most ``limit`` messages.

    Why: a table write queues its changelog record in that buffer without waiting, and one
    background task sends the records one by one. Faust's own stream loop waits for the buffer
    to ebb; a batch handler must do it itself, or a batch touching tens of thousands of keys
    (50,000 titles) piles up changelog records without bound (measured: 61,000 pending and
    a peak RSS of 1,450 MB on the scale run), and the next commit's flush stalls the loop for
    seconds.
    """
    buffer = app.producer.buffer
    while buffer.size > limit:
        await asyncio.sleep(0.002)  # the buffer's sender task runs meanwhile


async def flush_producer(app: faust.App) -> None:
    """Every record sent so far (table changelogs included) acknowledged by the broker.

    Faust's ``Producer.flush`` does the same, but waits for its changelog buffer with one
    ``asyncio.wait_for`` (a task and a timer) per message sent meanwhile: measured, 9% of the
    worker's CPU on the live mix. The buffer's own task sends every pending record in one go
    once it runs, so yielding until the buffer is empty is enough; records keep their order
    (only that task sends them).
    """
    producer = app.producer
    buffer = producer.buffer
    while buffer.size:
        await asyncio.sleep(0.001)
    await producer.flush()  # the buffer is empty: aiokafka's flush (the broker's acks) only


def owned_partitions(app: faust.App, topic: str) -> frozenset[int]:
    """Partitions of ``topic`` actively assigned to this worker now.

    Why not ``assignor.assigned_actives()``: it builds a set of every assigned partition per
    call, and the table side asks once per table per fetch (measured: 7% of the worker's CPU
    on the live mix). Faust replaces its assignment object at each rebalance
    (``PartitionAssignor.on_assignment``), so the answer is cached per assignment object.
    """
    assignor = app.assignor
    assignment = getattr(assignor, "_assignment", None)
    if assignment is None:  # not Faust's PartitionAssignor: ask it
        return frozenset(tp.partition for tp in assignor.assigned_actives() if tp.topic == topic)
    cached: tuple[Any, dict[str, frozenset[int]]] | None = getattr(
        assignor, "_streampulse_owned", None
    )
    if cached is None or cached[0] is not assignment:
        cached = (assignment, {})
        assignor._streampulse_owned = cached
    per_topic = cached[1]
    found = per_topic.get(topic)
    if found is None:
        found = per_topic[topic] = frozenset(assignment.actives.get(topic, ()))
    return found


@contextlib.contextmanager
def table_context(app: faust.App, topic: str, partition: int) -> Iterator[None]:
    """Let table writes outside stream iteration go to ``partition`` of their changelog.

    Faust tables take the changelog partition (and the RocksDB store its partition database)
    from the current event's message; a batch handler has no per-event Event, so this sets
    one that names the partition the batch came from (co-partitioned with the table).
    """
    message = Message(
        topic=topic, partition=partition, offset=-1, timestamp=0.0, timestamp_type=0,
        headers=None, key=None, value=None, checksum=None, tp=TP(topic, partition),
    )  # fmt: skip
    event = app.create_event(None, None, {}, message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
