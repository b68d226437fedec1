"""Telemetry aggregates of the contract (section 3): buffering, completion and errors.

Declarations only (``models/combine.py``): group key, fields, record metrics. The events are
seed 002's playback telemetry, validated by ``app/validation/telemetry.py``.
"""

from __future__ import annotations

from models.combine import Aggregate, Count, FloatSum, Sum, ratio

__all__ = ["BUFFERING", "COMPLETION", "ERRORS", "TELEMETRY_AGGREGATES"]


def _ended(event: dict) -> bool:
    return event["event_type"] in ("stop", "complete")


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
        "starts": Count(where=lambda e: e["event_type"] == "start"),
        "completes": Count(where=lambda e: e["event_type"] == "complete"),
        # The mean completion is over stop and complete events (contract section 3).
        "ended": Count(where=_ended),
        "completion_sum": FloatSum("completion_percentage", where=_ended),
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
        "error_events": Count(where=lambda e: e["error_count"] > 0),
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
