"""The registry driven by real clients: python-schema-registry-client and confluent-kafka.

Register, serialize, deserialize, evolve a ContentDownload-like schema (v2 adds an optional field)
and reject an incompatible change with 409, as a Confluent registry would.
"""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from schema_registry.client import AsyncSchemaRegistryClient, SchemaRegistryClient
from schema_registry.client.errors import ClientError
from schema_registry.client.schema import AvroSchema
from schema_registry.serializers import AsyncAvroMessageSerializer, AvroMessageSerializer

TOPIC = "content-downloads"
SUBJECT = f"{TOPIC}-value"

DOWNLOAD_V1 = {
    "type": "record",
    "name": "ContentDownloadEvent",
    "namespace": "com.streampulse.test.downloads",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "content_id", "type": "string"},
        {
            "name": "status",
            "type": {
                "type": "enum",
                "name": "DownloadStatus",
                "symbols": ["started", "completed", "failed"],
            },
        },
        {"name": "bytes_downloaded", "type": "long"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}

DOWNLOAD_V2 = copy.deepcopy(DOWNLOAD_V1)
DOWNLOAD_V2["fields"].append(
    {"name": "device_type", "type": ["null", "string"], "default": None, "doc": "Added in v2."}
)

# Breaking under BACKWARD: a new field without a default (v2 readers cannot read v1 data).
DOWNLOAD_BAD = copy.deepcopy(DOWNLOAD_V2)
DOWNLOAD_BAD["fields"].append({"name": "region", "type": "string"})

EVENT_V1 = {
    "event_id": "EVENT_0001",
    "user_id": "USER_42",
    "content_id": "TITLE_7",
    "status": "completed",
    "bytes_downloaded": 123_456_789,
    "occurred_at": 1_700_000_000_000,
}


def _plain(record: dict) -> dict:
    """Decoded timestamps come back as datetimes; compare on epoch millis."""
    out = dict(record)
    if hasattr(out.get("occurred_at"), "timestamp"):
        out["occurred_at"] = round(out["occurred_at"].timestamp() * 1000)
    return out


# python-schema-registry-client


def test_sync_client_register_serialize_evolve_and_reject(registry):
    client = SchemaRegistryClient(url=registry.url)
    v1, v2 = AvroSchema(DOWNLOAD_V1), AvroSchema(DOWNLOAD_V2)

    id_v1 = client.register(SUBJECT, v1)
    assert client.register(SUBJECT, v1) == id_v1  # idempotent (via POST /subjects/{s})
    assert client.get_compatibility() == "BACKWARD"  # global config, fetched as /config/

    writer = AvroMessageSerializer(client)
    message_v1 = writer.encode_record_with_schema(SUBJECT, v1, EVENT_V1)
    assert message_v1[0] == 0 and int.from_bytes(message_v1[1:5], "big") == id_v1
    assert _plain(writer.decode_message(message_v1)) == EVENT_V1

    assert client.test_compatibility(SUBJECT, v2) is True
    id_v2 = client.register(SUBJECT, v2)
    assert id_v2 != id_v1
    assert client.get_versions(SUBJECT) == [1, 2]
    latest = client.get_schema(SUBJECT)
    assert (latest.version, latest.schema_id) == (2, id_v2)

    # A v2 reader resolves v1 data (default fills the new field); v2 data decodes as written.
    reader = AvroMessageSerializer(client, reader_schema=v2.schema)
    assert _plain(reader.decode_message(message_v1)) == {**EVENT_V1, "device_type": None}
    message_v2 = writer.encode_record_with_schema(SUBJECT, v2, {**EVENT_V1, "device_type": "tv"})
    assert int.from_bytes(message_v2[1:5], "big") == id_v2
    assert writer.decode_message(message_v2)["device_type"] == "tv"

    bad = AvroSchema(DOWNLOAD_BAD)
    assert client.test_compatibility(SUBJECT, bad) is False
    verbose = client.test_compatibility(SUBJECT, bad, verbose=True)
    assert verbose["is_compatible"] is False and any("region" in m for m in verbose["messages"])
    with pytest.raises(ClientError) as raised:
        client.register(SUBJECT, bad)
    assert raised.value.http_code == 409
    assert raised.value.server_traceback["error_code"] == 409
    assert client.get_versions(SUBJECT) == [1, 2]

    # Same schema under another subject: same global id.
    assert client.register("other-value", v1) == id_v1
    assert client.get_by_id(id_v1).raw_schema == DOWNLOAD_V1
    usages = client.get_schema_subject_versions(id_v1)
    assert sorted((sv.subject, sv.version) for sv in usages) == [(SUBJECT, 1), ("other-value", 1)]
    client.update_compatibility("FULL", SUBJECT)
    assert client.get_compatibility(SUBJECT) == "FULL"


def test_async_client_register_serialize_evolve_and_reject(registry):
    async def scenario() -> None:
        client = AsyncSchemaRegistryClient(url=registry.url)
        v1, v2 = AvroSchema(DOWNLOAD_V1), AvroSchema(DOWNLOAD_V2)
        ids = await asyncio.gather(*(client.register(SUBJECT, v1) for _ in range(5)))
        assert len(set(ids)) == 1

        serializer = AsyncAvroMessageSerializer(client)
        message_v1 = await serializer.encode_record_with_schema(SUBJECT, v1, EVENT_V1)
        id_v2 = await client.register(SUBJECT, v2)
        reader = AsyncAvroMessageSerializer(client, reader_schema=v2.schema)
        decoded = await reader.decode_message(message_v1)
        assert _plain(decoded) == {**EVENT_V1, "device_type": None}
        assert (await client.get_schema(SUBJECT, "latest")).schema_id == id_v2

        with pytest.raises(ClientError) as raised:
            await client.register(SUBJECT, AvroSchema(DOWNLOAD_BAD))
        assert raised.value.http_code == 409
        assert await client.get_versions(SUBJECT) == [1, 2]

    asyncio.run(scenario())


# confluent-kafka


def test_confluent_kafka_serializer_round_trip_evolve_and_reject(registry):
    client = ConfluentClient({"url": registry.url})
    ctx = SerializationContext(TOPIC, MessageField.VALUE)

    serialize_v1 = AvroSerializer(client, json.dumps(DOWNLOAD_V1))  # auto-registers
    payload_v1 = serialize_v1(EVENT_V1, ctx)
    id_v1 = int.from_bytes(payload_v1[1:5], "big")
    assert client.get_latest_version(SUBJECT).schema_id == id_v1

    deserialize = AvroDeserializer(client)  # writer's schema, fetched by id
    assert _plain(deserialize(payload_v1, ctx)) == EVENT_V1

    v2 = Schema(json.dumps(DOWNLOAD_V2), "AVRO")
    assert client.test_compatibility(SUBJECT, v2) is True
    serialize_v2 = AvroSerializer(client, json.dumps(DOWNLOAD_V2))
    payload_v2 = serialize_v2({**EVENT_V1, "device_type": "tv"}, ctx)
    id_v2 = int.from_bytes(payload_v2[1:5], "big")
    assert id_v2 != id_v1
    assert client.get_versions(SUBJECT) == [1, 2]
    registered = client.lookup_schema(SUBJECT, v2)
    assert (registered.schema_id, registered.version) == (id_v2, 2)

    reader_v2 = AvroDeserializer(client, json.dumps(DOWNLOAD_V2))
    assert _plain(reader_v2(payload_v1, ctx)) == {**EVENT_V1, "device_type": None}
    assert reader_v2(payload_v2, ctx)["device_type"] == "tv"

    bad = Schema(json.dumps(DOWNLOAD_BAD), "AVRO")
    assert client.test_compatibility(SUBJECT, bad) is False
    with pytest.raises(SchemaRegistryError) as raised:
        client.register_schema(SUBJECT, bad)
    assert raised.value.http_status_code == 409
    assert raised.value.error_code == 409
    with pytest.raises(SchemaRegistryError) as raised:
        AvroSerializer(client, json.dumps(DOWNLOAD_BAD))({**EVENT_V1, "region": "eu"}, ctx)
    assert raised.value.error_code == 409

    assert client.get_schema_types() == ["AVRO"]
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(SUBJECT, "FORWARD") == {"compatibility": "FORWARD"}
    assert client.get_compatibility(SUBJECT) == "FORWARD"
    assert sorted(client.get_subjects()) == [SUBJECT]
    assert client.delete_subject(SUBJECT) == [1, 2]
    assert client.get_subjects() == []
    assert client.delete_subject(SUBJECT, permanent=True) == [1, 2]
    # The id stays readable by confluent-kafka only while some version references it.
    with pytest.raises(SchemaRegistryError) as raised:
        ConfluentClient({"url": registry.url}).get_schema(id_v1)
    assert raised.value.error_code == 40403


def test_confluent_kafka_client_errors_carry_codes(registry):
    client = ConfluentClient({"url": registry.url})
    with pytest.raises(SchemaRegistryError) as raised:
        client.get_latest_version("nope-value")
    assert (raised.value.http_status_code, raised.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as raised:
        client.register_schema("p-value", Schema('syntax = "proto3";', "PROTOBUF"))
    assert (raised.value.http_status_code, raised.value.error_code) == (422, 42201)
    assert "only AVRO" in raised.value.error_message
