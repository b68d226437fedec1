"""Confluent wire-format Avro codec backed by the Schema Registry.

Wire format: byte 0 is the magic byte 0x00, bytes 1-4 the big-endian schema id, then the Avro
binary body. Decoding resolves the writer's schema (fetched by id, cached) against the reader
schema we were built with, so newer writers are read by older readers and unknown fields are
ignored (seed 004). Bytes that cannot be decoded are reported with the contract's DLQ reasons
instead of raising into the stream (lessons: a raise inside a Faust codec ends the agent).

The registry is reached with python-schema-registry-client's async client only: the sync client
would block the event loop. Schemas are cached per id and per subject, and warmed at start.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from schema_registry.client import AsyncSchemaRegistryClient
from schema_registry.client.schema import AvroSchema

from app.engine import metrics

__all__ = [
    "MAGIC_BYTE",
    "DecodeFailure",
    "Decoded",
    "RegistryCodec",
    "RegistryUnavailable",
    "frame",
    "parse_raw",
    "split_frame",
]

log = logging.getLogger(__name__)

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")

REASON_MAGIC_BYTE = "decode.magic_byte"
REASON_UNKNOWN_SCHEMA = "decode.unknown_schema"
REASON_MALFORMED = "decode.malformed"


#: Longest back-off between two registry attempts.
MAX_RETRY_SECONDS = 10.0
#: Awaited at least once a second while a registry call waits to be retried.
OnWait = Callable[[], Awaitable[None]]


class RegistryUnavailable(RuntimeError):
    """The registry did not answer: a transient outage, never a reason to dead-letter data."""


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """Why one message could not be decoded (``reason`` is a contract DLQ reason)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded record and the id of the schema it was written with."""

    value: dict[str, Any]
    schema_id: int
    resolved: bool  # True when the reader schema differs from the writer's


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def split_frame(data: bytes | None) -> tuple[int, memoryview] | DecodeFailure:
    """Return (schema id, body) or the reason the header is unusable."""
    if not data:
        return DecodeFailure(REASON_MAGIC_BYTE, "empty message: no Confluent header")
    if data[0] != MAGIC_BYTE:
        return DecodeFailure(
            REASON_MAGIC_BYTE, f"magic byte is 0x{data[0]:02x}, expected 0x00"
        )
    if len(data) < _HEADER.size:
        return DecodeFailure(
            REASON_MALFORMED, f"message of {len(data)} bytes is shorter than the 5-byte header"
        )
    _, schema_id = _HEADER.unpack_from(data)
    return schema_id, memoryview(data)[_HEADER.size :]


def _without_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` with ``logicalType`` removed: timestamps stay epoch-millis ints and
    UUIDs strings, which is what the aggregation code works with, and much cheaper than
    building datetime objects per event."""
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema


def parse_raw(schema: dict[str, Any]) -> Any:
    """Parse ``schema`` for our reader/writer: logical types read and written as their base type."""
    return fastavro.parse_schema(_without_logical_types(schema))


def _canonical(schema: dict[str, Any]) -> str:
    return json.dumps(fastavro.schema.to_parsing_canonical_form(schema), sort_keys=True)


class RegistryCodec:
    """Decode and encode Confluent-framed Avro with schemas from the registry.

    One instance serves the whole worker: it keeps the id -> writer schema cache, the
    subject -> id cache for encoding, and a parsed reader schema per source topic.
    """

    def __init__(
        self,
        registry_url: str,
        *,
        client: AsyncSchemaRegistryClient | None = None,
        retry_seconds: float = 1.0,
        max_retries: int | None = None,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        self.registry_url = registry_url
        self.max_message_bytes = max_message_bytes
        self._client = client or AsyncSchemaRegistryClient(url=registry_url)
        self._writer_schemas: dict[int, Any] = {}
        self._unknown_ids: set[int] = set()
        self._readers: dict[str, Any] = {}
        self._reader_canonical: dict[str, str] = {}
        self._writer_canonical: dict[int, str] = {}
        self._subject_ids: dict[tuple[str, str], int] = {}
        self._encode_schemas: dict[int, Any] = {}
        self._lock = asyncio.Lock()
        self._retry_seconds = retry_seconds
        self._max_retries = max_retries
        self._stalled_calls = 0

    # -- reader schemas ---------------------------------------------------------------------

    def set_reader_schema(self, topic: str, schema: dict[str, Any]) -> None:
        """Records of ``topic`` are decoded into this schema's shape."""
        self._readers[topic] = parse_raw(schema)
        self._reader_canonical[topic] = _canonical(schema)

    # -- registry access -------------------------------------------------------------------

    @property
    def stalled(self) -> bool:
        """Whether a registry call is failing and being retried right now (readiness)."""
        return self._stalled_calls > 0

    async def _with_retries(self, what: str, call: Any, on_wait: OnWait | None = None) -> Any:
        """``call()``, retried with exponential back-off (``retry_seconds`` doubling up to
        :data:`MAX_RETRY_SECONDS`) while the registry fails; ``on_wait()`` is awaited at least
        once a second meanwhile (the pipeline keeps its table partitions' watermarks held)."""
        attempt = 0
        counted = False  # in _stalled_calls
        try:
            while True:
                try:
                    result = await call()
                except Exception as exc:  # httpx errors, ClientError on 5xx
                    attempt += 1
                    metrics.REGISTRY_REQUESTS.labels(outcome="error").inc()
                    if self._max_retries is not None and attempt > self._max_retries:
                        raise RegistryUnavailable(f"{what}: {exc}") from exc
                    if not counted:
                        self._stalled_calls += 1
                        counted = True
                    delay = min(MAX_RETRY_SECONDS, self._retry_seconds * 2 ** (attempt - 1))
                    log.warning("registry %s failed (%s); retry %d in %.1fs",
                                what, exc, attempt, delay)  # fmt: skip
                    await self._wait(delay, on_wait)
                    continue
                return result
        finally:
            if counted:
                self._stalled_calls -= 1

    @staticmethod
    async def _wait(seconds: float, on_wait: OnWait | None) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if on_wait is not None:
                try:
                    await on_wait()
                except Exception as exc:  # a hold that cannot be sent: the retry goes on
                    log.warning("while waiting on the registry: %r", exc)
            await asyncio.sleep(min(1.0, left))

    async def writer_schema(self, schema_id: int, on_wait: OnWait | None = None) -> Any | None:
        """The parsed writer schema of ``schema_id``, or None when the registry has no such id.
        While the registry is down this waits (``on_wait``: see :meth:`_with_retries`)."""
        if schema_id in self._writer_schemas:
            return self._writer_schemas[schema_id]
        if schema_id in self._unknown_ids:
            return None
        async with self._lock:
            if schema_id in self._writer_schemas:
                return self._writer_schemas[schema_id]
            schema = await self._with_retries(
                f"get schema id {schema_id}", lambda: self._client.get_by_id(schema_id), on_wait
            )
            if schema is None:
                metrics.REGISTRY_REQUESTS.labels(outcome="not_found").inc()
                # Remembered only briefly: the id may be registered a moment later.
                self._unknown_ids.add(schema_id)
                asyncio.get_running_loop().call_later(
                    30.0, self._unknown_ids.discard, schema_id
                )
                return None
            metrics.REGISTRY_REQUESTS.labels(outcome="ok").inc()
            raw = schema.raw_schema
            self._writer_schemas[schema_id] = parse_raw(raw)
            self._writer_canonical[schema_id] = _canonical(raw)
            return self._writer_schemas[schema_id]

    async def warm(self, subjects: Iterable[str]) -> None:
        """Fetch every version of ``subjects`` so the hot path never waits on the registry."""
        for subject in subjects:
            versions = await self._with_retries(
                f"list versions of {subject}", lambda s=subject: self._client.get_versions(s)
            )
            for version in versions or []:
                found = await self._with_retries(
                    f"get {subject} v{version}",
                    lambda s=subject, v=version: self._client.get_schema(s, v),
                )
                if found is not None and found.schema_id not in self._writer_schemas:
                    raw = found.schema.raw_schema
                    self._writer_schemas[found.schema_id] = parse_raw(raw)
                    self._writer_canonical[found.schema_id] = _canonical(raw)
            metrics.REGISTRY_REQUESTS.labels(outcome="ok").inc()

    async def schema_id_for(self, subject: str, schema: dict[str, Any]) -> int:
        """Register (idempotently) ``schema`` under ``subject`` and return its id, cached."""
        key = (subject, _canonical(schema))
        cached = self._subject_ids.get(key)
        if cached is not None:
            return cached
        schema_id = await self._with_retries(
            f"register {subject}",
            lambda: self._client.register(subject, AvroSchema(json.dumps(schema))),
        )
        metrics.REGISTRY_REQUESTS.labels(outcome="ok").inc()
        self._subject_ids[key] = schema_id
        self._encode_schemas[schema_id] = parse_raw(schema)
        return schema_id

    # -- decoding ----------------------------------------------------------------------------

    async def decode_batch(
        self, topic: str, values: Sequence[bytes | None], on_wait: OnWait | None = None
    ) -> list[Decoded | DecodeFailure]:
        """Decode every value of a batch; failures come back in place, never raised.

        Schema ids are resolved once per batch (one registry round trip per new id), then the
        bodies are decoded in a tight loop. A new id while the registry is down holds the
        whole batch (nothing skipped, nothing overtaking it), ``on_wait()`` awaited meanwhile.
        """
        limit = self.max_message_bytes
        headers: list[tuple[int, memoryview] | DecodeFailure] = [
            split_frame(v)
            if v is None or len(v) <= limit
            else DecodeFailure(
                REASON_MALFORMED, f"message of {len(v):,} bytes exceeds MAX_MESSAGE_BYTES={limit:,}"
            )
            for v in values
        ]
        ids = {h[0] for h in headers if not isinstance(h, DecodeFailure)}
        for schema_id in ids:
            if schema_id not in self._writer_schemas:
                await self.writer_schema(schema_id, on_wait)
        reader = self._readers.get(topic)
        reader_canonical = self._reader_canonical.get(topic)
        writers = self._writer_schemas
        writer_canonical = self._writer_canonical
        schemaless_reader = fastavro.schemaless_reader
        out: list[Decoded | DecodeFailure] = []
        append = out.append
        for header in headers:
            if isinstance(header, DecodeFailure):
                append(header)
                continue
            schema_id, body = header
            writer = writers.get(schema_id)
            if writer is None:
                append(
                    DecodeFailure(
                        REASON_UNKNOWN_SCHEMA,
                        f"schema id {schema_id} is not known to the registry",
                    )
                )
                continue
            resolve = reader is not None and writer_canonical[schema_id] != reader_canonical
            buffer = io.BytesIO(body)
            try:
                value = schemaless_reader(buffer, writer, reader if resolve else None)
            except SchemaResolutionError:
                # The writer uses something the reader cannot map (typically an enum symbol
                # added by a newer producer). Read it as written; validation classifies it.
                buffer.seek(0)
                try:
                    value = schemaless_reader(buffer, writer, None)
                except Exception as exc:
                    append(DecodeFailure(REASON_MALFORMED, f"Avro body unreadable: {exc!r}"))
                    continue
            except Exception as exc:  # EOFError, IndexError, UnicodeDecodeError, ...
                append(
                    DecodeFailure(
                        REASON_MALFORMED,
                        f"Avro body unreadable with schema id {schema_id}: {exc!r}",
                    )
                )
                continue
            left = len(body) - buffer.tell()
            if left:
                append(
                    DecodeFailure(
                        REASON_MALFORMED,
                        f"{left} trailing bytes after the record (schema id {schema_id})",
                    )
                )
                continue
            append(Decoded(value, schema_id, resolve))
        return out

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, schema_id: int, record: dict[str, Any]) -> bytes:
        """Frame ``record`` with a schema id obtained from :meth:`schema_id_for`."""
        buffer = io.BytesIO()
        buffer.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        fastavro.schemaless_writer(buffer, self._encode_schemas[schema_id], record)
        return buffer.getvalue()

    async def close(self) -> None:
        aclose = getattr(self._client, "aclose", None) or getattr(self._client, "close", None)
        if aclose is not None:
            result = aclose()
            if asyncio.iscoroutine(result):
                await result
