"""Confluent framing, RegistryCodec.decode_batch with a fake registry, DLQ headers and settings.

Bodies are written here with fastavro directly and framed by hand (magic byte 0, big-endian id),
so the expected bytes and values do not come from the code under test.
"""

from __future__ import annotations

import asyncio
import copy
import io
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest

from app.engine.codec import Decoded, DecodeFailure, RegistryCodec, frame, split_frame
from app.engine.dlq import dlq_headers
from app.settings import Settings, load_settings

# -- framing ----------------------------------------------------------------------------------


def header(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


@pytest.mark.parametrize("data", [b"", None])
def test_split_frame_empty(data: bytes | None) -> None:
    result = split_frame(data)
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.magic_byte"


@pytest.mark.parametrize("data", [b"\x01\x00\x00\x00\x01abc", b"\xff", b"{}", b"not avro"])
def test_split_frame_wrong_magic_byte(data: bytes) -> None:
    result = split_frame(data)
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.magic_byte"


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00", b"\x00\x00\x00\x01"])
def test_split_frame_shorter_than_header(data: bytes) -> None:
    result = split_frame(data)
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.malformed"


@pytest.mark.parametrize(
    ("data", "schema_id", "body"),
    [
        (b"\x00\x00\x00\x00\x07\x02hi", 7, b"\x02hi"),
        (b"\x00\x00\x00\x00\x01", 1, b""),
        (b"\x00\x01\x02\x03\x04xyz", 0x01020304, b"xyz"),
        (b"\x00\xff\xff\xff\xff\x00", 0xFFFFFFFF, b"\x00"),
    ],
)
def test_split_frame_good_header(data: bytes, schema_id: int, body: bytes) -> None:
    result = split_frame(data)
    assert not isinstance(result, DecodeFailure)
    got_id, got_body = result
    assert got_id == schema_id
    assert bytes(got_body) == body


@pytest.mark.parametrize(
    ("schema_id", "body", "expected"),
    [
        (7, b"\x02hi", b"\x00\x00\x00\x00\x07\x02hi"),
        (0, b"", b"\x00\x00\x00\x00\x00"),
        (0x01020304, b"z", b"\x00\x01\x02\x03\x04z"),
    ],
)
def test_frame(schema_id: int, body: bytes, expected: bytes) -> None:
    assert frame(schema_id, body) == expected


# -- decode_batch with a fake registry --------------------------------------------------------

TOPIC = "pings"

WRITER_V1 = {
    "type": "record",
    "name": "Ping",
    "namespace": "com.example",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "n", "type": "int"},
    ],
}
# A newer writer: one more field, one more enum symbol.
WRITER_V2 = {
    "type": "record",
    "name": "Ping",
    "namespace": "com.example",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b", "c"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "n", "type": "int"},
        {"name": "extra", "type": "string"},
    ],
}
# A reader that knows an optional field no writer has.
READER_WITH_NOTE = {
    "type": "record",
    "name": "Ping",
    "namespace": "com.example",
    "fields": [
        *WRITER_V1["fields"],
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "weight", "type": "double", "default": 1.5},
    ],
}

AT = 1_754_922_645_123
V1_RECORD = {"id": "p-1", "kind": "b", "at": AT, "n": 300}
V2_RECORD = {"id": "p-2", "kind": "a", "at": AT + 1, "n": -5, "extra": "ignored"}
V2_NEW_SYMBOL = {"id": "p-3", "kind": "c", "at": AT + 2, "n": 1, "extra": "x"}


def body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return buffer.getvalue()


class FakeRegistry:
    """The parts of AsyncSchemaRegistryClient the codec uses, from a dict of id -> schema."""

    def __init__(self, schemas: dict[int, dict[str, Any]], subjects: dict[str, list[int]]):
        self.schemas = schemas
        self.subjects = subjects
        self.by_id_calls: list[int] = []

    async def get_by_id(self, schema_id: int) -> Any:
        self.by_id_calls.append(schema_id)
        raw = self.schemas.get(schema_id)
        return None if raw is None else SimpleNamespace(raw_schema=copy.deepcopy(raw))

    async def get_versions(self, subject: str) -> list[int]:
        return list(range(1, len(self.subjects.get(subject, [])) + 1))

    async def get_schema(self, subject: str, version: int) -> Any:
        schema_id = self.subjects[subject][version - 1]
        raw = SimpleNamespace(raw_schema=copy.deepcopy(self.schemas[schema_id]))
        return SimpleNamespace(schema_id=schema_id, schema=raw, version=version)


def make_codec() -> tuple[RegistryCodec, FakeRegistry]:
    fake = FakeRegistry({1: WRITER_V1, 2: WRITER_V2}, {f"{TOPIC}-value": [1, 2]})
    codec = RegistryCodec("http://registry.invalid", client=fake, max_retries=0)
    return codec, fake


def decode(codec: RegistryCodec, values: list[bytes | None]) -> list[Decoded | DecodeFailure]:
    return asyncio.run(codec.decode_batch(TOPIC, values))


def test_good_record_without_a_reader_schema() -> None:
    codec, fake = make_codec()
    [result] = decode(codec, [header(1) + body(WRITER_V1, V1_RECORD)])
    assert isinstance(result, Decoded)
    assert result.value == {"id": "p-1", "kind": "b", "at": AT, "n": 300}
    assert result.schema_id == 1
    assert result.resolved is False
    assert fake.by_id_calls == [1]


def test_timestamp_millis_stays_an_int() -> None:
    codec, _ = make_codec()
    codec.set_reader_schema(TOPIC, READER_WITH_NOTE)
    results = decode(codec, [header(1) + body(WRITER_V1, V1_RECORD)])
    results += decode(codec, [header(2) + body(WRITER_V2, V2_RECORD)])
    for result in results:
        assert isinstance(result, Decoded)
        assert type(result.value["at"]) is int
    assert [r.value["at"] for r in results] == [AT, AT + 1]


def test_reader_equal_to_writer_is_not_resolved() -> None:
    codec, _ = make_codec()
    codec.set_reader_schema(TOPIC, WRITER_V1)
    [result] = decode(codec, [header(1) + body(WRITER_V1, V1_RECORD)])
    assert isinstance(result, Decoded)
    assert result.value == V1_RECORD
    assert result.resolved is False


def test_unknown_schema_id() -> None:
    codec, fake = make_codec()
    [result] = decode(codec, [header(99) + body(WRITER_V1, V1_RECORD)])
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.unknown_schema"
    assert "99" in result.message
    assert fake.by_id_calls == [99]


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_truncated_body_is_malformed(cut: int) -> None:
    codec, _ = make_codec()
    good = header(1) + body(WRITER_V1, V1_RECORD)
    [result] = decode(codec, [good[:-cut]])
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.malformed"


def test_header_only_is_malformed() -> None:
    codec, _ = make_codec()
    [result] = decode(codec, [header(1)])
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.malformed"


@pytest.mark.parametrize("reader", [None, READER_WITH_NOTE])
@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x01", b"junk"])
def test_trailing_bytes_are_malformed(reader: dict | None, extra: bytes) -> None:
    codec, _ = make_codec()
    if reader is not None:
        codec.set_reader_schema(TOPIC, reader)
    [result] = decode(codec, [header(1) + body(WRITER_V1, V1_RECORD) + extra])
    assert isinstance(result, DecodeFailure)
    assert result.reason == "decode.malformed"


def test_writer_field_unknown_to_the_reader_is_ignored() -> None:
    codec, _ = make_codec()
    codec.set_reader_schema(TOPIC, WRITER_V1)
    [result] = decode(codec, [header(2) + body(WRITER_V2, V2_RECORD)])
    assert isinstance(result, Decoded)
    assert result.value == {"id": "p-2", "kind": "a", "at": AT + 1, "n": -5}
    assert result.schema_id == 2
    assert result.resolved is True


def test_reader_field_missing_from_the_writer_gets_its_default() -> None:
    codec, _ = make_codec()
    codec.set_reader_schema(TOPIC, READER_WITH_NOTE)
    [result] = decode(codec, [header(1) + body(WRITER_V1, V1_RECORD)])
    assert isinstance(result, Decoded)
    assert result.value == {"id": "p-1", "kind": "b", "at": AT, "n": 300, "note": None,
                            "weight": 1.5}  # fmt: skip
    assert result.resolved is True


def test_enum_symbol_unknown_to_the_reader_is_decoded_as_written() -> None:
    codec, _ = make_codec()
    codec.set_reader_schema(TOPIC, WRITER_V1)
    [result] = decode(codec, [header(2) + body(WRITER_V2, V2_NEW_SYMBOL)])
    assert isinstance(result, Decoded)
    assert result.value["kind"] == "c"
    assert result.value["id"] == "p-3"
    assert result.value["at"] == AT + 2
    assert result.schema_id == 2


def test_a_mixed_batch_keeps_its_order_and_fetches_each_id_once() -> None:
    codec, fake = make_codec()
    codec.set_reader_schema(TOPIC, WRITER_V1)
    good1 = header(1) + body(WRITER_V1, V1_RECORD)
    good2 = header(2) + body(WRITER_V2, V2_RECORD)
    values = [good1, b"", good2, b"\x01" + good1[1:], good1, header(42) + b"\x00", None,
              good2 + b"\x00", good1[:3]]  # fmt: skip
    results = decode(codec, values)
    kinds = [r.reason if isinstance(r, DecodeFailure) else r.value["id"] for r in results]
    assert kinds == [
        "p-1", "decode.magic_byte", "p-2", "decode.magic_byte", "p-1",
        "decode.unknown_schema", "decode.magic_byte", "decode.malformed", "decode.malformed",
    ]  # fmt: skip
    assert sorted(fake.by_id_calls) == [1, 2, 42]
    # Known ids are cached: a second batch does not ask the registry again.
    fake.by_id_calls.clear()
    again = decode(codec, [good1, good2])
    assert [r.value["id"] for r in again if isinstance(r, Decoded)] == ["p-1", "p-2"]
    assert fake.by_id_calls == []


def test_warm_loads_every_version_so_decoding_needs_no_lookup() -> None:
    codec, fake = make_codec()
    asyncio.run(codec.warm([f"{TOPIC}-value"]))
    results = decode(codec, [header(2) + body(WRITER_V2, V2_RECORD)])
    assert isinstance(results[0], Decoded)
    assert results[0].value == V2_RECORD
    assert fake.by_id_calls == []


def test_decode_failures_are_returned_not_raised() -> None:
    codec, _ = make_codec()
    garbage = [header(1) + bytes([0xFF] * 12), header(1) + b"\x80\x80\x80\x80\x80\x80\x80"]
    for result in decode(codec, garbage):
        assert isinstance(result, DecodeFailure)
        assert result.reason == "decode.malformed"


# -- DLQ headers ------------------------------------------------------------------------------


def test_dlq_headers_exact_names_and_bytes() -> None:
    headers = dlq_headers("acme-telemetry", 3, 12345, "decode.malformed", "bad body: é")
    assert headers == [
        ("source.topic", b"acme-telemetry"),
        ("source.partition", b"3"),
        ("source.offset", b"12345"),
        ("error.reason", b"decode.malformed"),
        ("error.message", b"bad body: \xc3\xa9"),
    ]


def test_dlq_headers_zero_partition_and_offset() -> None:
    headers = dict(dlq_headers("orders.raw", 0, 0, "validation.required_fields", "x"))
    assert headers["source.partition"] == b"0"
    assert headers["source.offset"] == b"0"
    assert headers["error.reason"] == b"validation.required_fields"


# -- settings ---------------------------------------------------------------------------------

SETTINGS_ENV = (
    "KAFKA_BROKER_URL", "SCHEMA_REGISTRY_URL", "STORE_URL", "WINDOW_SECONDS", "GRACE_SECONDS",
    "WEB_PORT", "WEB_HOST", "TOPIC_PARTITIONS", "PROCESSING_GUARANTEE", "WORKER_CANONICAL_URL",
    "DATA_DIR", "APP_ID", "MAX_BATCH_RECORDS", "IDLE_ADVANCE_SECONDS", "CLOSED_WINDOWS_KEPT",
    "TOPIC_REPLICATION_FACTOR", "RECOVERY_CONSISTENCY_CHECK", "FETCH_MAX_WAIT_MS",
)  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.kafka_broker_url == "kafka://127.0.0.1:9092"
    assert s.schema_registry_url == "http://127.0.0.1:8081"
    assert s.store_url == "rocksdb://"
    assert s.window_seconds == 60
    assert s.grace_seconds == 10
    assert s.window_ms == 60_000
    assert s.grace_ms == 10_000
    assert s.web_port == 6066
    assert s.web_host == "0.0.0.0"
    assert s.topic_partitions == 8
    assert s.processing_guarantee == "at_least_once"
    assert s.canonical_url is None
    assert str(s.data_dir) == "data"
    assert s.app_id == "streampulse"
    assert s.max_batch_records == 10000
    assert s.fetch_max_wait_ms == 100
    assert s.idle_advance_seconds == 5.0
    assert s.closed_windows_kept == 5
    assert s.topic_replication_factor == 1
    assert s.recovery_consistency_check is True
    assert s.broker_bootstrap == "127.0.0.1:9092"


def test_settings_empty_values_mean_defaults(clean_env: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_ENV:
        clean_env.setenv(name, "")
    assert load_settings() == Settings()


def test_settings_env_overrides(clean_env: pytest.MonkeyPatch) -> None:
    env = {
        "KAFKA_BROKER_URL": "kafka://b1:9093;kafka://b2:9094",
        "SCHEMA_REGISTRY_URL": "http://registry:8081/",
        "STORE_URL": "memory://",
        "WINDOW_SECONDS": "10",
        "GRACE_SECONDS": "0",
        "WEB_PORT": "7000",
        "WEB_HOST": "127.0.0.1",
        "TOPIC_PARTITIONS": "4",
        "PROCESSING_GUARANTEE": "exactly_once",
        "WORKER_CANONICAL_URL": "http://w-0.workers:7000",
        "DATA_DIR": "/tmp/sp-data",
        "APP_ID": "sp-test",
        "MAX_BATCH_RECORDS": "250",
        "FETCH_MAX_WAIT_MS": "500",
        "IDLE_ADVANCE_SECONDS": "2.5",
        "CLOSED_WINDOWS_KEPT": "0",
        "TOPIC_REPLICATION_FACTOR": "3",
        "RECOVERY_CONSISTENCY_CHECK": "false",
    }
    for name, value in env.items():
        clean_env.setenv(name, value)
    s = load_settings()
    assert s.kafka_broker_url == "kafka://b1:9093;kafka://b2:9094"
    assert s.broker_bootstrap == "b1:9093,b2:9094"
    assert s.schema_registry_url == "http://registry:8081"  # trailing slash dropped
    assert s.store_url == "memory://"
    assert (s.window_seconds, s.window_ms) == (10, 10_000)
    assert (s.grace_seconds, s.grace_ms) == (0, 0)
    assert s.web_port == 7000
    assert s.web_host == "127.0.0.1"
    assert s.topic_partitions == 4
    assert s.processing_guarantee == "exactly_once"
    assert s.canonical_url == "http://w-0.workers:7000"
    assert str(s.data_dir) == "/tmp/sp-data"
    assert s.app_id == "sp-test"
    assert s.max_batch_records == 250
    assert s.fetch_max_wait_ms == 500
    assert s.idle_advance_seconds == 2.5
    assert s.closed_windows_kept == 0
    assert s.topic_replication_factor == 3
    assert s.recovery_consistency_check is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True),
     ("0", False), ("False", False), ("no", False), ("off", False)],
)  # fmt: skip
def test_settings_booleans(clean_env: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    clean_env.setenv("RECOVERY_CONSISTENCY_CHECK", raw)
    assert load_settings().recovery_consistency_check is expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("WINDOW_SECONDS", "abc"),
        ("WINDOW_SECONDS", "1.5"),
        ("WINDOW_SECONDS", "0"),
        ("WINDOW_SECONDS", "-60"),
        ("GRACE_SECONDS", "-1"),
        ("GRACE_SECONDS", "ten"),
        ("WEB_PORT", "0"),
        ("WEB_PORT", "http"),
        ("TOPIC_PARTITIONS", "0"),
        ("MAX_BATCH_RECORDS", "0"),
        ("FETCH_MAX_WAIT_MS", "0"),
        ("FETCH_MAX_WAIT_MS", "fast"),
        ("CLOSED_WINDOWS_KEPT", "-1"),
        ("TOPIC_REPLICATION_FACTOR", "0"),
        ("IDLE_ADVANCE_SECONDS", "soon"),
        ("RECOVERY_CONSISTENCY_CHECK", "maybe"),
        ("PROCESSING_GUARANTEE", "exactly_twice"),
        ("PROCESSING_GUARANTEE", "AT_LEAST_ONCE"),
    ],
)
def test_settings_invalid_values_name_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    clean_env.setenv(name, raw)
    with pytest.raises(ValueError, match=name):
        load_settings()


@pytest.mark.parametrize("raw", ["-1", "nan", "-inf"])
def test_settings_idle_advance_seconds_must_be_a_non_negative_number(
    clean_env: pytest.MonkeyPatch, raw: str
) -> None:
    # A negative (or NaN) idle time makes every source partition count as idle at once, so the
    # watermark follows the newest source instead of the slowest one and lagging partitions'
    # events turn late: an invalid value that must fail at start like the integer knobs do.
    clean_env.setenv("IDLE_ADVANCE_SECONDS", raw)
    with pytest.raises(ValueError, match="IDLE_ADVANCE_SECONDS"):
        load_settings()
