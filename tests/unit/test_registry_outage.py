"""A registry outage (app/engine/codec.py, pipeline, windowing): a new schema id waits with
growing back-off, nothing is dead-lettered for it, readiness sees the stall, and the waiting
source partitions hold every table partition's watermark."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from app.engine.codec import Decoded, RegistryCodec
from app.engine.windowing import PartitionClock
from models.telemetry import TELEMETRY_AGGREGATES
from tests.unit.test_codec import TOPIC, V1_RECORD, WRITER_V1, FakeRegistry, body, header
from tests.unit.test_local_merge import PARTITIONS, windowed_table


class DownRegistry(FakeRegistry):
    """Fails ``failures`` times (connection refused), then answers."""

    def __init__(self, failures: int) -> None:
        super().__init__({1: WRITER_V1}, {f"{TOPIC}-value": [1]})
        self.failures = failures
        self.calls: list[float] = []

    async def get_by_id(self, schema_id: int) -> Any:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise ConnectionRefusedError("registry down")
        return await super().get_by_id(schema_id)


def test_a_new_schema_id_waits_out_the_outage_with_growing_back_off() -> None:
    registry = DownRegistry(failures=3)
    codec = RegistryCodec("http://registry.invalid", client=registry, retry_seconds=0.1)
    stalled_seen: list[bool] = []
    waits = 0

    async def on_wait() -> None:
        nonlocal waits
        waits += 1
        stalled_seen.append(codec.stalled)

    async def run() -> list[Any]:
        return await codec.decode_batch(TOPIC, [header(1) + body(WRITER_V1, V1_RECORD)], on_wait)

    assert not codec.stalled
    [result] = asyncio.run(run())
    assert isinstance(result, Decoded) and result.value["id"] == V1_RECORD["id"]
    assert len(registry.calls) == 4
    gaps = [b - a for a, b in zip(registry.calls, registry.calls[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4  # doubling
    assert gaps[2] > gaps[0] * 2.5
    assert waits >= 3 and all(stalled_seen)  # held, and readiness would say so
    assert not codec.stalled  # answered: ready again


def test_a_source_touched_while_it_waits_holds_the_watermark() -> None:
    now = 1000.0
    clock = PartitionClock(2, idle_after=5.0, now=now)
    clock.observe(0, 10_000, now)
    clock.observe(1, 30_000, now)
    assert clock.watermark(now) == 10_000
    # Source 0 waits on the registry for 20 s; source 1 keeps going.
    for step in range(1, 21):
        clock.touch(0, now + step)
        clock.observe(1, 30_000 + step * 1000, now + step)
        assert clock.watermark(now + step) == 10_000, step
    # Without the touches source 0 would have gone idle and the watermark run ahead:
    untouched = PartitionClock(2, idle_after=5.0, now=now)
    untouched.observe(0, 10_000, now)
    for step in range(1, 21):
        untouched.observe(1, 30_000 + step * 1000, now + step)
    assert untouched.watermark(now + 20) == 50_000


def test_hold_touches_owned_partitions_and_tells_the_others() -> None:
    aggregate = TELEMETRY_AGGREGATES[0]
    owned = {0, 1}
    table = windowed_table(aggregate, local=owned)
    asyncio.run(table.hold({2, 3}))
    for partition in owned:
        assert set(table.clock(partition).sources) >= {2, 3}
    sent = table.app.producer.sent
    assert sorted(p for _, _, p in sent) == sorted(set(range(PARTITIONS)) - owned)
    assert all(json.loads(value) == {"h": [2, 3]} for _, value, _ in sent)

    # The owner of a told partition touches them when it merges the message.
    from tests.unit.test_local_merge import feed_partials_agent

    other = windowed_table(aggregate, local=set(), merge_locally=False)
    before = time.monotonic()
    feed_partials_agent(other, sent)
    for partition in set(range(PARTITIONS)) - owned:
        seen = other.clock(partition).sources
        assert seen[2][1] >= before and seen[3][1] >= before


def test_while_the_consumer_waits_every_active_source_of_every_table_is_held() -> None:
    """Another topic's records wait behind the stalled batch: its watermarks hold too, but a
    source already idle before the stall stays idle."""
    now = 1000.0
    clock = PartitionClock(3, idle_after=5.0, now=now)
    clock.observe(0, 10_000, now)
    clock.observe(1, 20_000, now)
    clock.observe(2, 5_000, now - 60)  # idle long before
    for step in range(1, 21):
        clock.touch_active(now + step)
    assert clock.watermark(now + 20) == 10_000  # 0 and 1 held, 2 idle

    table = windowed_table(TELEMETRY_AGGREGATES[1], local={0})
    asyncio.run(table.hold(None))
    assert all(json.loads(v) == {"h": "*"} for _, v, _ in table.app.producer.sent)
