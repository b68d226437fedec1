"""The app wired from the domain declarations, and the source pipeline's last line of defence.

No broker: the Faust app is built (``app.main``) but never started.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from agents import DOMAINS, JOIN_OUTPUTS
from app.catalog import DERIVED_TOPICS, SOURCE_TOPICS
from app.engine.batching import SourceBatch
from app.engine.codec import Decoded, DecodeFailure
from app.engine.domain import Domain
from app.engine.pipeline import SourcePipeline
from app.validation import RULE_ERROR, Violation


def test_every_domain_is_wired_into_tables_and_batch_agents() -> None:
    from app.main import app, engine, windowed_tables

    expected = {a.table: d for d in DOMAINS for a in d.aggregates}
    joined = {aggregate.table for aggregate, _ in JOIN_OUTPUTS.values()}
    assert set(windowed_tables) == set(expected) | joined == {
        "agg.telemetry.buffering", "agg.telemetry.completion", "agg.telemetry.errors",
        "agg.downloads.errors", "agg.orders.summary",
        "agg.model.metrics.reported", "agg.model.metrics.requests",
        "agg.model.metrics.latency", "agg.model.metrics.errors", "agg.model.metrics.ctr",
        "ab.conversions",
    }  # fmt: skip
    for name, table in windowed_tables.items():
        assert table.partials_topic in app.batch_handlers
        if name in joined:  # fed by the join: its sources are the repartition topic's
            assert table.source_topic == engine.join.topic and table.time_field == "ts"
            continue
        domain = expected[name]
        assert table.source_topic == domain.topic
        assert table.time_field == SOURCE_TOPICS[domain.topic].time_field
    # Every source topic is consumed, every derived topic published.
    assert set(engine.pipelines) == set(SOURCE_TOPICS)
    assert {t.aggregate.topic for t in windowed_tables.values()} == set(DERIVED_TOPICS)
    for topic, pipeline in engine.pipelines.items():
        assert app.batch_handlers[topic] == pipeline.handle
        domain = next(d for d in DOMAINS if d.topic == topic)
        assert [getattr(t, "aggregate", t).table if hasattr(t, "aggregate") else "join"
                for t in pipeline.tables] == [
            *(a.table for a in domain.aggregates), *(["join"] if domain.join else [])
        ]  # fmt: skip
    assert {d.topic for d in DOMAINS if d.join} == {
        "orders.raw",
        "recommendation-responses",
        "user-interactions",
        "ab-test-events",
    }
    assert app.batch_handlers[engine.join.topic] == engine.join.on_events
    # The CTR metric's windows wait for the clicks of their responses.
    grace = windowed_tables["agg.model.metrics.ctr"].grace_ms
    assert grace == engine.settings.grace_ms + engine.settings.ctr_attribution_ms + (
        engine.settings.window_ms
    )
    assert SOURCE_TOPICS["content-downloads"].time_field == "timestamp"
    assert SOURCE_TOPICS["acme-telemetry"].time_field == "event_timestamp"


def test_a_domain_must_name_a_source_topic() -> None:
    with pytest.raises(ValueError, match="not a source topic"):
        Domain("agg.orders.summary", lambda e: None, ())
    with pytest.raises(ValueError, match="not a source topic"):
        Domain("orders", lambda e: None, ())


class Letters:
    def __init__(self) -> None:
        self.added: list[tuple[int, str]] = []

    def add(self, topic: str, partition: int, record: Any, reason: str, message: str) -> None:
        self.added.append((record.offset, reason))


def test_a_rule_that_raises_dead_letters_its_record_and_the_batch_goes_on() -> None:
    def validate(event: dict[str, Any]) -> Violation | None:
        if event["n"] == 2:
            raise KeyError("surprise")
        return Violation.rule("odd", "odd") if event["n"] % 2 else None

    pipeline = SourcePipeline(None, "orders.raw", validate, (), "timestamp")  # type: ignore[arg-type]
    records = [SimpleNamespace(offset=o, key=b"k", value=b"v") for o in range(5)]
    decoded: list[Any] = [Decoded({"n": n}, 1, False) for n in range(4)]
    decoded.append(DecodeFailure("decode.malformed", "cut short"))
    letters = Letters()
    valid = pipeline.split(SourceBatch(TP("orders.raw", 0), records), decoded, letters)
    assert valid == [{"n": 0}]
    assert letters.added == [
        (1, "validation.odd"), (2, RULE_ERROR), (3, "validation.odd"), (4, "decode.malformed"),
    ]  # fmt: skip
