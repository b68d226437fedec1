"""The one Faust app: settings, codec, publisher and the tables, declared once.

Run a worker with ``faust -A app.main worker -l info --web-port <port>``. Agents live in
``agents/`` (one module per source domain) and are imported at the bottom of this module, after
the app and the tables they use exist.
"""

from __future__ import annotations

import logging

from app.engine.batching import StreamPulseApp
from app.engine.codec import RegistryCodec
from app.engine.pipeline import Runtime
from app.engine.publish import AggregatePublisher
from app.engine.tables import declare_windowed_table
from app.engine.windowing import WindowedTable
from app.settings import load_settings
from models.telemetry import TELEMETRY_AGGREGATES

__all__ = ["app", "runtime", "settings", "windowed_tables"]

log = logging.getLogger(__name__)
# httpx logs every registry request at INFO; the codec's own metrics and warnings suffice.
logging.getLogger("httpx").setLevel(logging.WARNING)

settings = load_settings()

app = StreamPulseApp(
    settings.app_id,
    broker=settings.kafka_broker_url,
    store=settings.store_url,
    datadir=str(settings.data_dir),
    web_port=settings.web_port,
    web_bind=settings.web_host,
    canonical_url=settings.canonical_url,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication_factor,
    processing_guarantee=settings.processing_guarantee,
    table_standby_replicas=0,
    recovery_consistency_check=settings.recovery_consistency_check,
    # A new group's first join waits about half the session timeout (lessons.md).
    broker_session_timeout=10.0,
    broker_heartbeat_interval=3.0,
    producer_linger=0.005,
    # Per partition being written (partials, changelogs, derived topics: dozens at once).
    producer_max_batch_size=256 * 1024,
    producer_max_request_size=4 * 1024 * 1024,
    consumer_max_fetch_size=1024 * 1024,
    broker_max_poll_records=settings.max_batch_records,
    web_enabled=True,
)

codec = RegistryCodec(settings.schema_registry_url)
runtime = Runtime(app, codec)
publisher = AggregatePublisher(app, codec)

#: table name -> (windowed table, its partials topic)
windowed_tables: dict[str, WindowedTable] = {}
partials_topics = {}
for _aggregate in TELEMETRY_AGGREGATES:
    windowed_tables[_aggregate.table], partials_topics[_aggregate.table] = (
        declare_windowed_table(app, settings, _aggregate, publisher)
    )



@app.task
async def warm_schema_cache() -> None:
    """At start (after table recovery): reader schemas set, registry reached, cache warm."""
    await runtime.ensure_started()


import agents.telemetry  # noqa: E402,F401 - registers the telemetry agents
from app.web import routes as _routes  # noqa: E402,F401 - registers the web views
