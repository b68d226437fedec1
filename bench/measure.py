"""Measuring instruments of the harness: process memory and CPU, output topics, comparison.

- :class:`ProcSampler`: peak RSS is the kernel's own high-water mark, ``VmHWM`` of
  ``/proc/<pid>/status``, summed over the process and its descendants, read while the process is
  still alive (after it has published its last window); CPU is ``utime + stime`` of
  ``/proc/<pid>/stat``, sampled so that the CPU spent between first consumption and the last
  window can be interpolated.
- :class:`OutputTail`: follows an implementation's output topics from the beginning with a
  plain confluent-kafka consumer (no group), noting for every window record the wall-clock time
  it was *seen on the broker*, so every implementation is timed by the same observer.
- :func:`compare`: window records against the oracle, with a readable diff.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import TelemetryDecoder
from bench.dataset import KEY_FIELDS, WindowId

__all__ = [
    "Comparison",
    "OutputTail",
    "ProcSampler",
    "avro_window_decoder",
    "compare",
    "first_record_ms",
    "json_window_decoder",
    "percentile",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_ENVELOPE = {"event_id", "event_type", "occurred_at", "producer", "schema_version",
             "privacy_tier", "window_start", "window_end"}  # fmt: skip


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _tree(pid: int) -> list[int]:
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _status_kb(pid: int, fields: Iterable[str]) -> dict[str, int]:
    wanted = set(fields)
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in wanted:
                    out[name] = int(rest.split()[0])
    except OSError:
        pass
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


@dataclass
class ProcSampler:
    """Memory and CPU of a process tree, sampled on demand."""

    pid: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # wall, rss MB, cpu
    peak_hwm_mb: float = 0.0
    _pids: list[int] = field(default_factory=list)
    _pids_at: float = 0.0

    def sample(self) -> None:
        now = time.time()
        if now - self._pids_at > 5.0 or not self._pids:
            self._pids, self._pids_at = _tree(self.pid), now
        rss = hwm = 0
        cpu = 0.0
        for pid in self._pids:
            kb = _status_kb(pid, ("VmRSS", "VmHWM"))
            rss += kb.get("VmRSS", 0)
            hwm += kb.get("VmHWM", 0)
            cpu += _cpu_seconds(pid)
        self.peak_hwm_mb = max(self.peak_hwm_mb, hwm / 1024)
        self.samples.append((now, rss / 1024, cpu))

    def cpu_at(self, wall: float) -> float:
        """CPU seconds used by ``wall`` (linear between samples)."""
        before = [s for s in self.samples if s[0] <= wall]
        after = [s for s in self.samples if s[0] >= wall]
        if not before:
            return after[0][2] if after else 0.0
        if not after:
            return before[-1][2]
        (t0, _, c0), (t1, _, c1) = before[-1], after[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (wall - t0) / (t1 - t0)

    def rss_series(self, every: float = 1.0) -> list[tuple[float, float]]:
        """(seconds since the first sample, RSS MB), thinned to one point per ``every`` s."""
        out: list[tuple[float, float]] = []
        if not self.samples:
            return out
        start = self.samples[0][0]
        for wall, rss, _ in self.samples:
            if not out or wall - start - out[-1][0] >= every:
                out.append((round(wall - start, 1), round(rss, 1)))
        return out


#: decodes one output message into (window id, metrics, published ms) items
WindowDecoder = Callable[[str, Any], list[tuple[WindowId, dict[str, Any], int | None]]]


def json_window_decoder(topic: str, message: Any) -> list[tuple[WindowId, dict, int | None]]:
    record = json.loads(message.value())
    window = (record["table"], tuple(record["key"]), int(record["window_start"]))
    return [(window, record["metrics"], record.get("published_ms"))]


def avro_window_decoder(registry_url: str) -> WindowDecoder:
    """Our worker's derived records (contract section 3), by topic."""
    decoder = TelemetryDecoder(registry_url)

    def decode(topic: str, message: Any) -> list[tuple[WindowId, dict, int | None]]:
        record = decoder.decode(message.value())
        if record is None:
            raise ValueError(f"undecodable record on {topic} at offset {message.offset()}")
        names = KEY_FIELDS[topic]
        key = tuple(record[name] for name in names)
        metrics = {k: v for k, v in record.items() if k not in _ENVELOPE and k not in names}
        return [((topic, key, int(record["window_start"])), metrics, message.timestamp()[1])]

    return decode


class OutputTail:
    """Every record of ``topics`` from offset 0, with the time this observer saw it.

    Records are kept raw while the implementation runs (so the observer costs next to no CPU)
    and decoded by :meth:`decode_all`.
    """

    def __init__(self, bootstrap: str, topics: list[str], decode: WindowDecoder) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.decode = decode
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "fetch.wait.max.ms": 10, "fetch.error.backoff.ms": 50,
        })  # fmt: skip
        metadata = self.consumer.list_topics(timeout=10)
        assignment = []
        for topic in topics:
            partitions = metadata.topics[topic].partitions
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        self.consumer.assign(assignment)
        self._raw: list[tuple[Any, float]] = []
        #: window -> (metrics, seen wall time, published ms reported by the implementation)
        self.seen: dict[WindowId, tuple[dict[str, Any], float, int | None]] = {}
        self.duplicates: list[WindowId] = []
        self.records = 0

    def poll(self, timeout: float = 0.05) -> int:
        messages = self.consumer.consume(num_messages=20_000, timeout=timeout)
        now = time.time()
        for message in messages:
            if not message.error():
                self._raw.append((message, now))
                self.records += 1
        return len(messages)

    def decode_all(self) -> list[WindowId]:
        """Decode what was polled since the last call; return the windows new to ``seen``."""
        raw, self._raw = self._raw, []
        new = []
        for message, seen_at in raw:
            for window, metrics, published_ms in self.decode(message.topic(), message):
                if window in self.seen:
                    self.duplicates.append(window)
                else:
                    self.seen[window] = (metrics, seen_at, published_ms)
                    new.append(window)
        return new

    def close(self) -> None:
        self.consumer.close()


def first_record_ms(bootstrap: str, topics: list[str], timeout: float = 10.0) -> int | None:
    """Smallest timestamp among the first records of every partition of ``topics``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        metadata = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p, 0) for t in topics if t in metadata.topics
               for p in metadata.topics[t].partitions]  # fmt: skip
        # Only partitions holding records: an empty one would hold the loop to its timeout.
        tps = [tp for tp in tps if consumer.get_watermark_offsets(tp, timeout=5)[1] > 0]
        if not tps:
            return None
        consumer.assign(tps)
        firsts: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout
        while len(firsts) < len(tps) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if not message.error():
                    firsts.setdefault((message.topic(), message.partition()),
                                      message.timestamp()[1])  # fmt: skip
        return min(firsts.values()) if firsts else None
    finally:
        consumer.close()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    return a == b


@dataclass
class Comparison:
    expected: int
    matched: int
    missing: list[WindowId]
    extra: list[WindowId]
    duplicates: list[WindowId]
    mismatched: list[tuple[WindowId, str, Any, Any]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicates or self.mismatched)

    def summary(self) -> str:
        if self.ok:
            return f"identical ({self.matched} window records)"
        return (f"DIFFERENT: {self.matched}/{self.expected} match, {len(self.missing)} missing, "
                f"{len(self.extra)} extra, {len(self.duplicates)} duplicated, "
                f"{len({m[0] for m in self.mismatched})} with other values")  # fmt: skip

    def diff(self, limit: int = 8) -> str:
        lines = []
        for label, items in (("missing", self.missing), ("extra", self.extra),
                             ("duplicated", self.duplicates)):  # fmt: skip
            for window in sorted(items)[:limit]:
                lines.append(f"    {label}: {window}")
            if len(items) > limit:
                lines.append(f"    ... {len(items) - limit} more {label}")
        for window, name, want, got in self.mismatched[:limit]:
            lines.append(f"    {window} {name}: expected {want!r}, got {got!r}")
        if len(self.mismatched) > limit:
            lines.append(f"    ... {len(self.mismatched) - limit} more differing values")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "expected": self.expected, "matched": self.matched,
            "missing": len(self.missing), "extra": len(self.extra),
            "duplicates": len(self.duplicates),
            "mismatched_windows": len({m[0] for m in self.mismatched}),
            "examples": self.diff(5).splitlines(),
        }  # fmt: skip


def compare(
    expected: dict[WindowId, dict[str, Any]], seen: dict[WindowId, Any],
    duplicates: list[WindowId], close_window: int,
) -> Comparison:  # fmt: skip
    """Window records (``seen``: window -> (metrics, ...)) against the oracle's."""
    missing = [w for w in expected if w not in seen]
    extra = [w for w in seen if w not in expected and w[2] < close_window]
    mismatched = []
    matched = 0
    for window, want in expected.items():
        if window not in seen:
            continue
        got = seen[window][0]
        bad = [(window, name, value, got.get(name)) for name, value in want.items()
               if not same(value, got.get(name))]  # fmt: skip
        mismatched.extend(bad)
        matched += not bad
    dups = [w for w in duplicates if w[2] < close_window]
    return Comparison(len(expected), matched, missing, extra, dups, mismatched)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
