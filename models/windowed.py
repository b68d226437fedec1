"""The shape every windowed aggregate shares: a fixed-width numeric accumulator per window.

An accumulator is a list of numbers whose slot 0 counts the events folded in (so late events
can be counted when a partial arrives for a closed window). Accumulators combine by adding
slot by slot, which is what lets the hot path combine per key within a batch and ship one
partial per key per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["Accumulator", "WindowedAggregate", "merge_into", "ratio"]

Accumulator = list[float]


def ratio(numerator: float, denominator: float) -> float | None:
    """Contract ratios: null when the denominator is 0."""
    return numerator / denominator if denominator else None


def merge_into(target: Accumulator, other: Accumulator) -> None:
    """Add ``other`` into ``target`` slot by slot."""
    for index, value in enumerate(other):
        target[index] += value


class WindowedAggregate(ABC):
    """One derived table: which events it groups, how it folds them, what record it emits."""

    #: Derived topic, and the table's name.
    table: ClassVar[str]
    #: Source topic the events come from.
    source_topic: ClassVar[str]
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

    def fold(self, events: list[dict[str, Any]]) -> dict[tuple[str, ...], Accumulator]:
        """Fold ``events`` of one window into one accumulator per group key (pure, for tests)."""
        out: dict[tuple[str, ...], Accumulator] = {}
        for event in events:
            key = self.key_values(event)
            acc = out.get(key)
            if acc is None:
                acc = out[key] = self.new()
            self.add(acc, event)
        return out
