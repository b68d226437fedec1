"""Telemetry agents: ``acme-telemetry`` into the three telemetry tables.

The source agent decodes, validates and ships partial aggregates; one partials agent per
table merges them into its Faust table; a timer closes windows that idle time has passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from app.engine.batching import SourceBatch
from app.engine.pipeline import SourcePipeline
from app.main import app, partials_topics, runtime, windowed_tables
from app.validation.telemetry import validate
from models.telemetry import TELEMETRY_AGGREGATES, TELEMETRY_TOPIC

telemetry_topic = app.topic(TELEMETRY_TOPIC, key_type=bytes, value_type=bytes,
                            key_serializer="raw", value_serializer="raw")  # fmt: skip
telemetry_tables = [windowed_tables[a.table] for a in TELEMETRY_AGGREGATES]
telemetry_pipeline = SourcePipeline(
    runtime, TELEMETRY_TOPIC, validate, telemetry_tables, time_field="event_timestamp"
)


@app.batch_agent(telemetry_topic)
async def telemetry_events(batches: Sequence[SourceBatch]) -> Awaitable[Any]:
    """acme-telemetry: decode, validate, dead-letter or ship partials."""
    return await telemetry_pipeline.handle(batches)


for _table in telemetry_tables:
    app.batch_agent(partials_topics[_table.aggregate.table])(_table.on_partials)


@app.timer(interval=1.0)
async def close_idle_windows() -> None:
    """Close windows whose end + grace the (idle-advanced) watermark has passed."""
    for table in telemetry_tables:
        await table.tick()
