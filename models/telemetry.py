"""Telemetry aggregates of the contract (section 3): buffering, completion and errors.

Each class is the aggregation math only: group key, fold, metric fields. Windowing, tables
and publishing are generic (``app/windowing.py``).
"""

from __future__ import annotations

from typing import Any

from models.windowed import Accumulator, WindowedAggregate, ratio

__all__ = ["TELEMETRY_AGGREGATES", "BufferingAggregate", "CompletionAggregate", "ErrorsAggregate"]

TELEMETRY_TOPIC = "acme-telemetry"


class BufferingAggregate(WindowedAggregate):
    table = "agg.telemetry.buffering"
    source_topic = TELEMETRY_TOPIC
    event_type = "telemetry.buffering"
    key_fields = ("country", "isp")
    slots = ("events", "buffering_events", "buffering_seconds", "watch_seconds")
    description = "Buffering per country and ISP: events, buffering events and seconds, ratio."

    def key_values(self, event: dict[str, Any]) -> tuple[str, ...]:
        return (event["country"], event["isp"])

    def add(self, acc: Accumulator, event: dict[str, Any]) -> None:
        acc[0] += 1
        acc[1] += event["buffering_events"]
        acc[2] += event["buffering_duration_seconds"]
        acc[3] += event["watch_duration_seconds"]

    def metrics(self, acc: Accumulator) -> dict[str, Any]:
        events, buffering_events, buffering_seconds, watch_seconds = acc
        return {
            "events": int(events),
            "buffering_events": int(buffering_events),
            "buffering_seconds": int(buffering_seconds),
            "watch_seconds": int(watch_seconds),
            "buffering_ratio": ratio(buffering_seconds, watch_seconds),
        }


class CompletionAggregate(WindowedAggregate):
    table = "agg.telemetry.completion"
    source_topic = TELEMETRY_TOPIC
    event_type = "telemetry.completion"
    key_fields = ("title_id",)
    slots = ("events", "starts", "completes", "ended", "completion_sum", "watch_seconds")
    description = "Starts, completes, completion rate and mean completion per title."

    def key_values(self, event: dict[str, Any]) -> tuple[str, ...]:
        return (event["title_id"],)

    def add(self, acc: Accumulator, event: dict[str, Any]) -> None:
        acc[0] += 1
        event_type = event["event_type"]
        if event_type == "start":
            acc[1] += 1
        elif event_type == "complete":
            acc[2] += 1
            acc[3] += 1
            acc[4] += event["completion_percentage"]
        elif event_type == "stop":
            acc[3] += 1
            acc[4] += event["completion_percentage"]
        acc[5] += event["watch_duration_seconds"]

    def metrics(self, acc: Accumulator) -> dict[str, Any]:
        _, starts, completes, ended, completion_sum, watch_seconds = acc
        return {
            "starts": int(starts),
            "completes": int(completes),
            "completion_rate": ratio(completes, starts),
            "avg_completion_percentage": ratio(completion_sum, ended),
            "watch_seconds": int(watch_seconds),
        }


class ErrorsAggregate(WindowedAggregate):
    table = "agg.telemetry.errors"
    source_topic = TELEMETRY_TOPIC
    event_type = "telemetry.errors"
    key_fields = ("device_os", "app_version")
    slots = ("events", "error_events", "error_count")
    description = "Playback errors per device OS and app version: events with errors, rate."

    def key_values(self, event: dict[str, Any]) -> tuple[str, ...]:
        return (event["device_os"], event["app_version"])

    def add(self, acc: Accumulator, event: dict[str, Any]) -> None:
        acc[0] += 1
        errors = event["error_count"]
        if errors > 0:
            acc[1] += 1
            acc[2] += errors

    def metrics(self, acc: Accumulator) -> dict[str, Any]:
        events, error_events, error_count = acc
        return {
            "events": int(events),
            "error_events": int(error_events),
            "error_count": int(error_count),
            "error_rate": ratio(error_events, events),
        }


TELEMETRY_AGGREGATES: tuple[WindowedAggregate, ...] = (
    BufferingAggregate(),
    CompletionAggregate(),
    ErrorsAggregate(),
)
