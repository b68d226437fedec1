"""The one Faust app, wired from the domain declarations.

Run a worker with ``faust -A app.main worker -l info --web-port <port>``. Each source domain is
declared once in ``agents/`` (topic, rules, aggregates); :class:`app.engine.wiring.Engine`
builds its tables and batch agents here, and the web views are registered last.
"""

from __future__ import annotations

import logging

from agents import DOMAINS, JOIN_OUTPUTS
from app.engine.batching import StreamPulseApp
from app.engine.codec import RegistryCodec
from app.engine.wiring import Engine
from app.settings import load_settings

__all__ = ["app", "codec", "engine", "runtime", "settings", "windowed_tables"]

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
    # Per partition per fetch: at least one message of the largest size decoded.
    consumer_max_fetch_size=max(1024 * 1024, settings.max_message_bytes),
    broker_max_poll_records=settings.max_batch_records,
    web_enabled=True,
    fetch_max_wait_ms=settings.fetch_max_wait_ms,
)

codec = RegistryCodec(settings.schema_registry_url, max_message_bytes=settings.max_message_bytes)
engine = Engine(app, settings, codec)
engine.add_domains(DOMAINS, JOIN_OUTPUTS)
runtime = engine.runtime
#: table name -> its windowed table (the web views and replay read it)
windowed_tables = engine.tables


@app.task
async def warm_schema_cache() -> None:
    """At start (after table recovery): reader schemas set, registry reached, cache warm."""
    await runtime.ensure_started()


@app.timer(interval=1.0)
async def close_idle_windows() -> None:
    """Close windows that the idle-advanced watermarks have passed."""
    await engine.close_idle_windows()


from app.web import erasure as _erasure  # noqa: E402,F401 - registers the erasure route
from app.web import routes as _routes  # noqa: E402,F401 - registers the web views
