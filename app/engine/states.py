"""A windowed table's values, read through a bounded cache of the decoded values.

Why: a Faust table read over RocksDB is two lookups (``key in`` then ``[key]``) and a JSON
decode; on the live mix the windowed tables' reads were 10% of the worker's CPU (py-spy,
``bench/README.md``), because every fetch reads back every key it touches. The cache holds
the very objects last written, so it answers exactly what the table holds as long as every
write goes through :meth:`TableStates.put` and nothing else changes the table. Faust's table
recovery does, at a rebalance: the cache is dropped whenever the consumer generation or the
recovered generation changes.

Writes (:class:`ChangelogWriter`) are what a Faust table write is, the same bytes in RocksDB
and on the changelog, without Faust's per-write machinery: Faust encodes each value twice
(database, changelog) and sends each changelog record through its producer buffer as a
``FutureMessage`` with a callback that writes the changelog offset to RocksDB; on the live mix
that was 25% of the worker's CPU, one write per key per fetch. Here a write encodes once, puts
into the partition's database and queues the record; one task per table hands the queue to
the producer (per key the newest write only, within 100 ms), and the changelog offset is
written once per partition per burst. :meth:`ChangelogWriter.delivered` is what the source
side's ack waits for: source offsets are committed only after the writes they caused are
with the broker (the crash argument of ``windowing.py``). Under Kafka transactions
(PROCESSING_GUARANTEE=exactly_once) records must join the source partition's transaction:
Faust's own path is used.

A cached value changed in place after its write is still the state the table has next; the
per-user join's states are snapshots with their own order against the join's deltas (the
crash argument of ``join.py``): they are not read or written through here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from cachetools import LRUCache
from faust.streams import current_event

from app.engine.batching import MAX_PENDING_CHANGELOG, wait_for_changelog_room

__all__ = ["CACHED_KEYS", "ChangelogWriter", "TableStates"]

#: Decoded values kept per table (least recently used out first): every key of the
#: low-cardinality tables, the popular keys of the others, a few MB per table.
CACHED_KEYS = 4096


class TableStates:
    """``get``/``put`` of a Faust table's values, through an LRU cache of decoded values."""

    def __init__(self, app: Any, table: Any, size: int = CACHED_KEYS) -> None:
        self.app = app
        self.table = table
        self._cache: LRUCache[str, Any] = LRUCache(maxsize=size)
        self._stamp: tuple[Any, Any] | None = None
        #: A Faust table's writes (a plain mapping, in tools and unit tests: assignment)
        self.writer = ChangelogWriter(app, table) if hasattr(table, "changelog_topic") else None

    def _current(self) -> LRUCache[str, Any]:
        """The cache, emptied if the table may have changed under it (a rebalance)."""
        app = self.app
        stamp = (getattr(app, "consumer_generation_id", None),
                 getattr(app, "recovered_generation", None))  # fmt: skip
        if stamp != self._stamp:
            self._cache.clear()
            self._stamp = stamp
        return self._cache

    def get(self, key: str) -> Any:
        """The value of ``key`` (None if absent), as the table holds it."""
        cache = self._current()
        value = cache.get(key)
        if value is None:
            value = self.table.get(key)
            if value is not None:
                cache[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        """Write ``value`` (in the current table context) and keep it for the next read."""
        cache = self._current()
        if self.writer is None:
            self.table[key] = value
        else:
            self.writer.write(key, value)
        cache[key] = value

    async def room(self) -> None:
        """Wait while too many changelog records wait to be sent: this table's queue, and
        Faust's producer buffer (``wait_for_changelog_room``)."""
        if self.writer is not None:
            await self.writer.room()
        await wait_for_changelog_room(self.app)

    def delivered(self) -> Awaitable[Any] | None:
        """Completes once every write so far is with the broker (None: nothing to wait for)."""
        return None if self.writer is None else self.writer.delivered()

    def clear(self) -> None:
        self._cache.clear()


#: How long a changelog record waits for later writes of its key (only the newest is sent).
CHANGELOG_COALESCE_SECONDS = 0.1


class ChangelogWriter:
    """A Faust table's writes: the database at once and the changelog, as ``table[key] =
    value`` leaves them, at a fraction of the cost (module docstring).

    The changelog is a log of each key's states of which recovery keeps the newest (Kafka
    compacts it the same way), so a key written again within
    :data:`CHANGELOG_COALESCE_SECONDS` sends its newest state only: the hot keys of a table
    are written once per fetch, about 20 times a second, and every record is a record batch
    the embedded broker rescans on each fetch (``bench/README.md``). The database has every
    write at once (reads, the web views, the marks); the source ack waits for the send."""

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        #: partition -> key -> newest value, not yet handed to the producer
        self._dirty: dict[int, dict[bytes, bytes]] = {}
        self._dirty_count = 0
        self._sender: asyncio.Task[None] | None = None
        #: one future per burst handed to the producer (all its records delivered), kept
        #: until delivered; a failed one stays for delivered() to raise
        self._bursts: list[asyncio.Future[Any]] = []

    def write(self, key: str, value: Any) -> None:
        """Put ``value`` into the current partition's database, queue its changelog record
        (replacing a queued one of the same key)."""
        if self.app.in_transaction:
            self.table[key] = value  # the record must join the transaction: Faust's path
            return
        store = self.table.data
        key_bytes, value_bytes = store._encode_key(key), store._encode_value(value)
        event = current_event()
        assert event is not None, "a table write outside table_context"
        store._set(key_bytes, value_bytes)
        self.table._sensor_on_set(self.table, key, value)
        records = self._dirty.setdefault(event.message.partition, {})
        if key_bytes not in records:
            self._dirty_count += 1
        records[key_bytes] = value_bytes
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send())

    async def room(self, limit: int = MAX_PENDING_CHANGELOG) -> None:
        """Wait until at most ``limit`` records are queued (the producer pushes back)."""
        while self._dirty_count > limit:
            await asyncio.sleep(0.002)  # the sender task runs meanwhile

    async def _send(self) -> None:
        """After :data:`CHANGELOG_COALESCE_SECONDS` (or at once when the queue is full), hand
        the queued records to the producer; then note each partition's newest changelog
        offset in its database once delivered (Faust's ``_on_changelog_sent``)."""
        deadline = time.monotonic() + CHANGELOG_COALESCE_SECONDS
        while self._dirty_count <= MAX_PENDING_CHANGELOG and time.monotonic() < deadline:
            await asyncio.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        send = self.app.producer.send
        topic = self.table.changelog_topic.get_topic_name()
        while self._dirty:
            dirty, self._dirty, self._dirty_count = self._dirty, {}, 0
            futures = []
            for partition, records in dirty.items():
                for key_bytes, value_bytes in records.items():
                    futures.append(await send(topic, key_bytes, value_bytes, partition, None, None))
                futures[-1].add_done_callback(self._persist_offset)
            self._bursts.append(asyncio.gather(*futures))

    def _persist_offset(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the failure reaches whoever waits in delivered()
        metadata = future.result()
        self.table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)

    async def delivered(self) -> None:
        """Every record written so far acknowledged by the broker (raises a failed send)."""
        sender = self._sender
        if sender is not None and not sender.done():
            await asyncio.shield(sender)  # the queue as of now is handed over with it
        # Delivered bursts are done with (once per call, not per record).
        self._bursts = bursts = [
            b for b in self._bursts if not b.done() or b.cancelled() or b.exception() is not None
        ]
        if bursts:
            await asyncio.gather(*bursts)
