"""Seed 002's data-quality rules for playback telemetry (topic ``acme-telemetry``).

Rule names (DLQ reason ``validation.<name>``), checked in this order:

- ``required_fields``: every required field present, not null, strings not blank.
- ``unknown_event_type`` (its own DLQ reason): event_type outside start/stop/pause/resume/complete.
- ``<field>_format``: EVENT_/CUST_/TITLE_/SESSION_/DEVICE_ + 8 hex digits, app_version X.Y.Z,
  ip_address IPv4; ``quality_value``: SD, HD or 4K.
- ``<field>_range``: watch and position 0-86400, completion_percentage 0-100, bandwidth 0-1000,
  buffering_events 0-1000, buffering_duration 0-3600, error_count 0-100.
- ``buffering_within_watch``: buffering_duration_seconds <= watch_duration_seconds.
- ``start_zero_watch``: a start event has watch_duration_seconds 0.
- ``no_buffering_zero_duration``: no buffering events means no buffering seconds.
- ``quality_4k_bandwidth``: 4K needs bandwidth_mbps >= 15.0.

``position_seconds <= content duration`` cannot be checked: the event does not carry the
content's duration (the 0-86400 range is checked instead).
"""

from __future__ import annotations

import re
from typing import Any

from app.validation import UNKNOWN_EVENT_TYPE, Violation

__all__ = ["EVENT_TYPES", "QUALITIES", "REQUIRED_FIELDS", "validate"]

EVENT_TYPES = frozenset({"start", "stop", "pause", "resume", "complete"})
QUALITIES = frozenset({"SD", "HD", "4K"})
MIN_4K_BANDWIDTH_MBPS = 15.0

REQUIRED_FIELDS = (
    "event_id", "customer_id", "title_id", "session_id", "event_type", "event_timestamp",
    "watch_duration_seconds", "position_seconds", "completion_percentage", "device_type",
    "device_id", "device_os", "app_version", "quality", "bandwidth_mbps", "buffering_events",
    "buffering_duration_seconds", "error_count", "ip_address", "country", "city", "isp",
    "connection_type",
)  # fmt: skip

_ID_FORMATS = tuple(
    (name, re.compile(prefix + r"_[0-9a-fA-F]{8}").fullmatch)
    for name, prefix in (
        ("event_id", "EVENT"),
        ("customer_id", "CUST"),
        ("title_id", "TITLE"),
        ("session_id", "SESSION"),
        ("device_id", "DEVICE"),
    )
)
_APP_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+").fullmatch
_IPV4 = re.compile(
    r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
).fullmatch  # [0-9], not \d: \d also matches non-ASCII digits

_RANGES = (
    ("watch_duration_seconds", "watch_duration_range", 0, 86400),
    ("position_seconds", "position_range", 0, 86400),
    ("completion_percentage", "completion_percentage_range", 0.0, 100.0),
    ("bandwidth_mbps", "bandwidth_range", 0.0, 1000.0),
    ("buffering_events", "buffering_events_range", 0, 1000),
    ("buffering_duration_seconds", "buffering_duration_range", 0, 3600),
    ("error_count", "error_count_range", 0, 100),
)


def validate(event: dict[str, Any]) -> Violation | None:
    """Return the first broken rule of ``event``, or None when it is clean."""
    for name in REQUIRED_FIELDS:
        value = event.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return Violation.rule("required_fields", f"required field {name} is missing or empty")

    event_type = event["event_type"]
    if event_type not in EVENT_TYPES:
        return Violation(UNKNOWN_EVENT_TYPE, f"unknown telemetry event_type {event_type!r}")

    for name, matches in _ID_FORMATS:
        if not matches(event[name]):
            return Violation.rule(f"{name}_format", f"{name} {event[name]!r} is not in its format")
    if not _APP_VERSION(event["app_version"]):
        return Violation.rule(
            "app_version_format", f"app_version {event['app_version']!r} is not X.Y.Z"
        )
    if not _IPV4(event["ip_address"]):
        return Violation.rule("ip_address_format", "ip_address is not an IPv4 address")
    quality = event["quality"]
    if quality not in QUALITIES:
        return Violation.rule("quality_value", f"quality {quality!r} is not one of SD, HD, 4K")

    for name, rule, low, high in _RANGES:
        value = event[name]
        if not low <= value <= high:
            return Violation.rule(rule, f"{name} {value} is outside {low}-{high}")

    watch = event["watch_duration_seconds"]
    buffering_seconds = event["buffering_duration_seconds"]
    if buffering_seconds > watch:
        return Violation.rule(
            "buffering_within_watch",
            f"buffering_duration_seconds {buffering_seconds} exceeds "
            f"watch_duration_seconds {watch}",
        )
    if event_type == "start" and watch != 0:
        return Violation.rule(
            "start_zero_watch", f"start event has watch_duration_seconds {watch}, expected 0"
        )
    if event["buffering_events"] == 0 and buffering_seconds != 0:
        return Violation.rule(
            "no_buffering_zero_duration",
            f"buffering_events is 0 but buffering_duration_seconds is {buffering_seconds}",
        )
    if quality == "4K" and event["bandwidth_mbps"] < MIN_4K_BANDWIDTH_MBPS:
        return Violation.rule(
            "quality_4k_bandwidth",
            f"4K stream with bandwidth_mbps {event['bandwidth_mbps']:.1f} < 15.0",
        )
    return None
