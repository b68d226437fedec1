"""Data-quality rules per source domain; a broken rule sends the message to the DLQ.

Each domain module exposes ``validate(record) -> Violation | None``. The first broken rule wins,
so each dead letter carries exactly one reason: ``validation.<rule>`` or ``unknown_event_type``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RULE_ERROR", "UNKNOWN_EVENT_TYPE", "Violation"]

UNKNOWN_EVENT_TYPE = "unknown_event_type"
#: A rule raised instead of answering (a record shape it did not expect): dead-lettered with
#: the exception, so a gap in a rule never stops the worker.
RULE_ERROR = "validation.rule_error"


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule: ``reason`` is the DLQ ``error.reason`` header, ``message`` explains it."""

    reason: str
    message: str

    @classmethod
    def rule(cls, name: str, message: str) -> Violation:
        return cls(f"validation.{name}", message)
