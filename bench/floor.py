"""(c) The floor: a plain aiokafka group consumer, fastavro decode, dict aggregation, no framework.

``python -m bench.floor`` (configured by the environment, see ``bench/common.py``). What a
stream processor cannot do less than: fetch big batches, decode and validate every event
(same decoder and rules as everyone), fold it into the three aggregates in plain dicts, and
publish each window when it closes. Window close uses the product's rule
(``app.engine.windowing.PartitionClock``): the watermark is the lowest of the source partitions'
highest event times, a window closes when it passes end + grace, and when every partition has
been idle for ``IDLE_ADVANCE_SECONDS`` the watermark advances with wall-clock time. No state
store, no changelog: offsets are auto-committed. It is the ceiling (floor of cost) against
which the others are measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from app.engine.windowing import PartitionClock, encode_key
from app.validation.telemetry import validate
from bench.baseline_math import BASELINE_AGGREGATES
from bench.common import BenchConfig, StatusFile, TelemetryDecoder, window_record

log = logging.getLogger("bench.floor")


async def run(config: BenchConfig) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    status = StatusFile(config.status_file)
    decoder = TelemetryDecoder(config.registry_url)
    consumer = AIOKafkaConsumer(
        config.source_topic, bootstrap_servers=config.bootstrap, group_id=config.group,
        auto_offset_reset="earliest", enable_auto_commit=True,
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        session_timeout_ms=10_000, heartbeat_interval_ms=3_000,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap, linger_ms=5)
    await producer.start()
    await consumer.start()
    window_ms, grace_ms = config.window_ms, config.grace_ms
    aggregates = BASELINE_AGGREGATES
    #: per aggregate: window start -> key tuple -> accumulator
    state: list[dict[int, dict[tuple[str, ...], list[float]]]] = [{} for _ in aggregates]
    clock = PartitionClock(config.partitions, config.idle_advance_seconds, time.monotonic())
    consumed = invalid = late = published = 0

    async def close_due(now: float) -> None:
        nonlocal published
        watermark = clock.watermark(now)
        futures = []
        for aggregate, windows in zip(aggregates, state, strict=True):
            for start in sorted(s for s in windows if s + window_ms + grace_ms <= watermark):
                for key, acc in windows.pop(start).items():
                    record = window_record(aggregate, key, start, window_ms, acc)
                    futures.append(await producer.send(
                        config.output_topic, json.dumps(record).encode(),
                        key=encode_key(key).encode(),
                    ))  # fmt: skip
        if futures:
            clock.floor = watermark
            await asyncio.gather(*futures)
            published += len(futures)

    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            now = time.monotonic()
            if not batches:
                await close_due(now)
                status.update(force=True, consumed=consumed, invalid=invalid, late=late,
                              published=published)  # fmt: skip
                continue
            status.first_consumed()
            # Late: the window had closed (end + grace passed) before this fetch.
            late_before = clock.watermark(now) - window_ms - grace_ms
            for tp, records in batches.items():
                consumed += len(records)
                max_ts = -1
                decode = decoder.decode
                for record in records:
                    event: dict[str, Any] | None = decode(record.value)
                    if event is None or validate(event) is not None:
                        invalid += 1
                        continue
                    ts = event["event_timestamp"]
                    if ts > max_ts:
                        max_ts = ts
                    start = ts - ts % window_ms
                    if start <= late_before:
                        late += 1
                        continue
                    for aggregate, windows in zip(aggregates, state, strict=True):
                        keys = windows.get(start)
                        if keys is None:
                            keys = windows[start] = {}
                        key = aggregate.key_values(event)
                        acc = keys.get(key)
                        if acc is None:
                            acc = keys[key] = aggregate.new()
                        aggregate.add(acc, event)
                if max_ts >= 0:
                    clock.observe(tp.partition, max_ts, now)
            await close_due(now)
            status.update(consumed=consumed, invalid=invalid, late=late, published=published)
    finally:
        status.update(force=True, consumed=consumed, invalid=invalid, late=late,
                      published=published)  # fmt: skip
        await consumer.stop()
        await producer.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = BenchConfig.from_env()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(config))


if __name__ == "__main__":
    main()
