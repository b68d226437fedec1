"""The benchmark's data: a fixed, seeded telemetry data set, its producer and its oracle.

Throughput data set (:func:`realistic_events`, produced by :func:`build_datasets`): valid
telemetry from ``app.tools.simulator.telemetry.TelemetryFactory`` (seeded), event time spread evenly
over a number of tumbling windows starting at :data:`BASE_MS` (the factory's own 0-1.5 s jitter
keeps event time roughly, not strictly, ordered). Each event is encoded once with fastavro and
framed with ``app.engine.codec.frame`` under the registry's id of ``acme-telemetry-value``, keyed by
``customer_id``, partitioned with Kafka's murmur2 partitioner (as Java and aiokafka producers
do), with its event time as the Kafka timestamp, in batches of at most 32 KiB.

A topic's data ends with *closing events*: valid telemetry one hour after the last real window,
at least one on every source partition (and, with ``cover_keys``, one for every group key of
every aggregate). They close every real window by event time, with no idle timer involved: our
worker, the floor and naive Faust close by the lowest source partition's event time, so the
closing events can sit at the end of the data. Quix Streams closes a key's windows when a later
event of that key arrives and has no cross-partition watermark; its copy of the data gets its
(key-covering) closing events only once it has processed everything else (``defer_closing``,
sent by the harness when Quix goes idle: see bench/README.md). The closing events open windows
of their own that never close in time; the comparison ignores every window at or after
:attr:`DataSet.close_window`.

The oracle (:class:`Oracle`) computes the expected window records with plain Python straight
from the contract's definitions (like the integration test's oracle, sharing no code with
``models/``).
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import urllib.request
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import fastavro

from app.catalog import load_schema
from app.engine.codec import frame, parse_raw
from app.engine.windowing import key_partition
from app.tools.simulator.telemetry import TelemetryFactory

__all__ = [
    "BASE_MS",
    "TABLES",
    "DataSet",
    "Oracle",
    "Target",
    "build_datasets",
    "closing_events",
    "produce",
    "realistic_events",
    "registry_schema_id",
    "scale_events",
]

BASE_MS = 1_754_922_600_000  # 2025-08-11T14:30:00Z, a multiple of 60 s
SOURCE_TOPIC = "acme-telemetry"
TABLES = ("agg.telemetry.buffering", "agg.telemetry.completion", "agg.telemetry.errors")
KEY_FIELDS = {
    "agg.telemetry.buffering": ("country", "isp"),
    "agg.telemetry.completion": ("title_id",),
    "agg.telemetry.errors": ("device_os", "app_version"),
}

#: (table, key tuple, window start)
WindowId = tuple[str, tuple[str, ...], int]


def f32(value: float) -> float:
    """What an Avro ``float`` carries of ``value``."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


class Oracle:
    """Expected window records, folded incrementally (no event is kept)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._sums: dict[str, dict[tuple, list[float]]] = {t: {} for t in TABLES}
        self.events = 0

    def add(self, e: dict[str, Any]) -> None:
        self.events += 1
        start = e["event_timestamp"] // self.window_ms * self.window_ms
        event_type = e["event_type"]
        sums = self._sums
        b = sums["agg.telemetry.buffering"].get(k := ((e["country"], e["isp"]), start))
        if b is None:
            b = sums["agg.telemetry.buffering"][k] = [0, 0, 0, 0]
        b[0] += 1
        b[1] += e["buffering_events"]
        b[2] += e["buffering_duration_seconds"]
        b[3] += e["watch_duration_seconds"]
        c = sums["agg.telemetry.completion"].get(k := ((e["title_id"],), start))
        if c is None:
            c = sums["agg.telemetry.completion"][k] = [0, 0, 0, 0.0, 0]
        c[0] += event_type == "start"
        c[1] += event_type == "complete"
        if event_type in ("stop", "complete"):
            c[2] += 1
            c[3] += f32(e["completion_percentage"])
        c[4] += e["watch_duration_seconds"]
        r = sums["agg.telemetry.errors"].get(k := ((e["device_os"], e["app_version"]), start))
        if r is None:
            r = sums["agg.telemetry.errors"][k] = [0, 0, 0]
        r[0] += 1
        r[1] += e["error_count"] > 0
        r[2] += e["error_count"]

    def keys(self, table: str) -> list[tuple[str, ...]]:
        """Distinct group keys of ``table`` over all windows, sorted."""
        return sorted({key for key, _ in self._sums[table]})

    def windows(self) -> list[int]:
        return sorted({start for sums in self._sums.values() for _, start in sums})

    def expected(self) -> dict[WindowId, dict[str, Any]]:
        out: dict[WindowId, dict[str, Any]] = {}
        for (key, start), (events, bev, bsec, watch) in self._sums[TABLES[0]].items():
            out[(TABLES[0], key, start)] = {
                "events": events, "buffering_events": bev, "buffering_seconds": bsec,
                "watch_seconds": watch, "buffering_ratio": ratio(bsec, watch),
            }  # fmt: skip
        for (key, start), (starts, completes, ended, pct, watch) in self._sums[TABLES[1]].items():
            out[(TABLES[1], key, start)] = {
                "starts": starts, "completes": completes,
                "completion_rate": ratio(completes, starts),
                "avg_completion_percentage": ratio(pct, ended), "watch_seconds": watch,
            }  # fmt: skip
        for (key, start), (events, error_events, errors) in self._sums[TABLES[2]].items():
            out[(TABLES[2], key, start)] = {
                "events": events, "error_events": error_events, "error_count": errors,
                "error_rate": ratio(error_events, events),
            }  # fmt: skip
        return out


@dataclass
class DataSet:
    """What was produced, and what every implementation must publish."""

    real_events: int
    closing: int
    window_ms: int
    close_window: int  # windows starting here or later are not compared
    expected: dict[WindowId, dict[str, Any]]
    windows: list[int]
    distinct: dict[str, int] = field(default_factory=dict)
    generate_seconds: float = 0.0
    produce_seconds: float = 0.0
    #: closing events not produced yet: (partition, key, value, timestamp), see Target
    deferred: list[tuple[int, bytes, bytes, int]] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return self.real_events + self.closing


def registry_schema_id(registry_url: str, subject: str = f"{SOURCE_TOPIC}-value") -> int:
    url = f"{registry_url.rstrip('/')}/subjects/{subject}/versions/latest"
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(json.loads(response.read())["id"])


class FastTelemetryFactory(TelemetryFactory):
    """``TelemetryFactory`` with the titles' cumulative weights computed once: ``choices`` with
    ``weights=`` cumulates them on every call (O(titles) per session). The same events for the
    same seed: ``choices`` draws identically from weights and from their cumulation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cum_titles = list(accumulate(self.title_weights))

    def _start(self, rng: random.Random) -> Any:
        return super()._start(_CumulatedTitles(rng, self.title_weights, self._cum_titles))


class _CumulatedTitles:
    """Forwards to ``rng``; ``choices(titles, title_weights)`` uses the precomputed cumulation."""

    def __init__(self, rng: random.Random, weights: list[float], cum: list[float]) -> None:
        self._rng, self._weights, self._cum = rng, weights, cum

    def choices(self, population: Any, weights: Any = None, **kwargs: Any) -> list[Any]:
        if weights is self._weights:
            return self._rng.choices(population, cum_weights=self._cum)
        return self._rng.choices(population, weights, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)


def realistic_events(
    count: int, seed: int, window_ms: int, windows: int, customers: int, titles: int
) -> Iterator[dict[str, Any]]:
    """``count`` events of the simulator's telemetry factory, event time spread evenly."""
    factory = FastTelemetryFactory(seed=seed, customers=customers, titles=titles)
    rng = random.Random(seed)
    span = window_ms * windows - 1500
    for i in range(count):
        # The factory sets event_timestamp = now_ms - (0..1500 ms).
        _, event = factory.make(rng, BASE_MS + 1500 + i * span // count)
        yield event


def closing_events(
    oracle: Oracle, close_ms: int, partitions: int, cover_keys: bool
) -> list[tuple[int, dict[str, Any]]]:
    """(partition, event) pairs that close every real window (see the module docstring)."""
    keys = {t: oracle.keys(t) for t in TABLES}
    count = max(partitions, *(len(k) for k in keys.values())) if cover_keys else partitions
    out = []
    for i in range(count):
        (country, isp), (title,), (device_os, version) = (keys[t][i % len(keys[t])] for t in TABLES)
        partition = i % partitions
        n = i
        while True:  # a customer id that murmur2 puts on this partition, like a real producer
            customer = f"CUST_{0xC0000000 + n:08x}"
            if key_partition(customer.encode(), partitions) == partition:
                break
            n += count
        out.append((partition, {
            "event_id": f"EVENT_{0xE0000000 + i:08x}", "customer_id": customer,
            "title_id": title, "session_id": f"SESSION_{0xC0000000 + i:08x}",
            "event_type": "start", "event_timestamp": close_ms + i % 1000,
            "watch_duration_seconds": 0, "position_seconds": 0, "completion_percentage": 0.0,
            "device_type": "tv", "device_id": f"DEVICE_{0xC0000000 + i:08x}",
            "device_os": device_os, "app_version": version, "quality": "HD",
            "bandwidth_mbps": 50.0, "buffering_events": 0, "buffering_duration_seconds": 0,
            "error_count": 0, "ip_address": "10.0.0.1", "country": country, "state": None,
            "city": "Closing", "isp": isp, "connection_type": "wifi",
        }))  # fmt: skip
    return out


class Encoder:
    """Event dict -> Confluent-framed Avro bytes with the registry's schema id."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        self.schema = parse_raw(load_schema("telemetry/TelemetryEvent.avsc"))

    def __call__(self, event: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.schema, event)
        return frame(self.schema_id, buffer.getvalue())


def new_producer(bootstrap: str, **extra: Any) -> Any:
    from confluent_kafka import Producer

    return Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 32_768,
        "batch.num.messages": 10_000, "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576, "partitioner": "murmur2_random",
        "enable.idempotence": False, **extra,
    })  # fmt: skip


def produce(producer: Any, topic: str, key: bytes, value: bytes, partition: int = -1,
            timestamp: int = 0) -> None:  # fmt: skip
    """Produce one message, waiting for queue space when the client's buffer is full."""
    while True:
        try:
            producer.produce(topic, value, key, partition=partition, timestamp=timestamp)
            return
        except BufferError:
            producer.poll(0.05)


@dataclass(frozen=True)
class Target:
    """A topic to fill: the first ``events`` events of the stream, then its closing events
    (or, with ``defer_closing``, kept in :attr:`DataSet.deferred` for the harness to send
    later)."""

    topic: str
    events: int
    cover_keys: bool
    defer_closing: bool = False


def build_datasets(
    bootstrap: str, registry_url: str, targets: list[Target], *, window_ms: int,
    partitions: int, events: Iterator[dict[str, Any]],
    progress: Callable[[str], None] = print,
) -> dict[str, DataSet]:  # fmt: skip
    """Encode and produce ``events`` (each target takes its prefix); return each target's oracle.

    One pass: an event is encoded once and produced to every target whose prefix it is in.
    """
    encode = Encoder(registry_schema_id(registry_url))
    oracles = {t.topic: Oracle(window_ms) for t in targets}
    customers: dict[str, set[str]] = {t.topic: set() for t in targets}
    producer = new_producer(bootstrap)
    limit = max(t.events for t in targets)
    started = time.monotonic()
    for n, event in enumerate(events, 1):
        key, value, ts = event["customer_id"], encode(event), event["event_timestamp"]
        for target in targets:
            if n <= target.events:
                oracles[target.topic].add(event)
                customers[target.topic].add(key)
                produce(producer, target.topic, key.encode(), value, timestamp=ts)
        if n % 1000 == 0:
            producer.poll(0)
        if n % 100_000 == 0:
            progress(f"  {n:,} events generated and produced ({time.monotonic() - started:.0f}s)")
        if n >= limit:
            break
    generated = time.monotonic() - started
    out: dict[str, DataSet] = {}
    for target in targets:
        oracle = oracles[target.topic]
        close_ms = max(oracle.windows()) + 3600_000
        closing = closing_events(oracle, close_ms, partitions, target.cover_keys)
        encoded = [(partition, event["customer_id"].encode(), encode(event),
                    event["event_timestamp"]) for partition, event in closing]  # fmt: skip
        if not target.defer_closing:
            for partition, key, value, ts in encoded:
                produce(producer, target.topic, key, value, partition, ts)
        out[target.topic] = DataSet(
            real_events=oracle.events, closing=len(closing), window_ms=window_ms,
            close_window=close_ms - close_ms % window_ms, expected=oracle.expected(),
            windows=oracle.windows(), generate_seconds=generated,
            deferred=encoded if target.defer_closing else [],
            distinct={
                "customers": len(customers[target.topic]),
                **{t.removeprefix("agg.telemetry.") + "_keys": len(oracle.keys(t))
                   for t in TABLES},
            },
        )  # fmt: skip
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} messages not delivered")
    for dataset in out.values():
        dataset.produce_seconds = time.monotonic() - started
    return out


def scale_events(
    count: int, seed: int, window_ms: int, windows: int, customers: int, titles: int
) -> Iterator[dict[str, Any]]:
    """A lighter generator for high key cardinality: every event is drawn on its own.

    Customer ids walk a seeded permutation of ``customers`` ids, so the first ``customers``
    events all have different customers; titles are drawn half uniformly (every title shows
    up) and half from the simulator's Zipf-like popularity curve. Country, ISP, device and app
    version come from 1,000 customer profiles of the simulator's ``TelemetryFactory`` (its
    realism, without building a million profiles). Every event passes the validation rules.
    """
    rng = random.Random(seed)
    profiles = TelemetryFactory(seed=seed, customers=1000, titles=1).customers
    cum = list(accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(titles)))
    total = cum[-1]
    step = 1_000_003 if customers % 1_000_003 else 999_983  # a prime: i -> i*step % n is 1:1
    offset = rng.randrange(customers)
    span = window_ms * windows - 1500
    types = ("start", "pause", "resume", "stop", "complete")
    for i in range(count):
        c = (i * step + offset) % customers
        profile = profiles[c % len(profiles)]
        if rng.random() < 0.5:
            t = rng.randrange(titles)
        else:
            t = min(bisect(cum, rng.random() * total), titles - 1)
        event_type = rng.choices(types, (30, 25, 15, 20, 10))[0]
        watched = 0 if event_type in ("start", "resume") else rng.randint(60, 1800)
        buffering = rng.randint(0, 3) if watched and rng.random() < profile.isp_buffering else 0
        bandwidth = round(max(0.5, min(1000.0, rng.gauss(profile.base_bandwidth, 5.0))), 1)
        quality = "4K" if bandwidth >= 25 and profile.device_type == "tv" else (
            "HD" if bandwidth >= 5 else "SD")  # fmt: skip
        position = rng.randint(watched, 9000)
        yield {
            "event_id": f"EVENT_{rng.getrandbits(32):08x}", "customer_id": f"CUST_{c:08x}",
            "title_id": f"TITLE_{(t * 2654435761 + 12345) & 0xFFFFFFFF:08x}",
            "session_id": f"SESSION_{rng.getrandbits(32):08x}", "event_type": event_type,
            "event_timestamp": BASE_MS + 1500 + i * span // count - rng.randint(0, 1500),
            "watch_duration_seconds": watched, "position_seconds": position,
            "completion_percentage": (
                100.0 if event_type == "complete" else round(position / 90.0, 1)
            ),
            "device_type": profile.device_type, "device_id": f"DEVICE_{c:08x}",
            "device_os": profile.device_os, "app_version": profile.app_version,
            "quality": quality, "bandwidth_mbps": bandwidth, "buffering_events": buffering,
            "buffering_duration_seconds": min(watched, buffering * rng.randint(1, 12)),
            "error_count": rng.choice((1, 1, 2, 3)) if rng.random() < profile.error_proneness
            else 0,
            "ip_address": profile.ip_address, "country": profile.country,
            "state": profile.state, "city": profile.city, "isp": profile.isp,
            "connection_type": profile.connection_type,
        }  # fmt: skip
