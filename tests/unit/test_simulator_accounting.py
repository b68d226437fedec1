"""The simulator's broken messages and ``make run``'s accounting, without a broker.

The simulator writes through a fake registry; the worker's own codec (reading the same fake
registry) and each domain's pipeline split then decide, message by message, what the worker
would do. Every broken message must get exactly the DLQ reason the simulator's report says,
and every other one must be valid: the report is what ``make run`` checks the worker against.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from agents import DOMAINS
from app.catalog import SOURCE_TOPICS
from app.engine.batching import SourceBatch
from app.engine.codec import RegistryCodec
from app.engine.pipeline import SourcePipeline
from app.tools.results import accounting
from app.tools.simulate import Simulator, with_extra_symbol


class FakeRegistry:
    """Registration and lookup by id, as much of AsyncSchemaRegistryClient as the codecs use."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.ids: dict[str, int] = {}

    async def register(self, subject: str, schema: Any) -> int:
        text = json.dumps(schema.raw_schema, sort_keys=True)
        if text not in self.ids:
            self.ids[text] = len(self.ids) + 1
            self.schemas[self.ids[text]] = copy.deepcopy(schema.raw_schema)
        return self.ids[text]

    async def get_by_id(self, schema_id: int) -> Any:
        raw = self.schemas.get(schema_id)
        return None if raw is None else SimpleNamespace(raw_schema=copy.deepcopy(raw))


class Letters:
    def __init__(self) -> None:
        self.reasons: Counter[tuple[str, str]] = Counter()

    def add(self, topic: str, partition: int, record: Any, reason: str, message: str) -> None:
        self.reasons[(topic, reason)] += 1


def simulate(count: int, bad_rate: float) -> tuple[Simulator, Counter, Counter]:
    """Generate ``count`` messages; return the simulator, what the worker's pipelines
    dead-lettered (topic, reason) and how many were valid per topic."""
    registry = FakeRegistry()
    simulator = Simulator("unused:9092", "http://registry.invalid", seed=3, bad_rate=bad_rate,
                          v2_rate=0.3, codec=RegistryCodec("x", client=registry))  # fmt: skip
    asyncio.run(simulator.register_schemas())
    messages = []
    for i in range(count):
        message = simulator.next_message(1_754_922_600_000 + i)
        simulator.count(message)
        messages.append(message)
    worker_codec = RegistryCodec("x", client=registry, max_retries=0)
    for topic, spec in SOURCE_TOPICS.items():
        worker_codec.set_reader_schema(topic, spec.schema())
    letters, valid = Letters(), Counter()
    for domain in DOMAINS:
        mine = [m for m in messages if m.topic == domain.topic]
        records = [SimpleNamespace(offset=i, key=m.key, value=m.value) for i, m in enumerate(mine)]
        decoded = asyncio.run(worker_codec.decode_batch(domain.topic, [m.value for m in mine]))
        pipeline = SourcePipeline(None, domain.topic, domain.validate, (), domain.time_field)  # type: ignore[arg-type]
        kept = pipeline.split(SourceBatch(TP(domain.topic, 0), records), decoded, letters)
        valid[domain.topic] = len(kept)
    return simulator, letters.reasons, valid


def test_every_broken_message_gets_the_reason_the_report_says() -> None:
    simulator, dead, valid = simulate(count=6000, bad_rate=0.3)
    report = simulator.report()
    assert sum(report["sent"].values()) == 6000
    for domain in DOMAINS:
        topic = domain.topic
        want = report["broken"][topic]
        got = {reason: n for (t, reason), n in dead.items() if t == topic}
        assert got == want, topic
        assert valid[topic] + sum(got.values()) == report["sent"][topic]
        assert valid[topic] > 0
    kinds = {reason for reasons in report["broken"].values() for reason in reasons}
    assert {"decode.magic_byte", "decode.unknown_schema", "decode.malformed",
            "unknown_event_type"} <= kinds  # fmt: skip
    assert any(r.startswith("validation.") for r in report["broken"]["content-downloads"])
    assert any(r.startswith("validation.") for r in report["broken"]["orders.raw"])
    assert "unknown_event_type" in report["broken"]["orders.raw"]
    assert set(report["broken"]) <= set(SOURCE_TOPICS)


def test_without_bad_rate_everything_is_valid() -> None:
    simulator, dead, valid = simulate(count=2000, bad_rate=0.0)
    assert not dead and simulator.report()["broken"] == {}
    assert sum(valid.values()) == sum(simulator.sent[d.topic] for d in DOMAINS)


def test_with_extra_symbol_adds_one_enum_symbol() -> None:
    schema = SOURCE_TOPICS["orders.raw"].schema()
    evolved = with_extra_symbol(schema, "event_type", "ORDER_RETURNED")
    symbols = next(f for f in evolved["fields"] if f["name"] == "event_type")["type"]["symbols"]
    assert symbols[-1] == "ORDER_RETURNED" and len(symbols) == 10
    assert SOURCE_TOPICS["orders.raw"].schema() == schema  # the original is untouched


def samples(topic: str, consumed: int, aggregated: int, dlq: dict[str, int],
            late: int = 0) -> dict[tuple[str, frozenset], float]:  # fmt: skip
    out = {
        ("streampulse_events_consumed_total", frozenset({("topic", topic)})): consumed,
        ("streampulse_events_aggregated_total", frozenset({("topic", topic)})): aggregated,
        ("streampulse_late_events_total", frozenset({("topic", topic)})): late,
    }
    for reason, n in dlq.items():
        out[("streampulse_dlq_messages_total",
             frozenset({("topic", topic), ("reason", reason)}))] = n  # fmt: skip
    return out


def test_accounting_balances_mismatches_and_skips() -> None:
    report = {"sent": {"orders.raw": 100, "model-metrics": 7},
              "broken": {"orders.raw": {"decode.malformed": 2, "validation.payment_fields": 1},
                         "model-metrics": {"decode.magic_byte": 1}}}  # fmt: skip
    ok = accounting(report, samples("orders.raw", 100, 97, {"decode.malformed": 2,
                                                            "validation.payment_fields": 1}),
                    ["orders.raw"])  # fmt: skip
    assert "orders.raw: 100 sent = 97 aggregated, 3 dead-lettered; each of the 3" in ok
    assert "model-metrics: 7 sent (1 broken), not consumed" in ok
    assert "MISMATCH" not in ok
    wrong_reason = accounting(report, samples("orders.raw", 100, 97, {"decode.malformed": 3}),
                              ["orders.raw"])  # fmt: skip
    assert "orders.raw: MISMATCH" in wrong_reason
    lost = accounting(report, samples("orders.raw", 99, 96, {"decode.malformed": 2,
                                                             "validation.payment_fields": 1}),
                      ["orders.raw"])  # fmt: skip
    assert "orders.raw: MISMATCH: 100 sent, 99 read" in lost
    late = accounting(report, samples("orders.raw", 100, 97, {"decode.malformed": 2,
                                                              "validation.payment_fields": 1},
                                      late=4), ["orders.raw"])  # fmt: skip
    assert "(4 of them late: their window had closed)" in late
