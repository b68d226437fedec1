"""Publishing final window records to the derived topics (contract section 3).

A record is the seed-004 envelope, the window bounds, the group key and the metric fields,
encoded with the derived topic's registered schema. ``event_id`` is a UUID derived from
(table, key, window): if a crash makes a window publish twice, both copies carry the same id,
so downstream consumers can drop the duplicate. Every record passes the privacy check first
(``app/engine/privacy.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from app.catalog import DERIVED_TOPICS
from app.engine import metrics
from app.engine.codec import RegistryCodec
from app.engine.privacy import pii_in
from models.combine import Accumulator, Aggregate

__all__ = [
    "PRODUCER",
    "AggregatePublisher",
    "derived_record",
    "derived_records",
    "record_event_id",
]

PRODUCER = "streampulse"
log = logging.getLogger(__name__)
_EVENT_ID_NAMESPACE = uuid.UUID("5b0d4c8e-2f4e-4a51-9d5e-7a1f0c3b9e21")


def record_event_id(table: str, key: str, window_start: int) -> str:
    """Stable id of one window's record."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{table}\x1f{key}\x1f{window_start}"))


def derived_record(
    aggregate: Aggregate,
    key: str,
    key_values: Sequence[str],
    window_start: int,
    window_ms: int,
    acc: Accumulator,
    now_ms: int,
) -> dict[str, Any]:
    """The full record for one closed window of a one-row aggregate, field order as in the
    schema."""
    (record,) = derived_records(aggregate, key, key_values, window_start, window_ms, acc, now_ms)
    return record


def derived_records(
    aggregate: Aggregate,
    key: str,
    key_values: Sequence[str],
    window_start: int,
    window_ms: int,
    acc: Accumulator,
    now_ms: int,
    total: Accumulator | None = None,
) -> list[dict[str, Any]]:
    """The records of one closed window (``Aggregate.records``: one, or for aggregates with
    rows any number; ``total`` the running total of a cumulative aggregate), field order as
    in the schema. A row's extra key values are part of its ``event_id``."""
    out = []
    key_fields = (*aggregate.key_fields, *aggregate.row_key_fields)
    for extra, fields in aggregate.records(acc, total):
        row_key = "\x1f".join((key, *extra))
        record: dict[str, Any] = {
            "event_id": record_event_id(aggregate.table, row_key, window_start),
            "event_type": aggregate.event_type,
            "occurred_at": now_ms,
            "producer": PRODUCER,
            "schema_version": aggregate.schema_version,
            "privacy_tier": aggregate.privacy_tier,
            "window_start": window_start,
            "window_end": window_start + window_ms,
        }
        record.update(zip(key_fields, (*key_values, *extra), strict=True))
        record.update(fields)
        out.append(record)
    return out


class AggregatePublisher:
    """Encodes records with the registry and sends them, waiting for the broker's ack."""

    def __init__(self, app: Any, codec: RegistryCodec) -> None:
        self._app = app
        self._codec = codec

    async def publish(
        self,
        topic: str,
        records: Sequence[tuple[str, dict[str, Any]]],
        table: str | None = None,
    ) -> None:
        """Send ``(key, record)`` pairs to the derived ``topic``; return once all are acked.
        ``table`` (default: the topic's name) labels the metrics. A record the privacy check
        rejects is counted and logged instead (the window still closes: publishing it later
        would not make it clean)."""
        table = table or topic
        records = [(key, rec) for key, rec in records if self._may_publish(table, key, rec)]
        if not records:
            return
        spec = DERIVED_TOPICS[topic]
        schema_id = await self._codec.schema_id_for(spec.subject, spec.schema())
        encode = self._codec.encode
        send = self._app.producer.send
        timestamp = time.time()
        futures = [
            await send(topic, key.encode(), encode(schema_id, record), None, timestamp, None)
            for key, record in records
        ]
        await asyncio.gather(*futures)
        metrics.AGGREGATES_EMITTED.labels(table=table).inc(len(records))

    @staticmethod
    def _may_publish(table: str, key: str, record: dict[str, Any]) -> bool:
        """The privacy check (app/engine/privacy.py): a record carrying PII is not published."""
        reason = pii_in(record, key)
        if reason is None:
            return True
        metrics.PRIVACY_REJECTIONS.labels(table=table).inc()
        log.error("not publishing a %s record: %s", table, reason)
        return False
