"""Prometheus metrics of the contract (section 5), declared once.

Labels are bounded: topic, table, DLQ reason and registry outcome only, never a user, customer
or other identifier.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "AB_REASSIGNMENTS",
    "AGGREGATES_EMITTED",
    "DLQ_MESSAGES",
    "ERASURES",
    "EVENTS_AGGREGATED",
    "EVENTS_CONSUMED",
    "EVENT_LAG",
    "JOIN_APPLIED_WHEN_SENT",
    "JOIN_EVENTS",
    "LATE_CONTRIBUTIONS",
    "LATE_EVENTS",
    "PRIVACY_REJECTIONS",
    "READY",
    "RECOVERIES",
    "RECOVERY_SECONDS",
    "REGISTRY_REQUESTS",
    "REPLAYED_EVENTS",
    "TABLE_KEYS",
    "TABLE_LATENCY",
    "UNKNOWN_EVENT_TYPES",
    "observe_many",
    "observe_spread",
]

AB_REASSIGNMENTS = Counter(
    "streampulse_ab_reassignments_total",
    "A/B assignments of a user to an experiment it was already assigned to (the first in"
    " event time wins; the others are ignored).",
)
JOIN_EVENTS = Counter(
    "streampulse_join_events_total",
    "Join events applied to the per-user state, by source topic (a replayed one, already"
    " absorbed, is counted under replayed=true and skipped).",
    ["topic", "replayed"],
)
JOIN_APPLIED_WHEN_SENT = Counter(
    "streampulse_join_applied_when_sent_total",
    "Repartition messages applied by the worker that sent them as soon as the broker had them"
    " (it owns their partition), instead of when read back from the topic.",
)
ERASURES = Counter(
    "streampulse_erasures_total",
    "GDPR erasure requests carried out on this worker, by outcome (erased, not_found).",
    ["outcome"],
)
EVENTS_CONSUMED = Counter(
    "streampulse_events_consumed_total",
    "Source messages read from Kafka, before decoding.",
    ["topic"],
)
EVENTS_AGGREGATED = Counter(
    "streampulse_events_aggregated_total",
    "Source events that passed decoding and validation and were counted in aggregates.",
    ["topic"],
)
DLQ_MESSAGES = Counter(
    "streampulse_dlq_messages_total",
    "Messages sent to the dead-letter topic, by source topic and contract reason.",
    ["topic", "reason"],
)
LATE_EVENTS = Counter(
    "streampulse_late_events_total",
    "Events whose window had already closed (end + grace passed) when they arrived, once per"
    " event (as the topic's first table saw them).",
    ["topic"],
)
LATE_CONTRIBUTIONS = Counter(
    "streampulse_late_contributions_total",
    "Events a table dropped because their window had closed there (per table: the tables of"
    " one topic close their windows independently).",
    ["table"],
)
AGGREGATES_EMITTED = Counter(
    "streampulse_aggregates_emitted_total",
    "Final window records published to derived topics.",
    ["table"],
)
EVENT_LAG = Histogram(
    "streampulse_event_lag_seconds",
    "Processing time minus event time when an event is aggregated.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
REGISTRY_REQUESTS = Counter(
    "streampulse_registry_requests_total",
    "Schema Registry requests by outcome (ok, not_found, error).",
    ["outcome"],
)
TABLE_KEYS = Gauge(
    "streampulse_table_keys",
    "Keys held by this worker's table partitions.",
    ["table"],
)
TABLE_LATENCY = Histogram(
    "streampulse_table_latency_seconds",
    "Seconds from an event's production (its source record's Kafka timestamp) to its"
    " contribution being merged into the table, per event (a fetch's events taken as produced"
    " evenly between its oldest and newest record).",
    ["table"],
    buckets=(0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1, 2.5, 5, 10),
)
READY = Gauge(
    "streampulse_ready",
    "1 while this worker is ready (GET /readyz: table recovery done, registry reached), else 0.",
)
PRIVACY_REJECTIONS = Counter(
    "streampulse_privacy_rejections_total",
    "Derived records not published because they carried PII (a PII field or value).",
    ["table"],
)
REPLAYED_EVENTS = Counter(
    "streampulse_replayed_events_skipped_total",
    "Events of a replayed fetch (after a crash or rebalance) a table had absorbed already and"
    " skipped: what makes a replay count once.",
    ["table"],
)
RECOVERY_SECONDS = Gauge(
    "streampulse_recovery_seconds",
    "Duration of this worker's last table recovery from the changelogs (0: none needed yet).",
)
RECOVERIES = Counter(
    "streampulse_recoveries_total",
    "Table recoveries this worker completed (one per partition assignment that needed one).",
)
UNKNOWN_EVENT_TYPES = Counter(
    "streampulse_unknown_event_types_total",
    "Events of a type this version does not know (logged, dead-lettered, skipped).",
    ["topic"],
)


def observe_spread(histogram: Histogram, low: float, high: float, count: int) -> None:
    """Observe ``count`` values spread evenly over [low, high] in at most 32 steps.

    Why: a merged partials message knows how many events it carries and the production-time
    range of their fetch, not each event's time; 32 evenly spaced points with integer weights
    keep the histogram per event at a cost independent of the batch size.
    """
    if count <= 0:
        return
    points = min(count, 32)
    bounds = histogram._upper_bounds
    base, extra = divmod(count, points)
    total = 0.0
    for index in range(points):
        value = low + (high - low) * (index + 0.5) / points
        weight = base + (1 if index < extra else 0)
        histogram._buckets[bisect_left(bounds, value)].inc(weight)
        total += value * weight
    histogram._sum.inc(total)


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """Observe a batch of values with one increment per bucket instead of one call per value.

    ``Histogram.observe`` takes a lock and walks the buckets for every value; on the hot path
    that is per event. This counts values per bucket first (``le`` buckets: a value equal to a
    bound belongs to it), then adds the counts, through prometheus_client's bucket storage (its
    ``_upper_bounds``, ``_buckets`` and ``_sum``: checked by tests/unit/test_metrics.py).
    """
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for value in values:
        counts[bisect_left(bounds, value)] += 1
        total += value
    for index, count in enumerate(counts):
        if count:
            histogram._buckets[index].inc(count)
    histogram._sum.inc(total)
