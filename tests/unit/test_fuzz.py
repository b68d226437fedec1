"""Bad input at every door (hypothesis): random and mutated Confluent frames through the
decoder, random records through every domain's rules, and whatever passes the rules through
every aggregate. Nothing may raise past the DLQ path: the decoder answers a
:class:`DecodeFailure`, a rule a :class:`Violation` (or the pipeline's ``rule_error``), and a
record the rules accept must fold into every aggregate of its domain.
"""

from __future__ import annotations

import asyncio
import copy
import io
import math
import random
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from faust.types import TP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import DOMAINS
from app.catalog import SOURCE_TOPICS
from app.engine.batching import SourceBatch
from app.engine.codec import (
    REASON_MALFORMED,
    Decoded,
    DecodeFailure,
    RegistryCodec,
    frame,
    parse_raw,
)
from app.engine.domain import Domain
from app.engine.pipeline import SourcePipeline
from app.engine.windowing import build_partials
from app.tools.simulator import downloads, lens, orders
from app.tools.simulator.population import Population
from app.tools.simulator.telemetry import TelemetryFactory
from app.validation import UNKNOWN_EVENT_TYPE, Violation
from tests.unit.test_codec import FakeRegistry

NOW_MS = 1_754_922_600_000
DOMAIN_BY_TOPIC: dict[str, Domain] = {d.topic: d for d in DOMAINS}
SCHEMA_IDS = {topic: i + 1 for i, topic in enumerate(DOMAIN_BY_TOPIC)}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_events() -> dict[str, list[dict[str, Any]]]:
    """A few simulator events per consumed topic (schema-valid, rule-valid)."""
    rng = random.Random(3)
    population = Population(3)
    factories = {
        "acme-telemetry": TelemetryFactory(seed=3),
        "content-downloads": downloads.factories(population)[0],
        "orders.raw": orders.factories(population)[0],
        **{factory.topic: factory for factory in lens.factories(population)},
    }
    factories = {topic: f for topic, f in factories.items() if topic in DOMAIN_BY_TOPIC}
    assert set(factories) == set(DOMAIN_BY_TOPIC), "a new domain: add its factory here"
    return {
        topic: [factory.make(rng, NOW_MS + i * 1000)[1] for i in range(20)]
        for topic, factory in factories.items()
    }


EVENTS = valid_events()


def encode(topic: str, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parse_raw(SOURCE_TOPICS[topic].schema()), record)
    return frame(SCHEMA_IDS[topic], buffer.getvalue())


def make_codec(max_message_bytes: int = 1024 * 1024) -> RegistryCodec:
    registry = FakeRegistry(
        {SCHEMA_IDS[t]: SOURCE_TOPICS[t].schema() for t in SCHEMA_IDS},
        {f"{t}-value": [SCHEMA_IDS[t]] for t in SCHEMA_IDS},
    )
    codec = RegistryCodec(
        "http://registry.invalid", client=registry, max_retries=0,
        max_message_bytes=max_message_bytes,
    )  # fmt: skip
    for topic in SCHEMA_IDS:
        codec.set_reader_schema(topic, SOURCE_TOPICS[topic].schema())
    return codec


CODEC = make_codec()


def through_the_door(topic: str, values: list[bytes | None]) -> list[Any]:
    """Decode, validate and aggregate as the pipeline does; return the decode results."""
    results = asyncio.run(CODEC.decode_batch(topic, values))
    assert len(results) == len(values)
    domain = DOMAIN_BY_TOPIC[topic]
    for result in results:
        assert isinstance(result, Decoded | DecodeFailure)
        if isinstance(result, DecodeFailure):
            assert result.reason.startswith("decode.") and result.message
            continue
        passes_rules(domain, result.value)
    return results


def passes_rules(domain: Domain, record: dict[str, Any]) -> bool:
    """Run the domain's rules (they must not raise); fold what they accept (must not raise)."""
    violation = domain.validate(record)
    if violation is not None:
        assert isinstance(violation, Violation) and violation.reason and violation.message
        return False
    for aggregate in domain.aggregates:
        partials = build_partials(aggregate, [record], 60_000, domain.time_field)
        for windows in partials.values():
            for acc in windows.values():
                metrics = aggregate.extract(acc)
                assert all(
                    not isinstance(v, float) or math.isfinite(v) for v in metrics.values()
                ), (aggregate.table, metrics)
    return True


topics = st.sampled_from(sorted(DOMAIN_BY_TOPIC))


@FUZZ
@given(topic=topics, data=st.binary(max_size=600))
def test_random_bytes_never_raise(topic: str, data: bytes) -> None:
    through_the_door(topic, [data, b"\x00" + data, frame(SCHEMA_IDS[topic], data)])


@st.composite
def mutated_frames(draw: Any) -> tuple[str, bytes]:
    """A valid frame of a topic, then flipped, cut, inserted or deleted bytes."""
    topic = draw(topics)
    good = bytearray(encode(topic, draw(st.sampled_from(EVENTS[topic]))))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "varint"]))
        at = draw(st.integers(0, max(0, len(good) - 1)))
        if kind == "flip" and good:
            good[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del good[at:]
        elif kind == "insert":
            good[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and good:
            del good[at]
        elif kind == "varint":  # a huge declared length or count (zigzag varint of ~2^62)
            good[at:at] = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"
    return topic, bytes(good)


@FUZZ
@given(case=mutated_frames())
def test_mutated_frames_never_raise(case: tuple[str, bytes]) -> None:
    topic, data = case
    through_the_door(topic, [data])


def test_a_huge_declared_length_fails_fast_without_allocating() -> None:
    """A string length of 2^62 bytes in a 40-byte message: unreadable, not a 4 EB read."""
    for topic in SCHEMA_IDS:
        data = frame(SCHEMA_IDS[topic], b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + b"x" * 30)
        [result] = through_the_door(topic, [data])
        assert isinstance(result, DecodeFailure) and result.reason == REASON_MALFORMED


def test_a_message_over_max_message_bytes_is_dead_lettered_undecoded() -> None:
    codec = make_codec(max_message_bytes=2048)
    good = encode("orders.raw", EVENTS["orders.raw"][0])
    padded = good + b"\x00" * (2049 - len(good))
    small, big = asyncio.run(codec.decode_batch("orders.raw", [good, padded]))
    assert isinstance(small, Decoded)
    assert isinstance(big, DecodeFailure) and big.reason == REASON_MALFORMED
    assert "MAX_MESSAGE_BYTES=2,048" in big.message


INT32, INT64 = 2**31, 2**63


def typed_values(schema: Any, names: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Any value Avro ``schema`` admits (what the decoder can hand the rules): every string,
    number (NaN and infinities included), symbol, null of a union, array and map."""
    if isinstance(schema, list):
        return st.one_of(*(typed_values(branch, names) for branch in schema))
    if isinstance(schema, str):
        if schema in names:
            return typed_values(names[schema], names)
        return {
            "null": st.none(), "boolean": st.booleans(),
            "int": st.integers(-INT32, INT32 - 1), "long": st.integers(-INT64, INT64 - 1),
            "float": st.floats(width=32), "double": st.floats(),
            "string": st.text(max_size=30), "bytes": st.binary(max_size=10),
        }[schema]  # fmt: skip
    kind = schema["type"]
    if "name" in schema and kind in ("record", "enum", "fixed"):
        names[schema["name"]] = schema
        names[f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")] = schema
    if kind == "record":
        return st.fixed_dictionaries(
            {f["name"]: typed_values(f["type"], names) for f in schema["fields"]}
        )
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(typed_values(schema["items"], names), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=5), typed_values(schema["values"], names),
                               max_size=3)  # fmt: skip
    return typed_values(kind, names)  # a primitive with a logicalType


@st.composite
def typed_records(draw: Any) -> tuple[str, dict[str, Any]]:
    """A valid event with 1-5 fields replaced by any value their Avro type admits (nested
    records too: an order's payload, its items and addresses)."""
    topic = draw(topics)
    schema = SOURCE_TOPICS[topic].schema()
    names: dict[str, Any] = {}
    field_values = {f["name"]: typed_values(f["type"], names) for f in schema["fields"]}
    record = copy.deepcopy(draw(st.sampled_from(EVENTS[topic])))
    for name in draw(st.lists(st.sampled_from(sorted(field_values)), min_size=1, max_size=5)):
        record[name] = draw(field_values[name])
    return topic, record


@FUZZ
@given(case=typed_records())
def test_any_schema_valid_record_is_judged_by_the_rules_and_folds_if_accepted(
    case: tuple[str, dict[str, Any]],
) -> None:
    """What the decoder can hand over: the rules answer without raising, and what they accept
    folds into every aggregate to finite numbers."""
    topic, record = case
    passes_rules(DOMAIN_BY_TOPIC[topic], record)


#: Values of every shape, none of them what the schema says: beyond what the decoder yields.
odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.binary(max_size=10), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)  # fmt: skip


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, topic: str, partition: int, record: Any, reason: str, message: str) -> None:
        assert message
        self.reasons.append(reason)


@FUZZ
@given(topic=topics, data=st.data())
def test_records_of_any_shape_never_raise_out_of_the_pipeline_split(topic: str, data: Any) -> None:
    """Even values of the wrong type (the decoder never yields them) stay on the DLQ path:
    a rule that raises on them is dead-lettered as ``validation.rule_error``."""
    record = copy.deepcopy(data.draw(st.sampled_from(EVENTS[topic])))
    for _ in range(data.draw(st.integers(1, 5))):
        name = data.draw(st.one_of(st.sampled_from(sorted(record)), st.text(max_size=8)))
        if data.draw(st.integers(0, 4)) == 0:
            record.pop(name, None)
        else:
            record[name] = data.draw(odd_values)
    domain = DOMAIN_BY_TOPIC[topic]
    pipeline = SourcePipeline(None, topic, domain.validate, [], domain.time_field)  # type: ignore[arg-type]
    letters = RecordingDeadLetters()
    batch = SourceBatch(TP(topic, 0), [SimpleNamespace(offset=0, key=b"k", value=b"v")])
    valid = pipeline.split(batch, [Decoded(record, 1, False)], letters)  # type: ignore[arg-type]
    assert len(valid) + len(letters.reasons) == 1
    assert all(r.startswith("validation.") or r == UNKNOWN_EVENT_TYPE for r in letters.reasons)


@pytest.mark.parametrize("topic", sorted(DOMAIN_BY_TOPIC))
def test_the_valid_events_pass(topic: str) -> None:
    """The fuzzers start from events the rules accept (else they would test little)."""
    assert all(passes_rules(DOMAIN_BY_TOPIC[topic], e) for e in EVENTS[topic])
    results = through_the_door(topic, [encode(topic, e) for e in EVENTS[topic]])
    assert all(isinstance(r, Decoded) for r in results)
