"""The topic catalog: every source and derived topic, its schema file and key.

One place names the contract's topics (``../shared/spec/contract.md`` sections 1-3) so the
stack, the simulator, the worker and the tests agree on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "DERIVED_TOPICS",
    "DLQ_TOPIC",
    "SCHEMA_DIR",
    "SOURCE_TOPICS",
    "TopicSpec",
    "all_topics",
    "load_schema",
    "subject_for",
]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

DLQ_TOPIC = "streampulse.dlq"


@dataclass(frozen=True)
class TopicSpec:
    """A contract topic: its name, value schema file (under ``schemas/``), key field and, for
    source topics, the event-time field (epoch ms) its windows use (contract section 3)."""

    name: str
    schema_file: str
    key_field: str | None = None
    time_field: str | None = None

    @property
    def subject(self) -> str:
        return subject_for(self.name)

    def schema(self) -> dict[str, Any]:
        return load_schema(self.schema_file)


SOURCE_TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec("acme-telemetry", "telemetry/TelemetryEvent.avsc", "customer_id",
                  "event_timestamp"),
        TopicSpec("content-downloads", "downloads/ContentDownloadEvent.avsc", "user_id",
                  "timestamp"),
        TopicSpec("orders.raw", "orders/OrderEvent.avsc", "order_id", "timestamp"),
        TopicSpec("user-interactions", "lens/UserInteraction.avsc", "userId", "timestamp"),
        TopicSpec("recommendation-requests", "lens/RecommendationRequest.avsc", "userId",
                  "timestamp"),
        TopicSpec("recommendation-responses", "lens/RecommendationResponse.avsc", "userId",
                  "timestamp"),
        TopicSpec("model-metrics", "lens/ModelMetric.avsc", "modelName", "timestamp"),
        TopicSpec("ab-test-events", "lens/ABTestEvent.avsc", "userId", "timestamp"),
    )
}

DERIVED_TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec("agg.telemetry.buffering", "derived/TelemetryBuffering.avsc"),
        TopicSpec("agg.telemetry.completion", "derived/TelemetryCompletion.avsc"),
        TopicSpec("agg.telemetry.errors", "derived/TelemetryErrors.avsc"),
        TopicSpec("agg.downloads.errors", "derived/DownloadsErrors.avsc"),
        TopicSpec("agg.orders.summary", "derived/OrdersSummary.avsc"),
        TopicSpec("agg.model.metrics", "derived/ModelMetrics.avsc"),
        TopicSpec("ab.conversions", "derived/ExperimentConversions.avsc"),
    )
}


def subject_for(topic: str) -> str:
    """TopicNameStrategy subject of a topic's values."""
    return f"{topic}-value"


@cache
def _read_schema(relative_path: str) -> str:
    return (SCHEMA_DIR / relative_path).read_text()


def load_schema(relative_path: str) -> dict[str, Any]:
    """Parse a schema file under ``schemas/`` (a fresh dict each call; the text is cached)."""
    return json.loads(_read_schema(relative_path))


def all_topics() -> list[str]:
    """Every topic the product reads or writes, DLQ included."""
    return [*SOURCE_TOPICS, *DERIVED_TOPICS, DLQ_TOPIC]
