"""Environment-driven settings: every knob in one place, each with an embedded-stack default.

The README's configuration table documents each variable; keep the two in step.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "load_settings"]

_PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {raw!r}")
    return value


def _port(name: str, default: int) -> int:
    value = _env_int(name, default, minimum=1)
    if value > 65535:
        raise ValueError(f"{name} must be a TCP port (1-65535), got {value}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Worker configuration (contract section 6, plus operational extras)."""

    kafka_broker_url: str = "kafka://127.0.0.1:9092"
    schema_registry_url: str = "http://127.0.0.1:8081"
    store_url: str = "rocksdb://"
    window_seconds: int = 60
    grace_seconds: int = 10
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    topic_partitions: int = 8
    processing_guarantee: str = "at_least_once"
    canonical_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("data"))
    app_id: str = "streampulse"
    # Most records one fetch hands to the batch agents (all partitions together).
    max_batch_records: int = 10000
    # FETCH_MAX_WAIT_MS: longest a fetch waits on the broker for new data. Apache Kafka answers
    # as soon as data arrives, so there it only paces idle polls. The embedded Tansu answers a
    # poll with no data only at the wait's end (an idle hop costs up to this much), and under
    # load a short wait made its answers worse (bench/README.md, "fetch wait"): 100 ms measured
    # best on the full mix at 2,000 events/s.
    fetch_max_wait_ms: int = 100
    # Largest source message decoded; a larger one is dead-lettered as decode.malformed, so a
    # hostile message cannot make the decoder allocate beyond this (and the fetch size).
    max_message_bytes: int = 1024 * 1024
    # How long the stream may sit idle before event time is advanced by wall-clock time.
    idle_advance_seconds: float = 5.0
    # How many closed windows per key the tables keep for the web views.
    closed_windows_kept: int = 5
    topic_replication_factor: int = 1
    # Faust's check that a persisted table offset is not above the changelog's end offset.
    # On everywhere: the end offsets are read from the data (app/engine/offsets.py), so the
    # embedded Tansu broker's short ListOffsets answers (lessons.md) no longer trip it.
    recovery_consistency_check: bool = True
    # Source topics this worker consumes (SOURCE_TOPICS, comma-separated); empty: every topic
    # that has a batch agent. A replay worker (app/tools/replay.py) consumes only its topic.
    source_topics: tuple[str, ...] = ()
    # Replay start (REPLAY_FROM_MS, epoch ms): source records with an earlier Kafka record
    # timestamp are skipped (app/engine/batching.py, StreamPulseApp.configure_sources).
    replay_from_ms: int | None = None
    # LATENCY_LOG: a file to which every partials merge appends one JSON line (table, merge
    # time, events, their production-time range): the latency benchmark's exact table-side
    # hook. Unset in production (the table-latency histogram says the same, in buckets).
    latency_log: Path | None = None
    # LOCAL_MERGE: the source side merges partials for table partitions this worker owns in
    # place (app/engine/windowing.py, WindowedTable.merge_local); only the other workers' partitions
    # go through the partials topic. Off: every partial takes the broker round trip (for tests
    # and measurements of that path).
    merge_locally: bool = True
    # CTR_ATTRIBUTION_SECONDS: how long after a recommendation response a click on one of its
    # items is credited to it (contract section 3).
    ctr_attribution_seconds: int = 600
    # ERASURE_TOKEN: the bearer token of the GDPR erasure route; unset, the route is off.
    erasure_token: str | None = None

    @property
    def ctr_attribution_ms(self) -> int:
        return self.ctr_attribution_seconds * 1000

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000

    @property
    def grace_ms(self) -> int:
        return self.grace_seconds * 1000

    @property
    def broker_bootstrap(self) -> str:
        """host:port list for plain Kafka clients (aiokafka, confluent-kafka)."""
        return ",".join(url.split("://", 1)[-1] for url in self.kafka_broker_url.split(";") if url)


#: MAX_MESSAGE_BYTES below this could not hold an ordinary source record.
_MIN_MESSAGE_BYTES = 1024


def load_settings() -> Settings:
    """Read the environment once; invalid values fail loudly at start, not mid-stream."""
    guarantee = os.environ.get("PROCESSING_GUARANTEE", "at_least_once") or "at_least_once"
    if guarantee not in _PROCESSING_GUARANTEES:
        raise ValueError(
            f"PROCESSING_GUARANTEE must be one of {_PROCESSING_GUARANTEES}, got {guarantee!r}"
        )
    return Settings(
        kafka_broker_url=os.environ.get("KAFKA_BROKER_URL") or Settings.kafka_broker_url,
        schema_registry_url=(
            os.environ.get("SCHEMA_REGISTRY_URL") or Settings.schema_registry_url
        ).rstrip("/"),
        store_url=os.environ.get("STORE_URL") or Settings.store_url,
        window_seconds=_env_int("WINDOW_SECONDS", Settings.window_seconds, minimum=1),
        grace_seconds=_env_int("GRACE_SECONDS", Settings.grace_seconds, minimum=0),
        web_port=_port("WEB_PORT", Settings.web_port),
        web_host=os.environ.get("WEB_HOST") or Settings.web_host,
        topic_partitions=_env_int("TOPIC_PARTITIONS", Settings.topic_partitions, minimum=1),
        processing_guarantee=guarantee,
        canonical_url=os.environ.get("WORKER_CANONICAL_URL") or None,
        data_dir=Path(os.environ.get("DATA_DIR") or "data"),
        app_id=os.environ.get("APP_ID") or Settings.app_id,
        max_batch_records=_env_int("MAX_BATCH_RECORDS", Settings.max_batch_records, minimum=1),
        fetch_max_wait_ms=_env_int("FETCH_MAX_WAIT_MS", Settings.fetch_max_wait_ms, minimum=1),
        max_message_bytes=_env_int(
            "MAX_MESSAGE_BYTES", Settings.max_message_bytes, minimum=_MIN_MESSAGE_BYTES
        ),
        idle_advance_seconds=_env_float("IDLE_ADVANCE_SECONDS", Settings.idle_advance_seconds),
        closed_windows_kept=_env_int("CLOSED_WINDOWS_KEPT", Settings.closed_windows_kept),
        topic_replication_factor=_env_int("TOPIC_REPLICATION_FACTOR", 1, minimum=1),
        recovery_consistency_check=_env_bool("RECOVERY_CONSISTENCY_CHECK", True),
        latency_log=Path(os.environ["LATENCY_LOG"]) if os.environ.get("LATENCY_LOG") else None,
        merge_locally=_env_bool("LOCAL_MERGE", Settings.merge_locally),
        ctr_attribution_seconds=_env_int(
            "CTR_ATTRIBUTION_SECONDS", Settings.ctr_attribution_seconds, minimum=1
        ),
        erasure_token=os.environ.get("ERASURE_TOKEN") or None,
        source_topics=tuple(
            t.strip() for t in (os.environ.get("SOURCE_TOPICS") or "").split(",") if t.strip()
        ),
        replay_from_ms=(
            _env_int("REPLAY_FROM_MS", 0) if os.environ.get("REPLAY_FROM_MS") else None
        ),
    )
