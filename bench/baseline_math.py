"""The baselines' telemetry math: hand-written per-event folds, independent of the product's.

(a) naive Faust, (c) the floor and (d) Quix Streams fold the three telemetry aggregates with
these classes: the product's math as it was hand-written before its aggregation core
(``models/combine.py``), one ``add`` call per event and aggregate. Why not the product's core:
the baselines are yardsticks. They must not change when the product does, or a before/after
comparison measures a moved yardstick, and the floor must stay "what a stream processor cannot
do less than". Their correctness is not taken on trust: the harness checks every
implementation's window records against the independent oracle (``bench/dataset.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["BASELINE_AGGREGATES", "Accumulator", "BaselineAggregate", "ratio"]

Accumulator = list[float]


def ratio(numerator: float, denominator: float) -> float | None:
    """Contract ratios: null when the denominator is 0."""
    return numerator / denominator if denominator else None


class BaselineAggregate(ABC):
    """One derived table: which events it groups, how it folds them, what record it emits."""

    #: Derived topic, and the table's name.
    table: ClassVar[str]
    #: Envelope event_type of the emitted records.
    event_type: ClassVar[str]
    #: Group-key fields, in record order.
    key_fields: ClassVar[tuple[str, ...]]
    #: Accumulator slot names (slot 0 is always ``events``).
    slots: ClassVar[tuple[str, ...]]
    description: ClassVar[str]
    privacy_tier: ClassVar[str] = "internal"
    schema_version: ClassVar[int] = 1

    def new(self) -> Accumulator:
        return [0] * len(self.slots)

    @abstractmethod
    def key_values(self, event: dict[str, Any]) -> tuple[str, ...]:
        """The group-key values of ``event``."""

    @abstractmethod
    def add(self, acc: Accumulator, event: dict[str, Any]) -> None:
        """Fold one event into ``acc``."""

    @abstractmethod
    def metrics(self, acc: Accumulator) -> dict[str, Any]:
        """The record's metric fields from a window's accumulator."""


class BufferingAggregate(BaselineAggregate):
    table = "agg.telemetry.buffering"
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


class CompletionAggregate(BaselineAggregate):
    table = "agg.telemetry.completion"
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


class ErrorsAggregate(BaselineAggregate):
    table = "agg.telemetry.errors"
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


BASELINE_AGGREGATES: tuple[BaselineAggregate, ...] = (
    BufferingAggregate(),
    CompletionAggregate(),
    ErrorsAggregate(),
)
