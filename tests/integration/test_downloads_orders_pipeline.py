"""End to end: downloads (v1 and v2 writers mixed) and orders, valid and broken, through a real
worker process.

Events are produced with confluent-kafka's producer and AvroSerializer (an independent client of
our registry), among them orders written by an older producer that omits ``source``,
``version`` and ``currency`` (the reader's defaults apply) and orders of a newer producer whose
event type, status or payment method this reader does not know. The expected aggregates are
computed here with plain Python from the produced events (Avro floats narrowed to 32 bits,
sums with ``math.fsum``), sharing no code with ``models/``; every published number must equal
them, and every produced message must be counted in an aggregate or be in the DLQ with the
reason it was broken for.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import struct
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest

from app.catalog import SCHEMA_DIR
from app.tools.results import read_dead_letters, read_derived
from app.tools.simulator import downloads, orders
from app.tools.simulator.population import Population

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
BASE_MS = 1_754_922_600_000  # 2025-08-11T14:30:00Z, aligned to the window
SPAN_MS = 35_000  # 4 windows, the last one partial
DOWNLOADS = 1200
ORDERS = 1200
TABLES = ("agg.downloads.errors", "agg.orders.summary")


def f32(value: float) -> float:
    """What an Avro ``float`` carries of ``value``."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def spread(events: list[dict[str, Any]], rng: random.Random) -> None:
    for i, event in enumerate(events):
        event["timestamp"] = BASE_MS + (i * SPAN_MS) // len(events) + rng.randint(0, 300)


def download_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Valid downloads: (v1 events, v2 events), timestamps spread over the windows."""
    population = Population(seed=11, size=300)
    v1, v2 = downloads.ContentDownloadFactory(population), downloads.ContentDownloadV2Factory(
        population
    )
    rng = random.Random(11)
    events = [(v2 if rng.random() < 0.35 else v1).make(rng, BASE_MS)[1] for _ in range(DOWNLOADS)]
    spread(events, rng)
    return ([e for e in events if "content_rating" not in e],
            [e for e in events if "content_rating" in e])  # fmt: skip


def order_events() -> list[dict[str, Any]]:
    factory = orders.OrderFactory(Population(seed=12, size=300))
    rng = random.Random(12)
    events = [factory.make(rng, BASE_MS)[1] for _ in range(ORDERS)]
    spread(events, rng)
    return events


def older_order_schema() -> dict[str, Any]:
    """An older producer's OrderEvent: no ``source``, ``version`` or ``payload.currency``."""
    schema = json.loads((SCHEMA_DIR / "orders/OrderEvent.avsc").read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in ("source", "version")]
    payload = next(f for f in schema["fields"] if f["name"] == "payload")["type"]
    payload["fields"] = [f for f in payload["fields"] if f["name"] != "currency"]
    return schema


def newer_order_schema() -> dict[str, Any]:
    """A newer producer's OrderEvent: one more event type, status and payment method."""
    schema = json.loads((SCHEMA_DIR / "orders/OrderEvent.avsc").read_text())
    fields = {f["name"]: f for f in schema["fields"]}
    fields["event_type"]["type"]["symbols"].append("ORDER_RETURNED")
    payload = {f["name"]: f for f in fields["payload"]["type"]["fields"]}
    payload["status"]["type"][1]["symbols"].append("ON_HOLD")
    payload["payment_method"]["type"][1]["symbols"].append("CRYPTO")
    return schema


def downloads_oracle(events: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        groups[(e["timestamp"] // WINDOW_MS * WINDOW_MS, e["user_context"]["region"])].append(e)
    out = {}
    for key, group in groups.items():
        ok = [e for e in group if e["download"]["status"] == "success"]
        failed = [e for e in group if e["download"]["status"] == "failed"]
        cancelled = [e for e in group if e["download"]["status"] == "cancelled"]
        out[key] = {
            "attempts": len(group), "succeeded": len(ok), "failed": len(failed),
            "cancelled": len(cancelled), "error_rate": ratio(len(failed), len(group)),
            "error_codes": dict(Counter(e["download"]["error_code"] for e in failed)),
            "avg_speed_mbps": ratio(math.fsum(f32(e["download"]["speed_mbps"]) for e in ok),
                                    len(ok)),
            "megabytes": float(sum(e["content"]["size_mb"] for e in ok)),
            "revenue": math.fsum(f32(e["content"]["price"]) for e in ok),
        }  # fmt: skip
    return out


def orders_oracle(events: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        currency = e["payload"].get("currency", "USD")  # the reader's default
        groups[(e["timestamp"] // WINDOW_MS * WINDOW_MS, currency)].append(e)
    out = {}
    for key, group in groups.items():
        types = Counter(e["event_type"] for e in group)
        created = [e for e in group if e["event_type"] == "ORDER_CREATED"]
        gross = math.fsum(e["payload"]["total_amount"] for e in created)
        authorized, failed = types["PAYMENT_AUTHORIZED"], types["PAYMENT_FAILED"]
        out[key] = {
            "events_by_type": dict(types), "orders_created": len(created),
            "payments_authorized": authorized, "payments_failed": failed,
            "payment_failure_rate": ratio(failed, authorized + failed),
            "gross_revenue": gross, "avg_order_value": ratio(gross, len(created)),
        }  # fmt: skip
    return out


def broken_frames(good: bytes) -> dict[str, list[bytes]]:
    return {
        "decode.magic_byte": [b"", b"{\"not\": \"avro\"}", b"\x02" + good[1:]],
        "decode.unknown_schema": [b"\x00\x00\x0f\x42\x3f" + good[5:]],
        "decode.malformed": [good[: len(good) // 2], good + b"\x00"],
    }


def test_every_download_and_order_is_aggregated_or_dead_lettered(
    stack: Any, start_worker_process: Any
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    rng = random.Random(5)
    v1_downloads, v2_downloads = download_events()
    valid_orders = order_events()
    # Older producer: the three defaulted fields left out (then USD, order-service, 1.0).
    older = [e for e in valid_orders[::10] if e["payload"]["currency"] != "USD"][:20]
    assert len(older) == 20
    for event in older:
        del event["source"], event["version"], event["payload"]["currency"]

    expected: dict[str, dict[str, int]] = {"content-downloads": Counter(), "orders.raw": Counter()}
    broken_downloads, broken_orders = [], []
    for rule, breaker in sorted(downloads.RULE_BREAKERS.items()):
        for _ in range(2):
            broken_downloads.append(breaker(rng.choice(v1_downloads)))
            expected["content-downloads"][f"validation.{rule}"] += 1
    for rule, breaker in sorted(orders.RULE_BREAKERS.items()):
        for _ in range(2):
            broken_orders.append(breaker(rng.choice([e for e in valid_orders if "source" in e])))
            expected["orders.raw"][f"validation.{rule}"] += 1
    complete = [e for e in valid_orders if "source" in e]
    created = next(e for e in complete if e["event_type"] == "ORDER_CREATED")
    authorized = next(e for e in complete if e["event_type"] == "PAYMENT_AUTHORIZED")
    newer = [
        {**created, "event_type": "ORDER_RETURNED"},
        {**created, "payload": {**created["payload"], "status": "ON_HOLD"}},
        {**authorized, "payload": {**authorized["payload"], "payment_method": "CRYPTO"}},
    ]
    expected["orders.raw"]["unknown_event_type"] += len(newer)

    registry = SchemaRegistryClient({"url": stack.registry_url})

    def serializer(schema: dict[str, Any] | str) -> AvroSerializer:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return AvroSerializer(registry, text)

    # Registration order matters for BACKWARD checks against the latest version: v1, the older
    # writer (reads v1 data: it ignores the fields it lacks), then the newer one.
    d_v1 = serializer((SCHEMA_DIR / "downloads/ContentDownloadEvent.avsc").read_text())
    d_v2 = serializer((SCHEMA_DIR / "downloads/ContentDownloadEvent.v2.avsc").read_text())
    o_v1 = serializer((SCHEMA_DIR / "orders/OrderEvent.avsc").read_text())
    o_old, o_new = serializer(older_order_schema()), serializer(newer_order_schema())
    d_ctx = SerializationContext("content-downloads", MessageField.VALUE)
    o_ctx = SerializationContext("orders.raw", MessageField.VALUE)
    good_download = d_v1(v1_downloads[0], d_ctx)
    good_order = o_v1(created, o_ctx)
    raw: dict[str, list[bytes]] = {"content-downloads": [], "orders.raw": []}
    for topic, good in (("content-downloads", good_download), ("orders.raw", good_order)):
        for reason, values in broken_frames(good).items():
            raw[topic].extend(values)
            expected[topic][reason] += len(values)

    started_ms = time.time() * 1000
    start_worker_process("sp-dl-orders", WINDOW_SECONDS="10", GRACE_SECONDS="2",
                         IDLE_ADVANCE_SECONDS="2", STORE_URL="rocksdb://")  # fmt: skip

    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    # In event-time order, v1, v2 and broken writers interleaved: with 2 s of grace, a
    # partition read out of event-time order would drop late events (and fail the oracle).
    frames = [(e["timestamp"], d_v1(e, d_ctx), e["user_id"]) for e in v1_downloads]
    frames += [(e["timestamp"], d_v2(e, d_ctx), e["user_id"]) for e in v2_downloads]
    frames += [(e["timestamp"], d_v1(e, d_ctx), e["user_id"]) for e in broken_downloads]
    frames.sort(key=lambda frame: frame[0])
    for _, value, key in frames:
        producer.produce("content-downloads", key=key, value=value)
    older_ids = {e["event_id"] for e in older}
    order_frames = [
        ((o_old if e["event_id"] in older_ids else o_v1)(e, o_ctx), e["order_id"])
        for e in valid_orders
    ]
    order_frames += [(o_v1(e, o_ctx), e["order_id"]) for e in broken_orders]
    order_frames += [(o_new(e, o_ctx), e["order_id"]) for e in newer]
    for value, key in order_frames:  # in event-time order, as generated (broken ones last)
        producer.produce("orders.raw", key=key, value=value)
    for topic, values in raw.items():
        for i, value in enumerate(values):
            producer.produce(topic, key=f"raw-{i}", value=value)
    assert producer.flush(30) == 0

    valid_downloads = v1_downloads + v2_downloads
    want = {"agg.downloads.errors": downloads_oracle(valid_downloads),
            "agg.orders.summary": orders_oracle(valid_orders)}  # fmt: skip
    records_expected = sum(len(v) for v in want.values())
    dead_expected = sum(sum(c.values()) for c in expected.values())
    deadline = time.monotonic() + 90
    while True:
        derived = asyncio.run(read_derived(stack.bootstrap, stack.registry_url, TABLES))
        dead = asyncio.run(read_dead_letters(stack.bootstrap))
        published = sum(len(v) for v in derived.values())
        if (published >= records_expected and len(dead) >= dead_expected) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(2)

    # Dead letters: exactly the broken messages, each with its reason, raw ones byte for byte.
    reasons: dict[str, Counter] = {"content-downloads": Counter(), "orders.raw": Counter()}
    for letter in dead:
        topic = letter.headers["source.topic"]
        assert int(letter.headers["source.partition"]) in range(4)
        assert int(letter.headers["source.offset"]) >= 0
        assert letter.headers["error.message"]
        reasons[topic][letter.headers["error.reason"]] += 1
    assert reasons == expected
    for topic, values in raw.items():
        got = {d.value for d in dead if d.headers["source.topic"] == topic
               and d.key.startswith(b"raw-")}  # fmt: skip
        assert got == set(values)

    # Aggregates: every window record equals the oracle's, published exactly once.
    event_ids: set[str] = set()
    for table, key_field in (("agg.downloads.errors", "region"),
                             ("agg.orders.summary", "currency")):  # fmt: skip
        got: dict[tuple, dict[str, Any]] = {}
        for record in derived[table]:
            key = (record["window_start"], record[key_field])
            assert key not in got, f"{table} published {key} twice"
            assert record["window_end"] - record["window_start"] == WINDOW_MS
            assert record["event_type"] == table.removeprefix("agg.")
            assert record["producer"] == "streampulse" and record["privacy_tier"] == "internal"
            assert record["schema_version"] == 1
            assert started_ms <= record["occurred_at"] <= time.time() * 1000
            assert uuid.UUID(record["event_id"]) and record["event_id"] not in event_ids
            event_ids.add(record["event_id"])
            got[key] = record
        assert set(got) == set(want[table]), table
        for key, metrics in want[table].items():
            for name, value in metrics.items():
                assert got[key][name] == value, (table, key, name, got[key][name], value)

    # Accounting: what was sent = what was counted + what was dead-lettered.
    downloads_sent = len(valid_downloads) + len(broken_downloads) + len(raw["content-downloads"])
    counted = sum(r["attempts"] for r in derived["agg.downloads.errors"])
    assert counted + sum(reasons["content-downloads"].values()) == downloads_sent
    orders_sent = len(valid_orders) + len(broken_orders) + len(newer) + len(raw["orders.raw"])
    counted = sum(sum(r["events_by_type"].values()) for r in derived["agg.orders.summary"])
    assert counted + sum(reasons["orders.raw"].values()) == orders_sent
    # The older producer's events were counted under the default currency.
    assert sum(r["orders_created"] for r in derived["agg.orders.summary"]) == sum(
        1 for e in valid_orders if e["event_type"] == "ORDER_CREATED"
    )
    assert len(v2_downloads) > 300 and len(v1_downloads) > 600  # both writers in the mix
