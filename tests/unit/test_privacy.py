"""The privacy check before publishing (app/engine/privacy.py): a derived record carrying any
PII field or PII-shaped value is not sent, but counted; the records the tables really produce
pass untouched."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from app.engine import metrics
from app.engine.privacy import PII_FIELDS, pii_in
from app.engine.publish import AggregatePublisher, derived_record
from app.engine.windowing import build_partials, decode_key
from tests.unit.test_fuzz import DOMAIN_BY_TOPIC, EVENTS

NOW_MS = 1_754_922_700_000


def real_records() -> list[tuple[str, str, dict[str, Any]]]:
    """(table, key, record) of every table, from simulator events of every consumed topic."""
    out = []
    for topic, events in EVENTS.items():
        domain = DOMAIN_BY_TOPIC[topic]
        for aggregate in domain.aggregates:
            partials = build_partials(aggregate, events, 60_000, domain.time_field)
            for key, windows in partials.items():
                for start, acc in windows.items():
                    record = derived_record(
                        aggregate, key, decode_key(key), start, 60_000, acc, NOW_MS
                    )
                    out.append((aggregate.table, key, record))
    return out


REAL = real_records()


class FakeCodec:
    async def schema_id_for(self, subject: str, schema: Any) -> int:
        return 1

    def encode(self, schema_id: int, record: dict[str, Any]) -> bytes:
        return repr(record).encode()


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes, *_: Any) -> Any:
        self.sent.append((topic, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def publish(records: list[tuple[str, dict[str, Any]]], table: str) -> list[tuple[str, bytes]]:
    producer = FakeProducer()
    app = type("App", (), {"producer": producer})()
    asyncio.run(AggregatePublisher(app, FakeCodec()).publish(table, records))  # type: ignore[arg-type]
    return producer.sent


def test_every_real_derived_record_passes() -> None:
    assert {table for table, _, _ in REAL} == {
        a.table for d in DOMAIN_BY_TOPIC.values() for a in d.aggregates
    }
    for table, key, record in REAL:
        assert pii_in(record, key) is None, (table, key, record)


@pytest.mark.parametrize("field", sorted(PII_FIELDS))
@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "nested"])
def test_a_record_with_a_pii_field_is_not_published_but_counted(field: str, nested: bool) -> None:
    table, key, clean = REAL[0]
    record = copy.deepcopy(clean)
    if nested:
        record["breakdown"] = [{"label": "x", field: "anything"}]
    else:
        record[field] = "anything"
    rejected = metrics.PRIVACY_REJECTIONS.labels(table=table)
    before = rejected._value.get()
    sent = publish([(key, record), (key, clean)], table)
    assert len(sent) == 1 and sent[0][1] == repr(clean).encode()  # only the clean one
    assert rejected._value.get() - before == 1
    assert field in (pii_in(record) or "")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("CUST_0a1b2c3d", "customer id"),
        ("seen on DEVICE_deadbeef", "device id"),
        ("SESSION_12345678", "session id"),
        ("203.0.113.7", "IPv4 address"),
        ("2001:db8:85a3::8a2e:370:7334", "IPv6 address"),
        ("jane.doe@example.com", "email address"),
        ("+44 20 7946 0958", "phone number"),
        ("(555) 010-4477", "phone number"),
    ],
)
def test_a_pii_shaped_value_in_any_field_is_caught(value: str, kind: str) -> None:
    table, key, clean = next(r for r in REAL if r[0] == "agg.telemetry.buffering")
    record = {**clean, "isp": value}
    assert pii_in(record) == f"the value of isp looks like a {kind}"
    assert publish([(key, record)], table) == []
    assert pii_in(clean, value) == f"the record key looks like a {kind}"


@pytest.mark.parametrize(
    "value",
    [
        "5.12.0",
        "TITLE_0a1b2c3d",
        "Android 14",
        "2025-08-11",
        "Deutsche Telekom",
        "4K",
        "NETWORK_TIMEOUT",
        "eu-west-1",
    ],
)
def test_ordinary_labels_are_not_mistaken_for_pii(value: str) -> None:
    assert pii_in({"label": value}, value) is None


def test_the_erasure_token_is_checked_whole_and_only_as_a_bearer_token() -> None:
    from app.web.erasure import authorized

    assert authorized("Bearer s3cret", "s3cret")
    assert authorized("bearer  s3cret ", "s3cret")
    for header in (None, "", "s3cret", "Basic s3cret", "Bearer s3cre", "Bearer s3cret2",
                   "Bearer"):  # fmt: skip
        assert not authorized(header, "s3cret"), header
