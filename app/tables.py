"""Table declarations: one Faust table (and its partials topic) per windowed aggregate.

Tables are keyed by the group key (``encode_key``), JSON-serialized, stored in ``STORE_URL``
(RocksDB by default) with a changelog, no standby replicas (a standby's copy must never close
windows). Each has an internal partials topic with the same partition count, so Faust's
assignor co-partitions it with the changelog.
"""

from __future__ import annotations

from typing import Any

import faust

from app.publish import AggregatePublisher
from app.settings import Settings
from app.windowing import WindowedTable
from models.windowed import WindowedAggregate

__all__ = ["declare_windowed_table", "partials_topic_name"]


def partials_topic_name(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-partials"


def declare_windowed_table(
    app: Any, settings: Settings, aggregate: WindowedAggregate, publisher: AggregatePublisher
) -> tuple[WindowedTable, Any]:
    """Declare the Faust table and partials topic of ``aggregate``; return both."""
    table = app.Table(
        aggregate.table,
        default=None,
        schema=faust.Schema(
            key_type=str, value_type=dict, key_serializer="json", value_serializer="json"
        ),
        partitions=settings.topic_partitions,
        help=aggregate.description,
    )
    topic = app.topic(
        partials_topic_name(settings.app_id, aggregate.table),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
        internal=True,
    )
    windowed = WindowedTable(
        app=app,
        aggregate=aggregate,
        table=table,
        partials_topic=topic.get_topic_name(),
        publisher=publisher,
        window_ms=settings.window_ms,
        grace_ms=settings.grace_ms,
        partitions=settings.topic_partitions,
        idle_advance_seconds=settings.idle_advance_seconds,
        closed_windows_kept=settings.closed_windows_kept,
    )
    return windowed, topic
