"""``python -m app.tools.replay``: rebuild a topic's derived aggregates from history (seed 003).

::

    python -m app.tools.replay --topic acme-telemetry
        [--from earliest | --from 2025-08-11T14:30:20Z] [--app-id NAME] [--idle-seconds N]

What it does, in order:

1. Snapshots the replayed topic's partitions: where the replay starts (the earliest offset, or
   the first offset whose record timestamp is >= ``--from`` as the broker reports it) and where
   it ends: the end offsets that exist now, taken from a fetch's high watermark, because the
   embedded Tansu broker's ``ListOffsets(latest)`` answers the last batch's base offset + 1
   (lessons.md). Records produced after this moment are not part of the replay.
2. Starts one worker (``faust -A app.main worker``, :func:`app.tools.run.start_worker`) under a
   FRESH ``APP_ID`` (default ``<APP_ID>-replay-<UTC timestamp>``): a new consumer group (so, with
   Faust's ``auto_offset_reset=earliest``, the topic is read from its first offset), new
   internal partials topics, new tables and changelogs, and a fresh ``DATA_DIR``. The worker
   gets ``SOURCE_TOPICS=<topic>`` (it consumes no other source topic; a topic without an agent
   fails it at start) and, for ``--from <time>``, ``REPLAY_FROM_MS``: its replayed partitions
   start at the first offset with a record timestamp >= that time where the broker can look
   offsets up by timestamp (Apache Kafka), and every record with an earlier record timestamp
   is skipped, acked but not counted (``StreamPulseApp.configure_sources`` and
   ``seek_replay_start`` in ``app/engine/batching.py``). Tansu answers a lookup by timestamp
   with the partition's first offset whatever the time, so there the skip alone does the work:
   the replay is the same on both brokers, only slower on Tansu for a late ``--from``.
3. Each message is decoded with the schema it was written with (the codec fetches the writer
   schema by the id in the message and resolves it into the worker's reader schema), so
   history written by older producers is counted as it was written.
4. Waits until the replay group has committed the snapshot's end offsets on every partition
   (committed offsets rather than ``streampulse_events_consumed_total``: they stay exact when
   records before ``--from`` are skipped uncounted and when at-least-once delivery re-reads a
   batch), then until the internal partials topics are consumed too, then until every window has
   closed: event time stops with the data, so the watermark follows the wall clock after
   ``IDLE_ADVANCE_SECONDS`` (``--idle-seconds``) without data, and the last window closes
   ``GRACE_SECONDS`` after its end. Closed windows are seen in the worker's ``/tables/{name}/``
   view (no open rows, twice in a row); where that view is absent or cannot list every row, it
   waits the longest this can take instead (idle + window + grace + 2 s after the merge).
5. Prints a summary (records read, counted, dead-lettered, late; windows published per table,
   from the worker's ``/metrics``) and stops the worker.

``--from`` uses the Kafka record timestamp (``CreateTime`` as the producer set it), not the
event's own event-time field; windows are still built from the event time. Producers that
set the record timestamp to the event time (as the tests do) make the two agree; otherwise a
window that straddles ``--from`` may be rebuilt from part of its events. For complete windows,
give a window start.

Output and duplicates: the rebuilt window records go to the same derived topics as the live
worker's (for ``acme-telemetry``, ``agg.telemetry.*``). A record's ``event_id`` is a UUID
derived from (table, group key, window start) (``app/engine/publish.py``), so a rebuilt window
carries the same id as the record the live worker published for it: consumers that drop
duplicate ``event_id`` s keep one of them (the first seen, or the newest ``occurred_at`` to
prefer the rebuild). Windows rebuilt from a partial history (``--from`` inside a window, or a
topic whose retention deleted older records) also carry that id, with the smaller numbers. The
replay group's internal topics (``<app id>-*-partials``, ``-changelog``) stay on the broker
afterwards; delete them when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.engine.tables import partials_topic_name
from app.settings import Settings, load_settings
from app.tools.results import assigned_consumer, metric_sum, read_metrics
from app.tools.run import start_worker, stop_process, wait_ready
from app.tools.stack import free_port

__all__ = [
    "OffsetRange",
    "ReplayError",
    "ReplayResult",
    "committed_offsets",
    "default_app_id",
    "main",
    "parse_from",
    "replay",
    "snapshot_offsets",
]

log = logging.getLogger(__name__)

#: How often the replay polls the broker and the worker.
POLL_SECONDS = 1.0


class ReplayError(RuntimeError):
    """The replay could not run or did not finish (the message says why)."""


@dataclass(frozen=True)
class OffsetRange:
    """One partition of the replay: offsets ``start`` (inclusive) to ``end`` (exclusive)."""

    partition: int
    start: int
    end: int

    @property
    def records(self) -> int:
        return max(0, self.end - self.start)


# -- arguments ----------------------------------------------------------------------------------


def parse_from(value: str) -> int | None:
    """``earliest`` -> None; an ISO-8601 time (no zone: UTC) -> epoch milliseconds."""
    if value.strip().lower() == "earliest":
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--from takes 'earliest' or an ISO-8601 time such as 2025-08-11T14:30:00Z,"
            f" got {value!r}"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def default_app_id(base: str, now: datetime | None = None) -> str:
    """``<APP_ID>-replay-<UTC timestamp>``: a new consumer group and topic prefix."""
    now = now or datetime.now(UTC)
    return f"{base}-replay-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"


# -- broker -------------------------------------------------------------------------------------


async def _true_end_offsets(consumer: Any, tps: Sequence[Any]) -> dict[Any, int]:
    """End offsets as a fetch's high watermark reports them (``consumer`` has ``tps``
    assigned). ``ListOffsets(latest)`` alone can be short on Tansu (lessons.md)."""
    listed = await consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, listed[tp])
    deadline = time.monotonic() + 15
    while any(consumer.highwater(tp) is None for tp in tps):
        if time.monotonic() > deadline:
            raise ReplayError(f"no high watermark for {tps} after 15 s")
        await consumer.getmany(*tps, timeout_ms=500, max_records=1)
    return {tp: max(listed[tp], consumer.highwater(tp)) for tp in tps}


async def snapshot_offsets(
    bootstrap: str, topic: str, from_ms: int | None = None
) -> list[OffsetRange]:
    """Where the replay of ``topic`` starts and ends, per partition (see the module docstring).

    The start for ``from_ms`` is what the broker answers to a lookup by timestamp (Tansu: the
    first offset whatever the time), so it bounds the records the worker reads, not those it
    counts.
    """
    async with assigned_consumer(bootstrap, [topic]) as (consumer, tps):
        if not tps:
            raise ReplayError(f"topic {topic!r} does not exist on {bootstrap}")
        beginning = await consumer.beginning_offsets(tps)
        end = await _true_end_offsets(consumer, tps)
        start = dict(beginning)
        if from_ms is not None:
            found = await consumer.offsets_for_times({tp: from_ms for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                start[tp] = end[tp] if hit is None else hit.offset
        return [
            OffsetRange(tp.partition, min(max(start[tp], beginning[tp]), end[tp]), end[tp])
            for tp in tps
        ]


async def topic_end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """True end offsets of every partition of ``topics`` (missing topics: none)."""
    async with assigned_consumer(bootstrap, list(topics)) as (consumer, tps):
        if not tps:
            return {}
        ends = await _true_end_offsets(consumer, tps)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def committed_offsets(
    bootstrap: str, group: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int | None]:
    """The group's committed offsets (OffsetFetch; the consumer joins no group and commits
    nothing). The admin client's ``list_consumer_group_offsets`` fails on Tansu (lessons.md)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            (topic, p): await consumer.committed(TopicPartition(topic, p))
            for topic, p in partitions
        }
    finally:
        await consumer.stop()


# -- worker -------------------------------------------------------------------------------------


def _get(url: str, timeout: float = 5.0) -> bytes | None:
    """The body of a 200 answer, or None (no answer, or another status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read() if response.status == 200 else None
    except (OSError, urllib.error.HTTPError):
        return None


def open_windows(base_url: str, tables: Sequence[str]) -> int | None:
    """Open windows the worker's ``/tables/{name}/`` views list; None if a view is absent or
    does not list every row (then only the time bound tells)."""
    count = 0
    for table in tables:
        body = _get(f"{base_url}/tables/{table}/?limit=10000")
        if body is None:
            return None
        try:
            view = json.loads(body)
            rows = view["rows"]
            if view.get("total", len(rows)) > len(rows):
                return None
            count += sum(1 for row in rows if not row["closed"])
        except (ValueError, KeyError, TypeError):
            return None
    return count


def _replayed_tables(topic: str) -> list[str]:
    """The derived tables fed by ``topic``'s batch agent (fails clearly if it has none)."""
    from app.main import engine

    pipeline = engine.pipelines.get(topic)
    if pipeline is None:
        sources = sorted(engine.pipelines)
        raise ReplayError(f"no agent consumes {topic!r}; topics with agents: {sources}")
    # Only the topic's own windowed tables: a one-topic replay runs no join (wiring.py).
    return [table.aggregate.table for table in pipeline.tables if hasattr(table, "aggregate")]


# -- the replay ---------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """What a finished replay read and published (counts from the worker's /metrics)."""

    app_id: str
    ranges: list[OffsetRange]
    counts: dict[str, int]
    emitted: dict[str, int]
    seconds: float


def _describe_from(from_ms: int | None) -> str:
    if from_ms is None:
        return "earliest"
    return datetime.fromtimestamp(from_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def replay(
    topic: str,
    *,
    from_ms: int | None,
    app_id: str,
    idle_seconds: float,
    settings: Settings,
    state_dir: Path,
    timeout: float,
    out: Any = sys.stdout,
) -> ReplayResult:
    """Run the replay (module docstring); raises :class:`ReplayError` if it cannot finish."""
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    bootstrap = settings.broker_bootstrap
    tables = _replayed_tables(topic)
    if app_id == settings.app_id:
        raise ReplayError(f"--app-id {app_id!r} is the live APP_ID; a replay needs a new one")
    ranges = asyncio.run(snapshot_offsets(bootstrap, topic, from_ms))
    source_tps = [(topic, r.partition) for r in ranges]
    existing = asyncio.run(committed_offsets(bootstrap, app_id, source_tps))
    if any(offset is not None for offset in existing.values()):
        raise ReplayError(f"consumer group {app_id!r} has offsets on {topic}: not a fresh group")

    started = time.monotonic()
    deadline = started + timeout
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "APP_ID": app_id,
        "DATA_DIR": str(state_dir / "data"),
        "WEB_PORT": str(port),
        "WEB_HOST": "127.0.0.1",
        "WORKER_CANONICAL_URL": base_url,
        "IDLE_ADVANCE_SECONDS": str(idle_seconds),
        "SOURCE_TOPICS": topic,
        "REPLAY_FROM_MS": "" if from_ms is None else str(from_ms),
    }
    log_path = state_dir / "worker.log"
    say(
        f"replay {app_id}: {topic} from {_describe_from(from_ms)}, "
        f"{sum(r.records for r in ranges)} records in range "
        f"({', '.join(f'{r.partition}: {r.start}..{r.end}' for r in ranges)}); "
        f"worker log {log_path}"
    )
    worker = start_worker(env, port, log_path)
    try:
        wait_ready(port, worker, timeout=max(1.0, min(90.0, deadline - time.monotonic())))
        say(f"worker ready in {time.monotonic() - started:.1f}s ({base_url})")

        def wait_committed(ends: Mapping[tuple[str, int], int], what: str) -> None:
            last_report = time.monotonic()
            while True:
                if worker.poll() is not None:
                    raise ReplayError(f"the worker exited with {worker.returncode}")
                committed = asyncio.run(committed_offsets(bootstrap, app_id, ends))
                behind = sum(max(0, end - (committed[tp] or 0)) for tp, end in ends.items())
                if behind == 0:
                    return
                if time.monotonic() > deadline:
                    raise ReplayError(f"timed out: {behind} records of {what} not committed")
                if time.monotonic() - last_report >= 5:
                    last_report = time.monotonic()
                    say(f"  {what}: {behind} records to go")
                time.sleep(POLL_SECONDS)

        wait_committed({(topic, r.partition): r.end for r in ranges if r.records}, topic)
        read_at = time.monotonic()
        say(f"{topic} read up to the snapshot in {read_at - started:.1f}s")
        partials = [partials_topic_name(app_id, t) for t in tables]
        partial_ends = asyncio.run(topic_end_offsets(bootstrap, partials))
        wait_committed({tp: e for tp, e in partial_ends.items() if e > 0}, "partials")
        merged_at = time.monotonic()

        bound = idle_seconds + (settings.window_ms + settings.grace_ms) / 1000 + 2
        quiet = 0
        while True:
            if worker.poll() is not None:
                raise ReplayError(f"the worker exited with {worker.returncode}")
            still_open = open_windows(base_url, tables)
            quiet = quiet + 1 if still_open == 0 else 0
            waited = time.monotonic() - merged_at
            if quiet >= 2 or (still_open is None and waited >= bound):
                break
            if time.monotonic() > deadline:
                raise ReplayError(f"timed out with {still_open} windows open")
            time.sleep(POLL_SECONDS)

        samples = read_metrics(base_url) or {}
        counts = {
            "consumed": metric_sum(samples, "streampulse_events_consumed_total", topic=topic),
            "aggregated": metric_sum(samples, "streampulse_events_aggregated_total", topic=topic),
            "dead_lettered": metric_sum(samples, "streampulse_dlq_messages_total", topic=topic),
            "late": metric_sum(samples, "streampulse_late_events_total", topic=topic),
        }
        emitted = {
            t: metric_sum(samples, "streampulse_aggregates_emitted_total", table=t)
            for t in tables
        }
        result = ReplayResult(app_id, ranges, counts, emitted, time.monotonic() - started)
    finally:
        stop_process(worker)
    in_range = sum(r.records for r in ranges)
    done = f"replay {app_id} done in {result.seconds:.1f}s: {in_range} records read"
    if not samples:
        say(f"{done} (the worker served no /metrics: counts unknown)")
        return result
    skipped = in_range - counts["consumed"]
    say(
        f"{done}, {counts['consumed']} counted as consumed"
        + (f" ({skipped} before --from skipped)" if from_ms is not None and skipped > 0 else "")
        + f", {counts['aggregated']} aggregated, {counts['dead_lettered']} dead-lettered,"
        f" {counts['late']} late"
    )
    for table, n in emitted.items():
        say(f"  {table}: {n} window records published")
    if counts["late"]:
        say("WARNING: late events in a replay: some windows closed before all their data was"
            " read (raise --idle-seconds)")  # fmt: skip
    return result


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings()
    parser = argparse.ArgumentParser(
        prog="python -m app.tools.replay", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--topic", required=True, help="source topic to replay")
    parser.add_argument(
        "--from", dest="from_ms", type=parse_from, default=None, metavar="earliest|TIME",
        help="earliest (default) or an ISO-8601 time (no zone: UTC); by Kafka record timestamp",
    )  # fmt: skip
    parser.add_argument("--app-id", default=None,
                        help="the replay's APP_ID (default <APP_ID>-replay-<UTC time>)")
    parser.add_argument(
        "--idle-seconds", type=float, default=settings.idle_advance_seconds,
        help="the replay worker's IDLE_ADVANCE_SECONDS (default: the environment's, or 5)",
    )  # fmt: skip
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="worker data and log (default: a temporary directory, removed"
                             " after a successful replay)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="give up after this many seconds (default 3600)")
    args = parser.parse_args(argv)
    if args.idle_seconds <= 0:
        parser.error("--idle-seconds must be > 0")

    owned = args.state_dir is None
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="streampulse-replay-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    app_id = args.app_id or default_app_id(settings.app_id)
    try:
        replay(
            args.topic, from_ms=args.from_ms, app_id=app_id, idle_seconds=args.idle_seconds,
            settings=settings, state_dir=state_dir, timeout=args.timeout,
        )  # fmt: skip
    except (ReplayError, TimeoutError, RuntimeError) as exc:
        print(f"replay failed: {exc}", file=sys.stderr)
        log_path = state_dir / "worker.log"
        if log_path.exists():
            tail = log_path.read_text(errors="replace")[-4000:]
            print(f"--- {log_path} (tail) ---\n{tail}", file=sys.stderr)
        elif owned:  # failed before a worker started: nothing worth keeping
            shutil.rmtree(state_dir, ignore_errors=True)
        return 1
    if owned:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
