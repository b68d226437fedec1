"""Telemetry aggregates of the contract (section 3): buffering, completion and errors.

Declarations only (``models/combine.py``): group key, fields, record metrics. The events are
seed 002's playback telemetry, validated by ``app/validation/telemetry.py``.
"""

from __future__ import annotations

from models.combine import Aggregate, Count, FloatSum, Sum, field_above, field_in, field_is, ratio

__all__ = ["BUFFERING", "COMPLETION", "ERRORS", "TELEMETRY_AGGREGATES"]

# The mean completion is over stop and complete events (contract section 3).
_ENDED = field_in("event_type", ("stop", "complete"))


BUFFERING = Aggregate(
    table="agg.telemetry.buffering",
    event_type="telemetry.buffering",
    description="Buffering per country and ISP: events, buffering events and seconds, ratio.",
    key={"country": "country", "isp": "isp"},
    fields={
        "buffering_events": Sum("buffering_events"),
        "buffering_seconds": Sum("buffering_duration_seconds"),
        "watch_seconds": Sum("watch_duration_seconds"),
    },
    metrics=lambda v: {
        "events": v["events"],
        "buffering_events": v["buffering_events"],
        "buffering_seconds": v["buffering_seconds"],
        "watch_seconds": v["watch_seconds"],
        "buffering_ratio": ratio(v["buffering_seconds"], v["watch_seconds"]),
    },
)

COMPLETION = Aggregate(
    table="agg.telemetry.completion",
    event_type="telemetry.completion",
    description="Starts, completes, completion rate and mean completion per title.",
    key={"title_id": "title_id"},
    fields={
        "starts": Count(where=field_is("event_type", "start")),
        "completes": Count(where=field_is("event_type", "complete")),
        "ended": Count(where=_ENDED),
        "completion_sum": FloatSum("completion_percentage", where=_ENDED),
        "watch_seconds": Sum("watch_duration_seconds"),
    },
    metrics=lambda v: {
        "starts": v["starts"],
        "completes": v["completes"],
        "completion_rate": ratio(v["completes"], v["starts"]),
        "avg_completion_percentage": ratio(v["completion_sum"], v["ended"]),
        "watch_seconds": v["watch_seconds"],
    },
)

ERRORS = Aggregate(
    table="agg.telemetry.errors",
    event_type="telemetry.errors",
    description="Playback errors per device OS and app version: events with errors, rate.",
    key={"device_os": "device_os", "app_version": "app_version"},
    fields={
        "error_events": Count(where=field_above("error_count", 0)),
        "error_count": Sum("error_count"),
    },
    metrics=lambda v: {
        "events": v["events"],
        "error_events": v["error_events"],
        "error_count": v["error_count"],
        "error_rate": ratio(v["error_events"], v["events"]),
    },
)

TELEMETRY_AGGREGATES: tuple[Aggregate, ...] = (BUFFERING, COMPLETION, ERRORS)
