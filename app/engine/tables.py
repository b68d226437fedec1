"""Table declarations: one Faust table (and its partials topic) per windowed aggregate.

Tables are keyed by the group key (``encode_key``), JSON-serialized, stored in ``STORE_URL``
(RocksDB by default) with a changelog, no standby replicas (a standby's copy must never close
windows). Each has an internal partials topic with the same partition count, so Faust's
assignor co-partitions it with the changelog.
"""

from __future__ import annotations

from typing import Any

import faust

from app.engine.publish import AggregatePublisher
from app.engine.windowing import WindowedTable
from app.settings import Settings
from models.combine import Aggregate

__all__ = [
    "ROCKSDB_OPTIONS",
    "declare_windowed_table",
    "internal_topic",
    "json_table",
    "partials_topic_name",
]

#: Per partition database. Faust's defaults (64 MB memtables x 3 and a 2 GB block cache per
#: partition) let a worker with 5 tables x 8 partitions grow into gigabytes; a table holds one
#: small JSON value per group key, so small memtables and caches bound RSS without slowing the
#: one-write-per-key-per-batch path.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 8 * 1024 * 1024,
    "block_cache_size": 1024 * 1024,
    "max_open_files": 256,
}


def partials_topic_name(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-partials"


def json_table(app: Any, name: str, partitions: int, description: str) -> Any:
    """A Faust table keyed by str, with JSON values (plain data), in RocksDB with a changelog.

    value_type None: JSON values decode to plain dicts. (value_type=dict made Faust call
    dict.from_data on every changelog record in recovery: no restart with anything to recover
    ever finished, faust-streaming#432's hang.)"""
    return app.Table(
        name,
        default=None,
        schema=faust.Schema(
            key_type=str, value_type=None, key_serializer="json", value_serializer="json"
        ),
        partitions=partitions,
        help=description,
        options=ROCKSDB_OPTIONS,
    )


def internal_topic(app: Any, name: str, partitions: int) -> Any:
    """An internal topic of raw bytes (partials, the join's repartition topic)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
    )


def declare_windowed_table(
    app: Any,
    settings: Settings,
    aggregate: Aggregate,
    publisher: AggregatePublisher,
    *,
    source_topic: str,
    time_field: str,
    counts_late_events: bool = True,
    grace_ms: int | None = None,
) -> tuple[WindowedTable, Any]:
    """Declare the Faust table and partials topic of ``aggregate`` (fed by ``source_topic``,
    windowed by its ``time_field``; ``grace_ms`` instead of GRACE_SECONDS when its windows
    close later); return both."""
    table = json_table(app, aggregate.table, settings.topic_partitions, aggregate.description)
    topic = internal_topic(
        app, partials_topic_name(settings.app_id, aggregate.table), settings.topic_partitions
    )
    windowed = WindowedTable(
        app=app,
        aggregate=aggregate,
        source_topic=source_topic,
        time_field=time_field,
        table=table,
        partials_topic=topic.get_topic_name(),
        publisher=publisher,
        window_ms=settings.window_ms,
        grace_ms=settings.grace_ms if grace_ms is None else grace_ms,
        partitions=settings.topic_partitions,
        idle_advance_seconds=settings.idle_advance_seconds,
        closed_windows_kept=settings.closed_windows_kept,
        latency_log=settings.latency_log,
        merge_locally=settings.merge_locally,
        counts_late_events=counts_late_events,
        close_in_background=True,
    )
    return windowed, topic
