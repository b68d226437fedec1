"""(d) Quix Streams: the three telemetry aggregates as a Quix ``Application``.

``python -m bench.quix`` (configured by the environment, see ``bench/common.py``). The
straightforward Quix design:

- the source topic with a custom value deserializer (Confluent framing + fastavro with the
  registry's writer schema, the same :class:`bench.common.TelemetryDecoder` everyone uses) and a
  timestamp extractor that takes event time from ``event_timestamp``;
- ``filter`` with the product's validation rules;
- one branch per aggregate: project the fields the aggregate needs, ``group_by`` its group key
  (Quix repartitions through an internal topic, JSON-serialized), then
  ``tumbling_window(WINDOW, grace=GRACE).reduce(...)`` with the product's aggregation math and
  ``.final()`` (a window is emitted once, when it closes), then ``to_topic`` of one JSON record
  per window, as the other comparison implementations write.

State is Quix's default: RocksDB with changelog topics, at-least-once, commit every 5 s.

Window close: Quix's default ``closing_strategy="key"``: a key's window closes when a later
message *of the same key* passes its end + grace. There is no idle advance and no
cross-partition watermark, so the end of a finite stream needs a later event for every key,
processed after every real event (wherever it was consumed from). The harness gives Quix its
own copy of the data (``bench.telemetry.quix``) and sends the key-covering closing events once
Quix has consumed every real event and processed nothing for a second (``last_processed`` in
the status file): the equivalent of the others' end-of-stream close, timed in Quix's run.

Lateness: an event whose key has already seen a timestamp more than ``grace`` ahead is dropped
(counted in the status file's ``late``). After a ``group_by`` the repartition topic holds the
source partitions interleaved in the order they were consumed, and on a pre-produced backlog the
embedded broker hands them out very unevenly: one fetch returned ~54,000 messages of a single
partition (it ignores ``max.partition.fetch.bytes``). With the contract's 10 s grace a trial
run (``max.partition.fetch.bytes`` 64 KiB) dropped 1.06 million of the 1.5 million window
updates as late; with ``fetch.max.bytes`` 256 KiB and 32 KiB per partition one partition still
ran ahead by ~5,000 messages per round and over 80,000 updates were late before the run was
stopped. Our worker, the floor and naive Faust take the lowest source partition's event time
and are not affected. So that Quix computes the same aggregates, its grace is
``QUIX_GRACE_SECONDS``, which the harness sets to cover the data set's whole event-time span.
That changes when Quix emits (all windows at the end), not how much work it does (a few
thousand windows stay open instead of a few hundred).

Tansu also answers DescribeConfigs with only the configs a topic was created with, which
Quix's ``group_by`` needs: see :func:`_tolerate_missing_retention`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from app.engine.windowing import decode_key, encode_key
from app.validation.telemetry import validate
from bench.baseline_math import BASELINE_AGGREGATES, BaselineAggregate
from bench.common import BenchConfig, StatusFile, TelemetryDecoder, window_record

log = logging.getLogger("bench.quix")

#: the value fields each aggregate's fold reads
NEEDED_FIELDS = {
    "agg.telemetry.buffering": (
        "buffering_events", "buffering_duration_seconds", "watch_duration_seconds",
    ),
    "agg.telemetry.completion": ("event_type", "completion_percentage", "watch_duration_seconds"),
    "agg.telemetry.errors": ("error_count",),
}  # fmt: skip


class Counters:
    consumed = 0
    late = 0
    published = 0
    last_processed = 0.0


def _processed(topic: str, partition: int, offset: int) -> None:
    Counters.last_processed = time.time()


def _tolerate_missing_retention() -> None:
    """Tansu answers DescribeConfigs with only the configs a topic was created with (none for
    the stack's topics), and Quix 3.28's ``TopicManager.derive_topic_config`` (used by
    ``group_by`` for its repartition topic) requires ``retention.ms`` where it defaults
    ``retention.bytes`` to -1. Default ``retention.ms`` to -1 (infinite) the same way."""
    from quixstreams.models.topics.manager import TopicManager

    original = TopicManager.derive_topic_config.__func__  # type: ignore[attr-defined]
    if getattr(original, "_bench_patched", False):
        return

    def derive_topic_config(cls: Any, topics: Any) -> Any:
        for topic in topics:
            topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        return original(cls, topics)

    derive_topic_config._bench_patched = True  # type: ignore[attr-defined]
    TopicManager.derive_topic_config = classmethod(derive_topic_config)  # type: ignore[assignment]


def build_app(config: BenchConfig, status: StatusFile) -> Any:
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    _tolerate_missing_retention()
    decoder = TelemetryDecoder(config.registry_url)
    counters = Counters

    class ConfluentAvroDeserializer(Deserializer):
        def __call__(self, value: bytes, ctx: Any) -> Any:
            if counters.consumed == 0:
                status.first_consumed()
            counters.consumed += 1
            return decoder.decode(value)

    def event_time(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
        return value["event_timestamp"] if value else int(timestamp)

    def on_late(*args: Any) -> bool:
        counters.late += 1
        return False  # do not log each one

    app = Application(
        broker_address=config.bootstrap,
        consumer_group=config.group,
        auto_offset_reset="earliest",
        state_dir=str(config.data_dir / "quix-state"),
        loglevel="INFO",
        producer_extra_config={"linger.ms": 5, "enable.idempotence": False},
        on_message_processed=_processed,
    )
    source = app.topic(
        config.source_topic, value_deserializer=ConfluentAvroDeserializer(),
        key_deserializer="bytes", timestamp_extractor=event_time,
    )  # fmt: skip
    output = app.topic(config.output_topic, value_serializer="json", key_serializer="str")
    sdf = app.dataframe(source)
    sdf = sdf.filter(lambda event: event is not None and validate(event) is None)
    window_ms = config.window_ms
    grace_ms = int(float(os.environ.get("QUIX_GRACE_SECONDS") or config.grace_ms / 1000) * 1000)
    for aggregate in BASELINE_AGGREGATES:
        branch = _aggregate_branch(sdf, aggregate, window_ms, grace_ms, on_late)
        branch.to_topic(output)
    return app


def _aggregate_branch(
    sdf: Any, aggregate: BaselineAggregate, window_ms: int, grace_ms: int, on_late: Any
) -> Any:
    fields = (*aggregate.key_fields, *NEEDED_FIELDS[aggregate.table])

    def project(event: dict[str, Any]) -> dict[str, Any]:
        return {name: event[name] for name in fields}

    def group_key(value: dict[str, Any]) -> str:
        return encode_key(aggregate.key_values(value))

    def initializer(value: dict[str, Any]) -> list[float]:
        acc = aggregate.new()
        aggregate.add(acc, value)
        return acc

    def reducer(acc: list[float], value: dict[str, Any]) -> list[float]:
        aggregate.add(acc, value)
        return acc

    def to_record(window: dict[str, Any], key: Any, timestamp: int, headers: Any) -> Any:
        Counters.published += 1
        return window_record(
            aggregate, decode_key(key), window["start"], window_ms, window["value"]
        )

    grouped = sdf.apply(project).group_by(group_key, name=aggregate.table.replace(".", "-"))
    windows = (
        grouped.tumbling_window(window_ms, grace_ms=grace_ms, on_late=on_late)
        .reduce(reducer=reducer, initializer=initializer)
        .final()
    )
    return windows.apply(to_record, metadata=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = BenchConfig.from_env()
    status = StatusFile(config.status_file)
    status.write()

    def report() -> None:
        while True:
            status.update(force=True, consumed=Counters.consumed, late=Counters.late,
                          published=Counters.published,
                          last_processed=Counters.last_processed)  # fmt: skip
            time.sleep(0.2)

    threading.Thread(target=report, daemon=True).start()
    app = build_app(config, status)
    app.run()


if __name__ == "__main__":
    main()
