"""What the comparison implementations share, so they differ only in their framework.

Every implementation (naive Faust, the floor, Quix Streams) is configured by the same
environment variables, decodes with the same :class:`TelemetryDecoder` (Confluent framing, the
writer schema fetched from the registry by id, fastavro ``schemaless_reader`` with logical types
left as their base types, exactly like ``app.engine.codec``), validates with the product's
``app.validation.telemetry.validate``, folds with the product's aggregation math
(``models.telemetry``), and publishes each closed window as one JSON record (see
:func:`window_record`) on its own output topic. The harness (``bench/telemetry.py``) starts
each one as a subprocess and reads its status file and output topic.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from app.engine.codec import parse_raw
from bench.baseline_math import Accumulator, BaselineAggregate

__all__ = [
    "BenchConfig",
    "StatusFile",
    "TelemetryDecoder",
    "window_record",
]

_HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class BenchConfig:
    """Environment of a comparison implementation (set by the harness)."""

    bootstrap: str
    registry_url: str
    source_topic: str
    output_topic: str
    group: str
    status_file: Path
    data_dir: Path
    partitions: int
    window_ms: int
    grace_ms: int
    idle_advance_seconds: float

    @classmethod
    def from_env(cls) -> BenchConfig:
        env = os.environ
        return cls(
            bootstrap=env["BENCH_BOOTSTRAP"],
            registry_url=env["BENCH_REGISTRY_URL"].rstrip("/"),
            source_topic=env.get("BENCH_SOURCE_TOPIC", "acme-telemetry"),
            output_topic=env["BENCH_OUTPUT_TOPIC"],
            group=env["BENCH_GROUP"],
            status_file=Path(env["BENCH_STATUS_FILE"]),
            data_dir=Path(env["BENCH_DATA_DIR"]),
            partitions=int(env.get("TOPIC_PARTITIONS", "8")),
            window_ms=int(env.get("WINDOW_SECONDS", "60")) * 1000,
            grace_ms=int(env.get("GRACE_SECONDS", "10")) * 1000,
            idle_advance_seconds=float(env.get("IDLE_ADVANCE_SECONDS", "5")),
        )


class StatusFile:
    """A small JSON file the harness reads: first-consumed time, counters, errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"pid": os.getpid()}
        self._last_write = 0.0

    def first_consumed(self) -> None:
        """Record the wall-clock time of the first source message (once)."""
        if "first_consumed" not in self.data:
            self.data["first_consumed"] = time.time()
            self.write()

    def update(self, force: bool = False, **fields: Any) -> None:
        self.data.update(fields)
        if force or time.monotonic() - self._last_write > 1.0:
            self.write()

    def write(self) -> None:
        self._last_write = time.monotonic()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


class TelemetryDecoder:
    """Confluent-framed Avro -> dict, writer schemas fetched from the registry by id (cached).

    Returns None for anything undecodable (none of the benchmark's messages are; the product's
    DLQ path is not what this benchmark measures). Synchronous: a registry fetch happens once per
    schema id, at the first message written with it.
    """

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url.rstrip("/")
        self._writers: dict[int, Any] = {}

    def writer(self, schema_id: int) -> Any:
        schema = self._writers.get(schema_id)
        if schema is None:
            url = f"{self.registry_url}/schemas/ids/{schema_id}"
            with urllib.request.urlopen(url, timeout=10) as response:
                raw = json.loads(json.loads(response.read())["schema"])
            schema = self._writers[schema_id] = parse_raw(raw)
        return schema

    def decode(self, data: bytes | None) -> dict[str, Any] | None:
        if not data or len(data) < 5 or data[0] != 0:
            return None
        schema_id = _HEADER.unpack_from(data)[1]
        try:
            writer = self._writers.get(schema_id) or self.writer(schema_id)
            buffer = io.BytesIO(data)
            buffer.seek(5)
            value = fastavro.schemaless_reader(buffer, writer, None)
        except Exception:
            return None
        if buffer.tell() != len(data):
            return None
        return value


def window_record(
    aggregate: BaselineAggregate, key_values: tuple[str, ...], window_start: int,
    window_ms: int, acc: Accumulator,
) -> dict[str, Any]:  # fmt: skip
    """The JSON record a comparison implementation publishes for one closed window."""
    return {
        "table": aggregate.table,
        "key": list(key_values),
        "window_start": window_start,
        "window_end": window_start + window_ms,
        "metrics": aggregate.metrics(acc),
        "published_ms": int(time.time() * 1000),
    }
