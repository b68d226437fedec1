"""Seed 000's data-quality rules for content downloads (topic ``content-downloads``).

Rule names (DLQ reason ``validation.<name>``), checked in this order; the first broken one wins:

- ``required_fields``: every string field of the record present and not blank (the nested
  ``content``, ``download`` and ``user_context`` records included), ``timestamp`` present.
- ``event_id_format``: a UUID in its canonical text form (8-4-4-4-12 hex digits).
- ``timestamp_range``: epoch milliseconds between 2000-01-01 and 2100-01-01 (a timestamp in
  seconds, the usual producer bug, falls outside).
- ``status_value``: ``download.status`` is success, failed or cancelled.
- ``content_type_value``: ``content.type`` is movie, tv_show, music, app or book.
- ``error_code_required``: a failed download names its ``error_code``.
- ``error_code_forbidden``: a successful download has no ``error_code`` (a cancelled one may
  or may not: contract section 3).
- ``size_range``, ``duration_range``, ``speed_range``, ``price_range``: ``size_mb``,
  ``duration_seconds``, ``speed_mbps`` and ``price`` are finite and not negative.

Not checked: ``category``, ``region``, ``device``, ``os_version`` and ``connection_type`` have
no closed value set in the seed (its lists end with "etc." or are examples), and v2's optional
``content_rating`` is not used by any aggregate.
"""

from __future__ import annotations

from typing import Any

from app.validation import Violation
from app.validation.common import (
    event_id_format,
    is_blank,
    is_non_negative,
    missing_field,
    timestamp_range,
)

__all__ = ["CONTENT_TYPES", "REQUIRED_NUMBERS", "REQUIRED_STRINGS", "STATUSES", "validate"]

STATUSES = frozenset({"success", "failed", "cancelled"})
CONTENT_TYPES = frozenset({"movie", "tv_show", "music", "app", "book"})

#: (record, field) of every required string; record None is the top level.
REQUIRED_STRINGS: tuple[tuple[str | None, str], ...] = (
    (None, "event_id"), (None, "user_id"),
    ("content", "content_id"), ("content", "title"), ("content", "type"),
    ("content", "category"),
    ("download", "status"),
    ("user_context", "region"), ("user_context", "city"), ("user_context", "device"),
    ("user_context", "os_version"), ("user_context", "connection_type"),
)  # fmt: skip
REQUIRED_NUMBERS = (
    (None, "timestamp"), ("content", "size_mb"), ("content", "price"),
    ("download", "duration_seconds"), ("download", "speed_mbps"),
)  # fmt: skip

_NON_NEGATIVE = (
    ("content", "size_mb", "size_range"),
    ("download", "duration_seconds", "duration_range"),
    ("download", "speed_mbps", "speed_range"),
    ("content", "price", "price_range"),
)


def validate(event: dict[str, Any]) -> Violation | None:
    """Return the first broken rule of ``event``, or None when it is clean."""
    missing = missing_field(event, REQUIRED_STRINGS, REQUIRED_NUMBERS)
    if missing:
        return Violation.rule(
            "required_fields", f"required field {missing} is missing, empty or mistyped"
        )
    violation = event_id_format(event["event_id"]) or timestamp_range(event["timestamp"])
    if violation:
        return violation
    download, content = event["download"], event["content"]
    status = download["status"]
    if status not in STATUSES:
        return Violation.rule(
            "status_value", f"download.status {status!r} is not success, failed or cancelled"
        )
    if content["type"] not in CONTENT_TYPES:
        return Violation.rule(
            "content_type_value",
            f"content.type {content['type']!r} is not one of {', '.join(sorted(CONTENT_TYPES))}",
        )
    error_code = download.get("error_code")
    if status == "failed" and is_blank(error_code):
        return Violation.rule("error_code_required", "a failed download has no error_code")
    if status == "success" and error_code is not None:
        return Violation.rule(
            "error_code_forbidden", f"a successful download has error_code {error_code!r}"
        )
    for record, name, rule in _NON_NEGATIVE:
        value = event[record][name]
        if not is_non_negative(value):
            return Violation.rule(rule, f"{record}.{name} {value!r} is negative or not finite")
    return None
