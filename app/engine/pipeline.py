"""Source side of every domain: decode, validate, dead-letter or aggregate, per batch.

A domain's source batch agent calls :meth:`SourcePipeline.handle` with the records one fetch
returned for its topic, one batch per partition. Nothing here raises on bad input: undecodable
or invalid records go to the DLQ with their reason (a rule that raises too:
``validation.rule_error``), the rest are shipped as partial aggregates to the domain's tables.
What ``handle`` returns resolves once the broker has acknowledged both, so Faust may then
commit the batch's offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from app.catalog import DERIVED_TOPICS, SOURCE_TOPICS
from app.engine import metrics
from app.engine.batching import SourceBatch
from app.engine.codec import Decoded, RegistryCodec
from app.engine.dlq import DeadLetters
from app.engine.domain import Validator
from app.engine.windowing import Ranges
from app.validation import RULE_ERROR, UNKNOWN_EVENT_TYPE, Violation

__all__ = ["ReplayZones", "Runtime", "Sink", "SourcePipeline", "produced_range"]

log = logging.getLogger(__name__)


def produced_range(batches: Sequence[SourceBatch]) -> tuple[int, int]:
    """Oldest and newest Kafka record timestamp (production time, epoch ms) of a fetch, for
    the table-latency measurement; (0, 0) when the records carry none."""
    stamps = [r.timestamp for b in batches for r in b.records if r.timestamp and r.timestamp > 0]
    return (min(stamps), max(stamps)) if stamps else (0, 0)


class Sink(Protocol):
    """Where a pipeline ships its valid events: a windowed table (``WindowedTable``) or the
    per-user join's feed (``app/engine/join.py``, ``JoinFeed``)."""

    async def ship(
        self,
        events: Sequence[dict[str, Any]],
        source_times: dict[int, int],
        produced_ms: tuple[int, int] = (0, 0),
        ranges: Ranges | None = None,
        positions: Callable[[], Sequence[tuple[str, int]]] | None = None,
        replay: bool = False,
        generation: int | None = None,
    ) -> list[Any]: ...

    async def hold(self, source_partitions: set[int] | None) -> None: ...


class ReplayZones:
    """Per partition of one topic, the end offset it had when this worker was (re)assigned
    it: records below it may have been applied by a previous owner or run (README "Crashes
    and restarts"). The fetch response's high watermark, not ListOffsets (short on Tansu:
    app/engine/offsets.py)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        #: partition -> (consumer generation, its end offset when assigned)
        self._ends: dict[int, tuple[int | None, int | None]] = {}

    def end(self, batch: SourceBatch) -> int | None:
        """The zone's end for the batch's partition (None: not known yet)."""
        generation = self._app.consumer_generation_id
        known = self._ends.get(batch.partition)
        if known is not None and known[0] == generation and known[1] is not None:
            return known[1]
        try:
            end = self._app.consumer.highwater(batch.tp)
        except Exception:
            end = None
        self._ends[batch.partition] = (generation, end)
        return end

    def covers(self, batch: SourceBatch) -> bool:
        """Whether some of the batch's records may have been applied already (an unknown
        end counts as yes)."""
        end = self.end(batch)
        return end is None or batch.records[0].offset < end


class Runtime:
    """What every pipeline shares: the codec and the producer; started once, lazily."""

    def __init__(self, app: Any, codec: RegistryCodec) -> None:
        self.app = app
        self.codec = codec
        self.registry_ready = asyncio.Event()
        self._start_lock: asyncio.Lock | None = None
        #: every windowed table and join feed of the app (a stalled source side holds all their
        #: watermarks)
        self.tables: list[Sink] = []

    async def ensure_started(self) -> None:
        """Set reader schemas, warm the schema cache and register the derived schemas before
        the first batch is decoded."""
        if self.registry_ready.is_set():
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.registry_ready.is_set():
                return
            for spec in SOURCE_TOPICS.values():
                self.codec.set_reader_schema(spec.name, spec.schema())
            await self.codec.warm(spec.subject for spec in SOURCE_TOPICS.values())
            # The derived schemas' ids too: publishing then never waits on the registry.
            for derived in DERIVED_TOPICS.values():
                await self.codec.schema_id_for(derived.subject, derived.schema())
            self.registry_ready.set()
            log.info("schema cache warmed from %s", self.codec.registry_url)


class SourcePipeline:
    """decode -> validate -> (DLQ | partial aggregates) for one source topic."""

    def __init__(
        self,
        runtime: Runtime,
        topic: str,
        validate: Validator,
        tables: Sequence[Sink],
        time_field: str,
    ) -> None:
        self.runtime = runtime
        self.topic = topic
        self.validate = validate
        self.tables = tables
        self.time_field = time_field
        self._consumed = metrics.EVENTS_CONSUMED.labels(topic=topic)
        self._aggregated = metrics.EVENTS_AGGREGATED.labels(topic=topic)
        self._unknown = metrics.UNKNOWN_EVENT_TYPES.labels(topic=topic)
        self._zones: ReplayZones | None = None  # made on the first batch

    def split(
        self,
        batch: SourceBatch,
        decoded: Sequence[Any],
        dead_letters: DeadLetters,
        dropped: list[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Valid events of the batch; everything else is queued as a dead letter (and its
        index in the batch appended to ``dropped``)."""
        valid: list[dict[str, Any]] = []
        validate = self.validate
        topic, partition = batch.topic, batch.partition
        traced = False  # one traceback per batch: a broken rule may break on every record
        if dropped is None:
            dropped = []
        for index, (record, result) in enumerate(zip(batch.records, decoded, strict=True)):
            if type(result) is not Decoded:
                dead_letters.add(topic, partition, record, result.reason, result.message)
                dropped.append(index)
                continue
            try:
                violation = validate(result.value)
            except Exception as exc:  # a rule that cannot read the record: still not a crash
                log.error("validating %s partition=%d offset=%d raised %r", topic, partition,
                          record.offset, exc, exc_info=not traced)  # fmt: skip
                traced = True
                violation = Violation(RULE_ERROR, f"a data-quality rule raised {exc!r}")
            if violation is None:
                valid.append(result.value)
                continue
            if violation.reason == UNKNOWN_EVENT_TYPE:
                self._unknown.inc()
            dead_letters.add(topic, partition, record, violation.reason, violation.message)
            dropped.append(index)
        return valid

    async def handle(self, batches: Sequence[SourceBatch]) -> Awaitable[Any]:
        """Process one fetch's batches of this topic; returns what resolves once the broker has
        every message it sent (partials and dead letters), the condition for committing them."""
        await self.runtime.ensure_started()
        generation = self.runtime.app.consumer_generation_id  # the events are read in this one
        dead_letters = DeadLetters(self.runtime.app.producer)
        decode_batch = self.runtime.codec.decode_batch
        time_field = self.time_field
        valid: list[dict[str, Any]] = []
        source_times: dict[int, int] = {}  # source partition -> its highest event time here
        ranges: Ranges = {}  # source partition -> first and last offset of its records here
        kept: list[tuple[SourceBatch, list[int]]] = []  # batches with valid events, dropped
        replay = False
        held = {batch.partition for batch in batches}

        async def hold() -> None:
            """While the registry is down: these source partitions are alive, only waiting,
            so no table partition's watermark may pass them (nothing becomes late); nor those
            of the other topics, whose fetched records wait behind this batch."""
            for table in self.runtime.tables:
                await table.hold(held if table in self.tables else None)

        for batch in batches:
            records = batch.records
            self._consumed.inc(len(records))
            decoded = await decode_batch(self.topic, [r.value for r in records], hold)
            dropped: list[int] = []
            batch_valid = self.split(batch, decoded, dead_letters, dropped)
            if batch_valid:
                source_times[batch.partition] = max(event[time_field] for event in batch_valid)
                valid.extend(batch_valid)
                ranges[str(batch.partition)] = (records[0].offset, records[-1].offset)
                kept.append((batch, dropped))
                if self._zones is None:
                    self._zones = ReplayZones(self.runtime.app)
                replay = replay or self._zones.covers(batch)

        def positions() -> list[tuple[str, int]]:
            """Each valid event's source partition and offset (only a replay needs them)."""
            out: list[tuple[str, int]] = []
            for batch, dropped in kept:
                source, skip = str(batch.partition), set(dropped)
                out.extend((source, r.offset) for i, r in enumerate(batch.records) if i not in skip)
            return out

        futures: list[Any] = []
        if valid:
            produced = produced_range(batches)
            for table in self.tables:
                futures.extend(await table.ship(
                    valid, source_times, produced, ranges, positions, replay, generation
                ))  # fmt: skip
            now_s = time.time()
            metrics.observe_many(
                metrics.EVENT_LAG, [now_s - event[time_field] / 1000.0 for event in valid]
            )
        futures.extend(await dead_letters.send())
        self._aggregated.inc(len(valid))
        return asyncio.gather(*futures)
