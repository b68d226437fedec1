"""Checks several domains' rules share: required strings, UUIDs, epoch-millisecond times.

Every check reads the decoded record defensively (``.get``, type checks): a message decoded
"as written" (a writer enum symbol the reader does not know, ``app/engine/codec.py``) or with
an unexpected writer schema may lack fields, and a rule must then report, never raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from app.validation import Violation

__all__ = [
    "EARLIEST_MS",
    "LATEST_MS",
    "event_id_format",
    "field",
    "is_blank",
    "is_count",
    "is_non_negative",
    "missing_field",
    "timestamp_range",
]

#: Plausible event times: 2000-01-01T00:00:00Z <= t < 2100-01-01T00:00:00Z, in epoch ms.
EARLIEST_MS = 946_684_800_000
LATEST_MS = 4_102_444_800_000

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch

#: A field of the record: (nested record or None for the top level, field name).
FieldPath = tuple[str | None, str]


def field(event: dict[str, Any], path: FieldPath) -> Any:
    """The value at ``path`` (None when the field or its record is missing)."""
    record, name = path
    container = event if record is None else event.get(record)
    return container.get(name) if isinstance(container, dict) else None


def is_blank(value: Any) -> bool:
    """Missing, not a string, or only whitespace."""
    return not isinstance(value, str) or not value.strip()


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_non_negative(value: Any) -> bool:
    """A finite number >= 0 (an integer of any size, or a float)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and math.isfinite(value) and value >= 0


def is_count(value: Any, minimum: int = 0) -> bool:
    """An integer >= ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def missing_field(
    event: dict[str, Any], strings: Iterable[FieldPath], numbers: Iterable[FieldPath] = ()
) -> str | None:
    """The first of ``strings`` that is blank or of ``numbers`` that is not a number, as
    ``record.name``; None when all are there."""
    for path in strings:
        if is_blank(field(event, path)):
            return _name(path)
    for path in numbers:
        if not is_number(field(event, path)):
            return _name(path)
    return None


def _name(path: FieldPath) -> str:
    record, name = path
    return f"{record}.{name}" if record else name


def event_id_format(value: str) -> Violation | None:
    """``event_id`` is a UUID in canonical text form."""
    if _UUID(value):
        return None
    return Violation.rule("event_id_format", f"event_id {value!r} is not a UUID")


def timestamp_range(value: int, name: str = "timestamp") -> Violation | None:
    """An event time in epoch milliseconds (an integer: windows start at integers) within
    :data:`EARLIEST_MS` - :data:`LATEST_MS`."""
    if isinstance(value, int) and not isinstance(value, bool) and EARLIEST_MS <= value < LATEST_MS:
        return None
    return Violation.rule(
        f"{name}_range",
        f"{name} {value} is not epoch milliseconds between 2000 and 2100",
    )
