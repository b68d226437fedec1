"""(a) The baseline: what a Faust user writes first for the three telemetry aggregates.

``python -m bench.naive_faust worker -l warn`` (configured by the environment, see
``bench/common.py``). One ordinary agent iterates the raw source topic event by event; each
event is decoded (the shared :class:`bench.common.TelemetryDecoder`: Confluent framing,
registry writer schema, fastavro), validated with the product's rules, and folded into three
Faust tables (RocksDB, with changelogs) with one ``table[key] = acc`` per aggregate per event,
so one changelog record per aggregate per event. Table keys are ``<group key>@<window start>``.

Faust's windowed tables cannot do what the contract asks (``on_window_close`` runs on wall-clock
time, without grace: see lessons.md), so windows are closed here by the product's event-time
rule (``app.engine.windowing.PartitionClock``: lowest of the source partitions' highest event times,
idle advance after ``IDLE_ADVANCE_SECONDS``); a closed window's record is sent to the output
topic. Closed windows stay in the tables (nothing deletes them), as in a first version.

The tables use ``use_partitioner=True``: a group key arrives from every source partition, and
with Faust's default (the changelog and RocksDB partition of the *source* event) each source
partition would keep its own copy of a key's accumulator and the published numbers would be
wrong. With the key's own partition and this single worker owning every partition, reads and
writes of a key always meet, provided the RocksDB store remembers where each key was last
written: its ``_set`` writes to the *event's* partition database even with ``use_partitioner``,
and a read finds the key through an LRU index (``table_key_index_size``, default 1,000 keys)
or, once evicted, takes the first partition database holding a copy, an older one. With
several windows open (Tansu hands the backlog out unevenly across partitions) 300 titles per
window passed 1,000 keys and a 500,000-event run lost updates; the index is therefore sized
for every key of the run. The idiomatic multi-worker alternative, re-keying through a
repartition topic (``stream.group_by``), would add a produce and a consume per event per
aggregate: slower still, so this baseline flatters Faust.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import Any

import faust

from app.engine.windowing import PartitionClock, encode_key
from app.validation.telemetry import validate
from bench.baseline_math import BASELINE_AGGREGATES
from bench.common import BenchConfig, StatusFile, TelemetryDecoder, window_record

log = logging.getLogger("bench.naive_faust")

config = BenchConfig.from_env()
status = StatusFile(config.status_file)
decoder = TelemetryDecoder(config.registry_url)

app = faust.App(
    config.group,
    broker=f"kafka://{config.bootstrap}",
    store="rocksdb://",
    datadir=str(config.data_dir),
    topic_partitions=config.partitions,
    table_standby_replicas=0,
    web_enabled=False,
    broker_session_timeout=10.0,
    broker_heartbeat_interval=3.0,
    table_key_index_size=10_000_000,  # see the module docstring: reads must find the last write
)
source = app.topic(config.source_topic, key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")  # fmt: skip
output = app.topic(config.output_topic, key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")  # fmt: skip
tables = [
    app.Table(
        "naive-" + aggregate.table.removeprefix("agg.telemetry."),
        default=None,
        partitions=config.partitions,
        use_partitioner=True,
        schema=faust.Schema(
            key_type=str, value_type=list, key_serializer="json", value_serializer="json"
        ),
    )
    for aggregate in BASELINE_AGGREGATES
]

WINDOW_MS, GRACE_MS = config.window_ms, config.grace_ms
clock = PartitionClock(config.partitions, config.idle_advance_seconds, time.monotonic())
#: window start -> (aggregate index, key values) with that window open
open_windows: dict[int, set[tuple[int, tuple[str, ...]]]] = defaultdict(set)
counters = {"consumed": 0, "invalid": 0, "late": 0, "published": 0}


def table_key(key_values: tuple[str, ...], window_start: int) -> str:
    return f"{encode_key(key_values)}@{window_start}"


async def close_due(now: float) -> None:
    """Publish every window the watermark has passed (end + grace)."""
    watermark = clock.watermark(now)
    due = sorted(s for s in open_windows if s + WINDOW_MS + GRACE_MS <= watermark)
    if not due:
        return
    clock.floor = watermark
    closing = [(start, open_windows.pop(start)) for start in due]  # before any await
    for start, keys in closing:
        for index, key_values in keys:
            aggregate = BASELINE_AGGREGATES[index]
            acc = tables[index].get(table_key(key_values, start))
            record = window_record(aggregate, key_values, start, WINDOW_MS, acc)
            await output.send(key=encode_key(key_values).encode(),
                              value=json.dumps(record).encode())  # fmt: skip
            counters["published"] += 1


@app.agent(source)
async def telemetry(stream: Any) -> None:
    aggregates = list(enumerate(zip(BASELINE_AGGREGATES, tables, strict=True)))
    async for event in stream.events():
        counters["consumed"] += 1
        if counters["consumed"] == 1:
            status.first_consumed()
        value = decoder.decode(event.value)
        if value is None or validate(value) is not None:
            counters["invalid"] += 1
            continue
        now = time.monotonic()
        ts = value["event_timestamp"]
        start = ts - ts % WINDOW_MS
        if start + WINDOW_MS + GRACE_MS <= clock.watermark(now):
            counters["late"] += 1
            continue
        for index, (aggregate, table) in aggregates:
            key_values = aggregate.key_values(value)
            key = table_key(key_values, start)
            acc = table.get(key)
            if acc is None:
                acc = aggregate.new()
                open_windows[start].add((index, key_values))
            aggregate.add(acc, value)
            table[key] = acc
        clock.observe(event.message.partition, ts, now)
        await close_due(now)


@app.timer(interval=0.5)
async def idle_close_and_report() -> None:
    await close_due(time.monotonic())
    status.update(force=True, **counters)


if __name__ == "__main__":
    app.main()
