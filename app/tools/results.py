"""Read back what the worker published: derived topics and the DLQ, decoded, for people and tests.

``python -m app.tools.results`` prints a summary of every derived topic and the DLQ reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.catalog import DERIVED_TOPICS, DLQ_TOPIC
from app.engine.codec import Decoded, RegistryCodec
from app.settings import load_settings

__all__ = [
    "DeadLetter", "Samples", "assigned_consumer", "metric_sum", "read_dead_letters",
    "read_derived", "read_metrics", "read_topic", "summarize",
]


#: A worker's /metrics samples: (name, labels) -> value
Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


def read_metrics(base_url: str, timeout: float = 5.0) -> Samples | None:
    """The worker's ``/metrics`` samples by (name, labels); None if it serves none."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as response:
            if response.status != 200:
                return None
            body = response.read()
    except (OSError, urllib.error.HTTPError):
        return None
    try:
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }
    except ValueError:
        return None


def metric_sum(samples: Samples, name: str, **labels: str) -> int:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return int(sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls))


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
    "agg.downloads.errors": "error_rate",
    "agg.orders.summary": "orders_created",
    "agg.model.metrics": "count",
    "ab.conversions": "assigned_users",
}
#: rows shown of each topic's latest window (ab.conversions: every variant of two experiments)
_ROWS_SHOWN = {"ab.conversions": 6, "agg.model.metrics": 8}


def accounting(report: Mapping[str, Any], samples: Samples, consumed: Sequence[str]) -> str:
    """What the simulator sent against the worker's counters, per topic: for a consumed topic,
    sent = read = aggregated + dead-lettered, and the dead letters' reasons are those the
    broken messages were sent to get. ``report`` is ``app.simulate --report``'s, ``consumed``
    the topics the worker has a domain for. Late events are counted as aggregated (they were
    valid) and shown beside (their windows had closed: counted in no record)."""
    lines = ["accounting (the simulator's report against the worker's /metrics):"]
    for topic, sent in report["sent"].items():
        broken = report["broken"].get(topic, {})
        if topic not in consumed:
            lines.append(f"  {topic}: {sent:,} sent ({sum(broken.values()):,} broken), not"
                         " consumed by this worker: no domain declares it yet")  # fmt: skip
            continue
        read = metric_sum(samples, "streampulse_events_consumed_total", topic=topic)
        aggregated = metric_sum(samples, "streampulse_events_aggregated_total", topic=topic)
        late = metric_sum(samples, "streampulse_late_events_total", topic=topic)
        reasons: Counter[str] = Counter()
        for (name, labels), value in samples.items():
            label = dict(labels)
            if name == "streampulse_dlq_messages_total" and label.get("topic") == topic:
                reasons[label["reason"]] += int(value)
        reasons = +reasons
        dead = sum(reasons.values())
        counts = f"{aggregated:,} aggregated, {dead:,} dead-lettered"
        if late:
            counts += f" ({late:,} of them late: their window had closed)"
        if sent == read == aggregated + dead and dict(reasons) == broken:
            lines.append(f"  {topic}: {sent:,} sent = {counts}; each of the {dead:,} broken"
                         " messages with the reason it was broken for")  # fmt: skip
        else:
            lines.append(
                f"  {topic}: MISMATCH: {sent:,} sent, {read:,} read, {counts};"
                f" dead letters by reason {dict(reasons)}, sent broken {broken}"
            )
    return "\n".join(lines)


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
        for record in latest[: _ROWS_SHOWN.get(topic, 5)]:
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
