"""Read back what the worker published: derived topics and the DLQ, decoded, for people and tests.

``python -m app.tools.results`` prints a summary of every derived topic and the DLQ reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.catalog import DERIVED_TOPICS, DLQ_TOPIC
from app.engine.codec import Decoded, RegistryCodec
from app.settings import load_settings

__all__ = [
    "DeadLetter", "assigned_consumer", "read_dead_letters", "read_derived", "read_topic",
    "summarize",
]


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


@contextlib.asynccontextmanager
async def assigned_consumer(
    bootstrap: str, topics: Sequence[str]
) -> AsyncIterator[tuple[Any, list[Any]]]:
    """A group-less aiokafka consumer assigned every partition of ``topics`` (a topic the
    first metadata does not know is looked up once more; missing topics: no partitions), and
    those partitions; stopped on exit."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if any(consumer.partitions_for_topic(t) is None for t in topics):
            await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if tps:
            consumer.assign(tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, idle_seconds: float = 1.5) -> list[Any]:
    """Every record of ``topic`` from the beginning (no consumer group), until idle."""
    async with assigned_consumer(bootstrap, [topic]) as (consumer, tps):
        if not tps:
            return []
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_seconds * 1000), max_records=10000)
            if not batch:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= end[tp] for tp in tps):
                    break
                continue
            for tp_records in batch.values():
                records.extend(tp_records)
        return records


async def read_derived(
    bootstrap: str, registry_url: str, topics: Sequence[str] = tuple(DERIVED_TOPICS)
) -> dict[str, list[dict[str, Any]]]:
    """Decoded records of the derived topics, by topic."""
    codec = RegistryCodec(registry_url, max_retries=5)
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        for topic in topics:
            raw = await read_topic(bootstrap, topic)
            decoded = await codec.decode_batch(topic, [r.value for r in raw])
            bad = [d for d in decoded if not isinstance(d, Decoded)]
            if bad:
                raise ValueError(f"{topic} holds undecodable records: {bad[:3]}")
            out[topic] = [d.value for d in decoded if isinstance(d, Decoded)]
        return out
    finally:
        await codec.close()


async def read_dead_letters(bootstrap: str) -> list[DeadLetter]:
    return [
        DeadLetter(r.key, r.value, {k: v.decode() for k, v in r.headers})
        for r in await read_topic(bootstrap, DLQ_TOPIC)
    ]


_SORT_BY = {
    "agg.telemetry.buffering": "buffering_ratio",
    "agg.telemetry.completion": "starts",
    "agg.telemetry.errors": "error_rate",
}


def summarize(derived: dict[str, list[dict[str, Any]]], dead: list[DeadLetter]) -> str:
    """A few lines per table: how many windows were published and the top rows of the latest."""
    lines: list[str] = []
    for topic, records in derived.items():
        if not records:
            lines.append(f"{topic}: no windows closed yet")
            continue
        windows = sorted({r["window_start"] for r in records})
        latest = [r for r in records if r["window_start"] == windows[-1]]
        spec = DERIVED_TOPICS[topic]
        key_fields = [f["name"] for f in spec.schema()["fields"][8:] if f["type"] == "string"]
        lines.append(f"{topic}: {len(records)} records over {len(windows)} windows; latest window:")
        metric = _SORT_BY.get(topic)
        if metric:
            latest.sort(key=lambda r: (r.get(metric) is None, -(r.get(metric) or 0)))
        for record in latest[:5]:
            key = " / ".join(str(record[k]) for k in key_fields)
            metrics = {
                k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in record.items()
                if k not in key_fields and k not in {f["name"] for f in spec.schema()["fields"][:8]}
            }
            lines.append(f"    {key}: {metrics}")
    reasons = Counter(d.headers.get("error.reason") for d in dead)
    lines.append(f"{DLQ_TOPIC}: {len(dead)} dead letters {dict(reasons)}")
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings()  # every broker of KAFKA_BROKER_URL, not just the last
    bootstrap, registry = settings.broker_bootstrap, settings.schema_registry_url
    topics = args.topics.split(",") if args.topics else list(DERIVED_TOPICS)
    derived = await read_derived(bootstrap, registry, topics)
    print(summarize(derived, await read_dead_letters(bootstrap)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m app.tools.results", description=__doc__)
    parser.add_argument("--topics", default="", help="comma-separated derived topics")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
