"""The floor on the full eight-topic mix: what the product does, in plain dicts, no Faust.

``python -m bench.mix_floor`` (configured by ``BENCH_*`` variables, ``bench/common.py``; the
source topics are every topic of the catalog). A plain aiokafka group consumer fetches big
batches; every message is decoded with the product's decoder (batch decode through the
registry cache) and validated with the product's rules (``agents/``); each fetch's valid
events are folded into every aggregate their domain declares with the product's own
aggregation math (``build_partials``, merged into dicts keyed by window and group key), and
the join's events go through the product's per-user join (``models.users.apply``, states in
a dict), whose deltas are folded into ``ab.conversions`` and the ``ctr`` metric the same
way. Windows close with the product's watermark rule
(``PartitionClock``) and are published as JSON. No state store, no changelog, no repartition
topic, offsets auto-committed: the least a stream processor must do for the same numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from types import SimpleNamespace
from typing import Any

from agents import DOMAINS, JOIN_OUTPUTS
from app.catalog import SOURCE_TOPICS
from app.engine.codec import Decoded, RegistryCodec
from app.engine.windowing import PartitionClock, build_partials
from bench.common import BenchConfig, StatusFile
from models.combine import Aggregate
from models.users import JoinParams, apply, empty_state

log = logging.getLogger("bench.mix_floor")


async def run(config: BenchConfig, attribution_ms: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    status = StatusFile(config.status_file)
    # The product's decoder (batch decode, reader-schema resolution): the floor must not be
    # slower than the product where both do the same thing.
    codec = RegistryCodec(config.registry_url, max_retries=10)
    topics = sorted(SOURCE_TOPICS)
    for topic in topics:
        codec.set_reader_schema(topic, SOURCE_TOPICS[topic].schema())
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=config.bootstrap, group_id=config.group,
        auto_offset_reset="earliest", enable_auto_commit=True,
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        session_timeout_ms=10_000, heartbeat_interval_ms=3_000,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap, linger_ms=5)
    await producer.start()
    await consumer.start()
    window_ms, grace_ms = config.window_ms, config.grace_ms
    domains = {d.topic: d for d in DOMAINS}
    times = SimpleNamespace(
        grace_ms=grace_ms, window_ms=window_ms, ctr_attribution_ms=attribution_ms
    )  # what the graces read
    outputs: dict[str, tuple[Aggregate, int]] = {
        kind: (aggregate, grace(times))  # type: ignore[arg-type]
        for kind, (aggregate, grace) in JOIN_OUTPUTS.items()
    }
    #: aggregate table -> window start -> key -> accumulator
    state: dict[str, dict[int, dict[str, list[Any]]]] = {}
    graces: dict[str, int] = {}
    aggregates: dict[str, Aggregate] = {}
    for domain in DOMAINS:
        for aggregate in domain.aggregates:
            state[aggregate.table], graces[aggregate.table] = {}, grace_ms
            aggregates[aggregate.table] = aggregate
    for aggregate, grace in outputs.values():
        state[aggregate.table], graces[aggregate.table] = {}, grace
        aggregates[aggregate.table] = aggregate
    users: dict[str, dict[str, Any]] = {}
    params = JoinParams(attribution_ms, 2 * (window_ms + grace_ms))
    index = {(t, p): i for i, (t, p) in enumerate((t, p) for t in topics
                                                  for p in range(config.partitions))}  # fmt: skip
    clock = PartitionClock(len(index), config.idle_advance_seconds, time.monotonic())
    consumed = invalid = published = joined = 0
    target = int(os.environ.get("BENCH_TARGET_EVENTS", "0")) or float("inf")
    target_joined = int(os.environ.get("BENCH_TARGET_JOIN_EVENTS", "0"))

    def fold(aggregate: Aggregate, events: list[dict[str, Any]], time_field: str) -> None:
        """The events of one fetch into the aggregate's windows: the product's combine step
        (``build_partials``), merged into plain dicts."""
        windows_of = state[aggregate.table]
        merge = aggregate.merge
        for key, windows in build_partials(aggregate, events, window_ms, time_field).items():
            for start, acc in windows.items():
                keys = windows_of.get(start)
                if keys is None:
                    keys = windows_of[start] = {}
                existing = keys.get(key)
                keys[key] = acc if existing is None else merge(existing, acc)

    async def close_due(now: float) -> None:
        nonlocal published
        watermark = clock.watermark(now)
        futures = []
        for table, windows in state.items():
            aggregate = aggregates[table]
            for start in sorted(s for s in windows if s + window_ms + graces[table] <= watermark):
                for key, acc in windows.pop(start).items():
                    for extra, fields in aggregate.records(acc):
                        record = {"window_start": start, "key": key, "row": list(extra), **fields}
                        futures.append(await producer.send(
                            config.output_topic, json.dumps(record, default=str).encode()
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
                status.update(force=True, consumed=consumed, invalid=invalid,
                              published=published, joined=joined)  # fmt: skip
                continue
            status.first_consumed()
            for tp, records in batches.items():
                consumed += len(records)
                domain = domains[tp.topic]
                time_field, validate, extract = domain.time_field, domain.validate, domain.join
                decoded = await codec.decode_batch(tp.topic, [r.value for r in records])
                valid = []
                for result in decoded:
                    if type(result) is not Decoded or validate(result.value) is not None:
                        invalid += 1
                        continue
                    valid.append(result.value)
                if not valid:
                    continue
                for aggregate in domain.aggregates:
                    fold(aggregate, valid, time_field)
                if extract is not None:
                    deltas: dict[str, list[dict[str, Any]]] = {kind: [] for kind in outputs}
                    for event in valid:
                        found = extract(event)
                        if found is None:
                            continue
                        user, join_event = found
                        user_state = users.get(user)
                        if user_state is None:
                            user_state = users[user] = empty_state()
                        joined += 1
                        for kind, delta in apply(user_state, join_event, params).deltas:
                            deltas[kind].append(delta)
                    for kind, events in deltas.items():
                        if events:
                            fold(outputs[kind][0], events, "ts")
                max_ts = max(event[time_field] for event in valid)
                clock.observe(index[(tp.topic, tp.partition)], max_ts, now)
            if "done" not in status.data and consumed >= target and joined >= target_joined:
                # The moment the backlog is aggregated, written at once (the status file is
                # otherwise written at most once a second: the harness must not wait for it).
                status.update(force=True, done=time.time(), consumed=consumed, joined=joined)
            await close_due(now)
            status.update(consumed=consumed, invalid=invalid, published=published, joined=joined)
    finally:
        status.update(force=True, consumed=consumed, invalid=invalid, published=published,
                      joined=joined)  # fmt: skip
        await consumer.stop()
        await producer.stop()
        await codec.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = BenchConfig.from_env()
    attribution_ms = int(os.environ.get("CTR_ATTRIBUTION_SECONDS", "600")) * 1000
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(config, attribution_ms))


if __name__ == "__main__":
    main()
