"""Latency of our worker at a steady rate: from an event's production to its table update.

The producer (:func:`produce_steady`) sends fresh telemetry at a fixed rate, each message's
Kafka timestamp set to the wall-clock time of its ``produce()`` call: the *production time*.

The table side is read from the worker's own table changelogs
(``<APP_ID>-agg.telemetry.<name>-changelog``): every table write of our worker is one changelog
record, keyed by the group key, whose value holds each open (and recently closed) window's
accumulator, slot 0 being the number of events folded in, and whose Kafka timestamp is set by
the worker's producer when the write is sent. So for every (table, group key, window) the
harness knows when the table's count reached 1, 2, 3, ... events. It attributes the i-th event
of that group (in production order) to the first write whose count is >= i: the time its
contribution reached the table. That assumes events of one group reach the table in production
order, which at a steady rate holds up to the interleaving of partitions within one fetch (a
few ms). It needs no hook in the worker.

The worker's ``LATENCY_LOG=<path>`` hook (app/engine/windowing.py) is summarised too: one line per
merged partials message, ``{"table", "merged_ms", "events", "produced_ms_min",
"produced_ms_max"}``, the events taken as spread evenly between the two.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from app.engine.tables import partials_topic_name
from app.engine.windowing import encode_key, key_partition
from app.settings import Settings
from bench.dataset import (
    KEY_FIELDS,
    SOURCE_TOPIC,
    TABLES,
    Encoder,
    FastTelemetryFactory,
    new_producer,
    produce,
    registry_schema_id,
)
from bench.measure import percentile

__all__ = [
    "HopBaseline",
    "Sent",
    "changelog_reach_times",
    "hook_latencies",
    "partials_ship_times",
    "produce_steady",
    "scrape_histogram",
    "summarize",
]

#: production ms (= event time), window start, group key per table, counted (after warm-up),
#: source partition
Sent = tuple[int, int, tuple[str, ...], bool, int]


def produce_steady(
    bootstrap: str, registry_url: str, *, rate: float, seconds: float, warmup: float,
    seed: int, window_ms: int, partitions: int,
) -> list[Sent]:  # fmt: skip
    """Produce ``rate`` events/s for ``warmup + seconds``; return what was sent, in order.

    Each event's ``event_timestamp`` is its production time (so the partials' event times say
    which source batch carried it: see :func:`partials_ship_times`).
    """
    encode = Encoder(registry_schema_id(registry_url))
    factory = FastTelemetryFactory(seed=seed)
    rng = random.Random(seed)
    # librdkafka's default linger (5 ms). With 1 ms the producer itself falls behind on this
    # broker (thousands of one-record produce requests a second): a plain aiokafka consumer
    # then saw p50 43 / p99 1,570 ms against 15 / 36 ms with 5 ms, all of it queueing
    # inside the producer before the broker had the event.
    producer = new_producer(bootstrap, **{"linger.ms": 5, "batch.size": 65_536})
    total = int(rate * (warmup + seconds))
    sent: list[Sent] = []
    started = time.monotonic()
    n = 0
    while n < total:
        elapsed = time.monotonic() - started
        due = min(total, int(elapsed * rate) + 1)
        while n < due:
            now_ms = int(time.time() * 1000)
            key, event = factory.make(rng, now_ms)
            event["event_timestamp"] = now_ms
            partition = key_partition(key.encode(), partitions)
            produce(producer, SOURCE_TOPIC, key.encode(), encode(event), partition, now_ms)
            keys = tuple(encode_key([event[f] for f in KEY_FIELDS[t]]) for t in TABLES)
            sent.append((now_ms, now_ms - now_ms % window_ms, keys, elapsed >= warmup, partition))
            n += 1
        producer.poll(0)
        time.sleep(0.002)
    left = producer.flush(30)
    if left:
        raise RuntimeError(f"{left} latency events not delivered")
    return sent


class HopBaseline:
    """A plain aiokafka consumer reading the source topic while the latency run produces.

    Why: the embedded broker's own cost per fetch grows as its logs fill with small record
    batches (a plain consumer alone went from p50 12 ms to 170 ms over 40 s of a 2,000/s
    trickle, the broker at 100% of a core). Run alone on its own stack with the same producer
    and rate (:func:`bench.telemetry.baseline_hop_run`), this one broker hop (production ->
    consumed, with the worker's default fetch wait) is the baseline for the worker's path.
    """

    def __init__(
        self, bootstrap: str, topic: str | Sequence[str] = SOURCE_TOPIC,
        fetch_max_wait_ms: int = Settings.fetch_max_wait_ms,
    ) -> None:  # fmt: skip
        self.bootstrap = bootstrap
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        #: (production ms, ms from production to consumed), in consumption order
        self.hops: list[tuple[int, float]] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="hop-baseline", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self.ready.wait(timeout):
            raise TimeoutError(f"baseline consumer not assigned after {timeout:.0f}s: {self.error}")

    def stop(self, drain_seconds: float = 2.0) -> list[tuple[int, float]]:
        """Stop after ``drain_seconds`` (so the last events arrive); return the hops."""
        time.sleep(drain_seconds)
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"baseline consumer failed: {self.error!r}") from self.error
        return self.hops

    def _main(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as exc:  # reported by wait_ready / the summary
            self.error = exc

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, group_id=f"bench-hop-{uuid.uuid4()}",
            auto_offset_reset="latest", fetch_max_wait_ms=self.fetch_max_wait_ms,
            max_poll_records=10_000, session_timeout_ms=6_000, heartbeat_interval_ms=2_000,
        )  # fmt: skip
        await consumer.start()
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():  # "latest" resolved now, before production
                await consumer.position(tp)
            self.ready.set()
            hops = self.hops
            while not self._stop.is_set():
                fetched = await consumer.getmany(timeout_ms=200)
                now_ms = time.time() * 1000
                for records in fetched.values():
                    hops.extend((r.timestamp, now_ms - r.timestamp) for r in records)
        finally:
            await consumer.stop()


def summarize_hops(
    hops: list[tuple[int, float]], since_ms: int, bucket_s: int = 5
) -> dict[str, Any]:
    """p50/p90/p99 of the baseline's hops for events produced at or after ``since_ms``, and
    per ``bucket_s`` seconds of production time (``by_<n>s``)."""
    values = [ms for produced, ms in hops if produced >= since_ms]
    out = _stats(values)
    out[f"by_{bucket_s}s"] = by_production_time(
        [(produced, ms) for produced, ms in hops if produced >= since_ms], since_ms, bucket_s
    )
    return out


def by_production_time(
    samples: Iterable[tuple[float, float]], since_ms: int, bucket_s: int
) -> list[dict[str, Any]]:
    """p50/p99 of (production ms, latency ms) samples per ``bucket_s`` seconds after
    ``since_ms``: how a latency moves through a run (the embedded broker slows as it fills)."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for produced, ms in samples:
        buckets[int((produced - since_ms) // (bucket_s * 1000))].append(ms)
    return [
        {"from_s": b * bucket_s, "count": len(v),
         "p50_ms": percentile(sorted(v), 50), "p99_ms": percentile(sorted(v), 99)}
        for b, v in sorted(buckets.items())
    ]  # fmt: skip


def changelog_reach_times(
    bootstrap: str, app_id: str, sent: list[Sent], timeout: float = 60.0
) -> tuple[dict[str, list[float | None]], dict[str, int]]:
    """Per table, per sent event (in order): ms from production to its table write (or None)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topics = {f"{app_id}-{table}-changelog": table for table in TABLES}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    #: (table, key, window) -> [(write ms, events count)] in write order
    writes: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    latest: dict[tuple[str, str, int], int] = {}
    wanted = len(sent)
    try:
        metadata = consumer.list_topics(timeout=10)
        missing = [t for t in topics if t not in metadata.topics]
        if missing:
            raise RuntimeError(f"changelog topics not found: {missing}")
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                         for t in topics for p in metadata.topics[t].partitions])  # fmt: skip
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            messages = consumer.consume(num_messages=10_000, timeout=0.2)
            if messages:
                idle_since = time.monotonic()
            for message in messages:
                if message.error() or message.value() is None:
                    continue
                table = topics[message.topic()]
                key = json.loads(message.key())
                state = json.loads(message.value())
                ts = message.timestamp()[1]
                for part in ("open", "closed"):
                    for start, acc in (state.get(part) or {}).items():
                        window = (table, key, int(start))
                        count = int(acc[0])
                        if count > latest.get(window, 0):
                            latest[window] = count
                            writes[window].append((ts, count))
            per_table = defaultdict(int)
            for (table, _, _), count in latest.items():
                per_table[table] += count
            if all(per_table[t] >= wanted for t in TABLES) and time.monotonic() - idle_since > 1:
                break
    finally:
        consumer.close()
    reached: dict[str, list[float | None]] = {}
    totals = {t: 0 for t in TABLES}
    for (table, _, _), count in latest.items():
        totals[table] += count
    for index, table in enumerate(TABLES):
        groups: dict[tuple[str, int], list[int]] = defaultdict(list)
        for i, (_, start, keys, _, _) in enumerate(sent):
            groups[(keys[index], start)].append(i)
        out: list[float | None] = [None] * len(sent)
        for (key, start), members in groups.items():
            history = writes.get((table, key, start), [])
            j = 0
            for rank, i in enumerate(sorted(members, key=lambda m: sent[m][0]), 1):
                while j < len(history) and history[j][1] < rank:
                    j += 1
                if j < len(history):
                    out[i] = history[j][0] - sent[i][0]
        reached[table] = out
    return reached, totals


def partials_ship_times(
    bootstrap: str, app_id: str, sent: list[Sent], timeout: float = 30.0
) -> dict[str, list[float | None]]:
    """Per table, per sent event: ms from production until the worker's source side shipped
    the partials of the batch that carried it (the first stage of the worker's hot path).

    Every source batch sends each table partition a partial or a watermark mark carrying the
    source partition ``s`` and the batch's highest event time ``t``; event time is production
    time here, so an event of partition ``s`` produced at ``p`` was in the first batch of
    ``s`` with ``t >= p``, shipped at the earliest Kafka timestamp of that batch's messages.
    """
    from bisect import bisect_left

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topics = {partials_topic_name(app_id, table): table for table in TABLES}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    #: (table, source partition) -> batch max event time -> earliest ship ms
    batches: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
    try:
        metadata = consumer.list_topics(timeout=10)
        consumer.assign([
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics if t in metadata.topics for p in metadata.topics[t].partitions
        ])  # fmt: skip
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - idle_since < 1.5:
            messages = consumer.consume(num_messages=10_000, timeout=0.2)
            if messages:
                idle_since = time.monotonic()
            for message in messages:
                if message.error():
                    continue
                payload = json.loads(message.value())
                times = payload.get("t")  # {source partition: highest event time}, last chunk only
                if times is None:
                    continue
                items = [(int(p), int(t)) for p, t in times.items()]
                ts = message.timestamp()[1]
                for source, t in items:
                    shipped = batches[(topics[message.topic()], source)]
                    if t not in shipped or ts < shipped[t]:
                        shipped[t] = ts
    finally:
        consumer.close()
    out: dict[str, list[float | None]] = {}
    for table in TABLES:
        index = {s: sorted(b.items()) for (t, s), b in batches.items() if t == table}
        times: list[float | None] = []
        for produced, _, _, _, partition in sent:
            shipped = index.get(partition, [])
            j = bisect_left(shipped, (produced, -1))
            times.append(shipped[j][1] - produced if j < len(shipped) else None)
        out[table] = times
    return out


def scrape_histogram(url: str, name: str) -> dict[str, Any] | None:
    """Quantiles (bucket upper bounds) of a Prometheus histogram from ``url``, per label set."""
    import re
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    pattern = re.compile(rf"^{name}_bucket{{(.*)}} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        le = labels.pop("le")
        series = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        buckets[series].append((float(le), float(match.group(2))))
    if not buckets:
        return None
    out: dict[str, Any] = {}
    for series, points in buckets.items():
        points.sort()
        total = points[-1][1]
        if total:
            p50 = next(le for le, count in points if count >= 0.5 * total) * 1000
            p99 = next(le for le, count in points if count >= 0.99 * total) * 1000
            out[series] = {"count": int(total), "p50_ms_at_most": p50, "p99_ms_at_most": p99}
    return out


def _stats(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50), "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99), "max_ms": values[-1],
        "mean_ms": round(sum(values) / len(values), 1),
    }  # fmt: skip


def summarize(sent: list[Sent], reached: dict[str, list[float | None]]) -> dict[str, Any]:
    """p50/p90/p99 per table and for 'in all three tables' (the slowest of the three)."""
    measured = [i for i, s in enumerate(sent) if s[3]]
    out: dict[str, Any] = {}
    unreached = 0
    for table in TABLES:
        values = [reached[table][i] for i in measured]
        unreached += sum(v is None for v in values)
        out[table] = _stats([v for v in values if v is not None])
    all_three = []
    for i in measured:
        values = [reached[t][i] for t in TABLES]
        if all(v is not None for v in values):
            all_three.append(max(values))  # type: ignore[type-var]
    out["all_tables"] = _stats(all_three)
    out["unreached"] = unreached
    # p50/p99 of "all three tables" per 5 s of production time: shows stalls and their timing.
    buckets: dict[int, list[float]] = defaultdict(list)
    if measured:
        start = sent[measured[0]][0]
        for i in measured:
            values = [reached[t][i] for t in TABLES]
            if all(v is not None for v in values):
                buckets[(sent[i][0] - start) // 5000].append(max(values))  # type: ignore[type-var]
    out["by_5s"] = [
        {"from_s": b * 5, "p50_ms": percentile(sorted(v), 50), "p99_ms": percentile(sorted(v), 99)}
        for b, v in sorted(buckets.items())
    ]
    return out


def hook_latencies(path: Path, since_ms: int) -> dict[str, Any] | None:
    """Summary of the worker's LATENCY_LOG lines (merges after ``since_ms``), if it wrote any."""
    if not path.exists():
        return None
    per_table: dict[str, list[float]] = defaultdict(list)
    series: list[tuple[float, float]] = []  # (production ms, latency ms), every contribution
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        low, high, n = item["produced_ms_min"], item["produced_ms_max"], int(item["events"])
        if high < since_ms or n <= 0:
            continue
        produced = [low + (high - low) * (k + 0.5) / n for k in range(n)]
        kept = [(p, item["merged_ms"] - p) for p in produced if p >= since_ms]
        per_table[item["table"]].extend(ms for _, ms in kept)
        series.extend(kept)
    if not per_table:
        return None
    out: dict[str, Any] = {table: _stats(values) for table, values in per_table.items()}
    out["all_contributions"] = _stats([v for vs in per_table.values() for v in vs])
    out["all_contributions"]["by_10s"] = by_production_time(series, since_ms, 10)
    return out
