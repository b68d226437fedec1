"""Schema evolution through the real registry: ContentDownloadEvent v1 -> v2 (seed 004).

Schemas are registered and events serialized with confluent-kafka's SchemaRegistryClient and
AvroSerializer (an independent client); RegistryCodec then decodes them with a v1 (or v2) reader
schema. The expected values are the produced events themselves, with Avro ``float`` fields
narrowed to 32 bits and the fields the reader does not know removed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import struct
from typing import Any

import pytest

from app.catalog import SCHEMA_DIR
from app.engine.codec import Decoded, RegistryCodec
from app.tools.simulator.downloads import ContentDownloadFactory, ContentDownloadV2Factory
from app.tools.simulator.population import Population

pytestmark = pytest.mark.integration

TOPIC = "content-downloads"
SUBJECT = "content-downloads-value"
V1_PATH = SCHEMA_DIR / "downloads/ContentDownloadEvent.avsc"
V2_PATH = SCHEMA_DIR / "downloads/ContentDownloadEvent.v2.avsc"
NOW_MS = 1_754_922_600_000


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def as_read(event: dict[str, Any], *, drop_rating: bool) -> dict[str, Any]:
    """What a reader gets back: Avro floats are 32-bit; a v1 reader has no content_rating."""
    out = copy.deepcopy(event)
    out["content"]["price"] = f32(out["content"]["price"])
    out["download"]["speed_mbps"] = f32(out["download"]["speed_mbps"])
    if drop_rating:
        out.pop("content_rating", None)
    return out


def make_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    population = Population(seed=4, size=60)
    rng = random.Random(2025)
    v2 = [ContentDownloadV2Factory(population).make(rng, NOW_MS + i)[1] for i in range(40)]
    v1 = [ContentDownloadFactory(population).make(rng, NOW_MS + 100 + i)[1] for i in range(20)]
    # The sample must exercise both a set and a null rating, and no v1 event has the field.
    assert any(e["content_rating"] for e in v2)
    assert any(e["content_rating"] is None for e in v2)
    assert all("content_rating" not in e for e in v1)
    return v1, v2


def register_and_serialize(
    registry_url: str, v1: list[dict[str, Any]], v2: list[dict[str, Any]]
) -> tuple[int, int, list[bytes], list[bytes]]:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient({"url": registry_url})
    v1_str, v2_str = V1_PATH.read_text(), V2_PATH.read_text()
    assert registry.get_compatibility() == "BACKWARD"
    v1_id = registry.register_schema(SUBJECT, Schema(v1_str, "AVRO"))
    assert registry.test_compatibility(SUBJECT, Schema(v2_str, "AVRO")) is True
    v2_id = registry.register_schema(SUBJECT, Schema(v2_str, "AVRO"))
    assert v2_id != v1_id
    assert registry.get_versions(SUBJECT) == [1, 2]
    assert registry.lookup_schema(SUBJECT, Schema(v1_str, "AVRO")).version == 1
    assert registry.lookup_schema(SUBJECT, Schema(v2_str, "AVRO")).version == 2

    conf = {"auto.register.schemas": False}
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    ser_v1 = AvroSerializer(registry, v1_str, conf=conf)
    ser_v2 = AvroSerializer(registry, v2_str, conf=conf)
    v1_bytes = [ser_v1(e, ctx) for e in v1]
    v2_bytes = [ser_v2(e, ctx) for e in v2]
    # Confluent framing, checked by hand: magic byte 0 and the big-endian schema id.
    assert all(b[0] == 0 and int.from_bytes(b[1:5], "big") == v1_id for b in v1_bytes)
    assert all(b[0] == 0 and int.from_bytes(b[1:5], "big") == v2_id for b in v2_bytes)
    return v1_id, v2_id, v1_bytes, v2_bytes


async def decode_with(registry_url: str, reader: dict[str, Any], values: list[bytes]) -> list:
    codec = RegistryCodec(registry_url, max_retries=3)
    try:
        codec.set_reader_schema(TOPIC, reader)
        return await codec.decode_batch(TOPIC, values)
    finally:
        await codec.close()


def test_v2_events_read_by_a_v1_reader_and_v1_events_by_a_v2_reader(stack) -> None:
    v1_events, v2_events = make_events()
    v1_id, v2_id, v1_bytes, v2_bytes = register_and_serialize(
        stack.registry_url, v1_events, v2_events
    )
    v1_schema = json.loads(V1_PATH.read_text())
    v2_schema = json.loads(V2_PATH.read_text())

    # A v1 reader: v2 events come back in the v1 shape, v1 events as written.
    results = asyncio.run(decode_with(stack.registry_url, v1_schema, v2_bytes + v1_bytes))
    assert len(results) == len(v2_events) + len(v1_events)
    for event, result in zip(v2_events, results[: len(v2_events)], strict=True):
        assert isinstance(result, Decoded), result
        assert result.schema_id == v2_id
        assert result.resolved is True
        assert "content_rating" not in result.value
        assert result.value == as_read(event, drop_rating=True)
        assert type(result.value["timestamp"]) is int
    for event, result in zip(v1_events, results[len(v2_events) :], strict=True):
        assert isinstance(result, Decoded), result
        assert result.schema_id == v1_id
        assert result.resolved is False
        assert result.value == as_read(event, drop_rating=True)

    # A v2 reader: v1 events get the default null rating, v2 events keep theirs.
    results = asyncio.run(decode_with(stack.registry_url, v2_schema, v1_bytes + v2_bytes))
    for event, result in zip(v1_events, results[: len(v1_events)], strict=True):
        assert isinstance(result, Decoded), result
        assert result.schema_id == v1_id
        assert result.resolved is True
        assert result.value["content_rating"] is None
        assert result.value == {**as_read(event, drop_rating=False), "content_rating": None}
    for event, result in zip(v2_events, results[len(v1_events) :], strict=True):
        assert isinstance(result, Decoded), result
        assert result.schema_id == v2_id
        assert result.resolved is False
        assert result.value["content_rating"] == event["content_rating"]
        assert result.value == as_read(event, drop_rating=False)
