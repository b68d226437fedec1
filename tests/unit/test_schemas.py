"""Schema files parse, are documented, keep the derived envelope and evolve compatibly."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.validation import validate

from app.catalog import DERIVED_TOPICS, SCHEMA_DIR, SOURCE_TOPICS

ALL_SCHEMAS = sorted(SCHEMA_DIR.rglob("*.avsc"))
DERIVED_SCHEMAS = sorted((SCHEMA_DIR / "derived").glob("*.avsc"))
ENVELOPE = (
    "event_id",
    "event_type",
    "occurred_at",
    "producer",
    "schema_version",
    "privacy_tier",
    "window_start",
    "window_end",
)
# Identifiers and personal data no derived record may carry (contract section 3), normalized:
# lower case, underscores removed.
FORBIDDEN_FIELDS = {
    "userid",
    "customerid",
    "deviceid",
    "sessionid",
    "ip",
    "ipaddress",
    "city",
    "email",
    "emailaddress",
}
EVENT_TYPE_RE = re.compile(r"^[a-z]+\.[a-z_]+$")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(SCHEMA_DIR)) for p in paths]


def _named_types(schema: Any) -> Iterator[dict[str, Any]]:
    """Every record, enum and fixed definition inside a schema, nested ones included."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _named_types(branch)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            yield schema
        if kind == "record":
            for field in schema["fields"]:
                yield from _named_types(field["type"])
        elif kind == "array":
            yield from _named_types(schema["items"])
        elif kind == "map":
            yield from _named_types(schema["values"])
        elif isinstance(kind, (dict, list)):
            yield from _named_types(kind)


def _fields(schema: Any) -> Iterator[dict[str, Any]]:
    for named in _named_types(schema):
        if named["type"] == "record":
            yield from named["fields"]


@pytest.mark.parametrize("path", ALL_SCHEMAS, ids=_ids(ALL_SCHEMAS))
def test_schema_parses_with_fastavro_and_avro(path: Path) -> None:
    fastavro.parse_schema(_load(path))
    avro.schema.parse(path.read_text())


@pytest.mark.parametrize("path", ALL_SCHEMAS, ids=_ids(ALL_SCHEMAS))
def test_every_record_enum_and_field_has_a_doc(path: Path) -> None:
    schema = _load(path)
    undocumented = [t["name"] for t in _named_types(schema) if not t.get("doc", "").strip()]
    undocumented += [f["name"] for f in _fields(schema) if not f.get("doc", "").strip()]
    assert undocumented == []


def test_every_catalog_topic_has_a_schema_with_its_key_field() -> None:
    for spec in [*SOURCE_TOPICS.values(), *DERIVED_TOPICS.values()]:
        schema = spec.schema()
        if spec.key_field is not None:
            field = next(f for f in schema["fields"] if f["name"] == spec.key_field)
            assert field["type"] == "string", spec.name


@pytest.mark.parametrize("path", DERIVED_SCHEMAS, ids=_ids(DERIVED_SCHEMAS))
def test_derived_schema_starts_with_the_envelope(path: Path) -> None:
    schema = _load(path)
    template = _load(SCHEMA_DIR / "derived" / "TelemetryBuffering.avsc")
    fields = schema["fields"]
    assert schema["namespace"] == "com.streampulse.derived"
    assert tuple(f["name"] for f in fields[: len(ENVELOPE)]) == ENVELOPE
    for field, expected in zip(fields[: len(ENVELOPE)], template["fields"], strict=False):
        if field["name"] == "event_type":
            assert field["type"] == "string"
            assert EVENT_TYPE_RE.match(field["default"])
        else:
            assert field == expected, field["name"]
    privacy = next(f for f in fields if f["name"] == "privacy_tier")
    assert privacy["default"] in ("public", "internal")


@pytest.mark.parametrize("path", DERIVED_SCHEMAS, ids=_ids(DERIVED_SCHEMAS))
def test_derived_schema_has_no_identifiers_or_personal_data(path: Path) -> None:
    names = [f["name"] for f in _fields(_load(path))]
    leaks = [n for n in names if n.lower().replace("_", "") in FORBIDDEN_FIELDS or "email" in n]
    assert leaks == []


def test_derived_ratios_are_nullable_with_null_default() -> None:
    for path in DERIVED_SCHEMAS:
        for field in _load(path)["fields"]:
            if field["name"].endswith(("_rate", "_ratio")):
                assert field["type"] == ["null", "double"], (path.name, field["name"])
                assert field["default"] is None


def test_derived_event_types_match_the_contract() -> None:
    expected = {
        "agg.downloads.errors": "downloads.errors",
        "agg.orders.summary": "orders.summary",
        "agg.model.metrics": "model.metrics",
        "ab.conversions": "experiment.conversions",
    }
    for topic, event_type in expected.items():
        fields = DERIVED_TOPICS[topic].schema()["fields"]
        assert fields[1]["default"] == event_type


def _compatibility(reader: Path, writer: Path) -> SchemaCompatibilityType:
    checker = ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(
        avro.schema.parse(reader.read_text()), avro.schema.parse(writer.read_text())
    )
    return result.compatibility


def test_content_download_v2_is_compatible_with_v1_both_ways() -> None:
    v1 = SCHEMA_DIR / "downloads" / "ContentDownloadEvent.avsc"
    v2 = SCHEMA_DIR / "downloads" / "ContentDownloadEvent.v2.avsc"
    assert _compatibility(reader=v2, writer=v1) is SchemaCompatibilityType.compatible
    assert _compatibility(reader=v1, writer=v2) is SchemaCompatibilityType.compatible


def test_content_download_v2_only_appends_content_rating() -> None:
    v1 = _load(SCHEMA_DIR / "downloads" / "ContentDownloadEvent.avsc")
    v2 = _load(SCHEMA_DIR / "downloads" / "ContentDownloadEvent.v2.avsc")
    assert v2["name"] == v1["name"] and v2["namespace"] == v1["namespace"]
    assert v2["fields"][:-1] == v1["fields"]
    assert v2["fields"][-1] == {
        "name": "content_rating",
        "type": ["null", "string"],
        "default": None,
        "doc": "Content rating: G, PG, PG-13, R",
    }


def test_order_event_follows_seed_001() -> None:
    schema = SOURCE_TOPICS["orders.raw"].schema()
    assert schema["namespace"] == "com.pipeline.events"
    enums = {t["name"]: t["symbols"] for t in _named_types(schema) if t["type"] == "enum"}
    assert len(enums["OrderEventType"]) == 9
    assert {"ORDER_CREATED", "PAYMENT_AUTHORIZED", "PAYMENT_FAILED"} <= set(enums["OrderEventType"])
    assert len(enums["OrderStatus"]) == 8
    assert len(enums["PaymentMethod"]) == 7
    fields = {f["name"]: f for f in _fields(schema)}
    assert fields["source"]["default"] == "order-service"
    assert fields["version"]["default"] == "1.0"
    assert fields["currency"]["default"] == "USD"
    assert fields["timestamp"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["metadata"]["type"] == ["null", {"type": "map", "values": "string"}]
    records = {t["name"] for t in _named_types(schema) if t["type"] == "record"}
    assert {"OrderEvent", "OrderEventPayload", "OrderItem", "Address"} <= records


def test_lens_interaction_types_follow_seed_003() -> None:
    schema = SOURCE_TOPICS["user-interactions"].schema()
    enum = next(t for t in _named_types(schema) if t["name"] == "InteractionType")
    assert enum["symbols"] == ["view", "click", "rating", "purchase", "search", "bookmark"]


def test_lens_fields_added_beyond_the_seed_are_optional_or_documented_as_added() -> None:
    # The seed's own producer example must stay valid: every field it does not set has a default.
    schema = fastavro.parse_schema(SOURCE_TOPICS["user-interactions"].schema())
    seed_example = {
        "eventId": "evt_123",
        "timestamp": 1698768000000,
        "userId": "user_456",
        "sessionId": "session_789",
        "interactionType": "click",
        "itemId": "item_012",
        "itemCategory": "electronics",
    }
    assert validate(seed_example, schema)
    # Added fields without a default are the ones every event of its kind must carry anyway.
    required_added = {"eventId", "timestamp", "userId", "modelName", "modelVersion"}
    for spec in SOURCE_TOPICS.values():
        if spec.schema_file.startswith("lens/"):
            for field in _fields(spec.schema()):
                if field["doc"].startswith("Added by StreamPulse") and "default" not in field:
                    assert field["name"] in required_added, (spec.name, field["name"])
