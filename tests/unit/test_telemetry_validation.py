"""Seed 002's data-quality rules (app/validation/telemetry.py), each shown from both sides.

Every case is a literal override of one valid base event; the expected DLQ reason is spelled out
by hand from the seed and the module docstring, never derived from the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.validation.telemetry import validate

# The seed's sample record, made valid: its identifiers use real hex digits (the seed's own
# sample has "CUST_5e6f7g8h", and g/h are not hex) and it is a stop event with some buffering.
BASE: dict[str, Any] = {
    "event_id": "EVENT_a1b2c3d4",
    "customer_id": "CUST_5e6f7a8b",
    "title_id": "TITLE_9a0b1c2d",
    "session_id": "SESSION_3e4f5a6b",
    "event_type": "stop",
    "event_timestamp": 1_754_922_645_123,  # 2025-08-11T14:30:45.123Z
    "watch_duration_seconds": 600,
    "position_seconds": 1200,
    "completion_percentage": 40.0,
    "device_type": "mobile",
    "device_id": "DEVICE_7c8d9e0f",
    "device_os": "iOS",
    "app_version": "5.2.1",
    "quality": "HD",
    "bandwidth_mbps": 25.5,
    "buffering_events": 2,
    "buffering_duration_seconds": 10,
    "error_count": 0,
    "ip_address": "192.168.1.100",
    "country": "United States",
    "state": "California",
    "city": "Los Angeles",
    "isp": "Comcast",
    "connection_type": "wifi",
}

REQUIRED = (
    "event_id", "customer_id", "title_id", "session_id", "event_type", "event_timestamp",
    "watch_duration_seconds", "position_seconds", "completion_percentage", "device_type",
    "device_id", "device_os", "app_version", "quality", "bandwidth_mbps", "buffering_events",
    "buffering_duration_seconds", "error_count", "ip_address", "country", "city", "isp",
    "connection_type",
)  # fmt: skip
STRING_REQUIRED = (
    "event_id", "customer_id", "title_id", "session_id", "event_type", "device_type",
    "device_id", "device_os", "app_version", "quality", "ip_address", "country", "city", "isp",
    "connection_type",
)  # fmt: skip

# A consistent "nothing buffered, nothing watched" base for cases at the low bounds.
IDLE = {"watch_duration_seconds": 0, "buffering_events": 0, "buffering_duration_seconds": 0}


def event(**overrides: Any) -> dict[str, Any]:
    return {**BASE, **overrides}


def reason(ev: dict[str, Any]) -> str | None:
    violation = validate(ev)
    if violation is None:
        return None
    assert isinstance(violation.message, str) and violation.message
    return violation.reason


def test_base_event_is_valid() -> None:
    assert validate(dict(BASE)) is None


def test_the_seeds_own_sample_record_breaks_the_customer_id_format() -> None:
    sample = {
        "event_id": "EVENT_a1b2c3d4", "customer_id": "CUST_5e6f7g8h",
        "title_id": "TITLE_9i0j1k2l", "session_id": "SESSION_3m4n5o6p", "event_type": "start",
        "event_timestamp": 1_754_922_645_123, "watch_duration_seconds": 0,
        "position_seconds": 0, "completion_percentage": 0.0, "device_type": "mobile",
        "device_id": "DEVICE_7q8r9s0t", "device_os": "iOS", "app_version": "5.2.1",
        "quality": "HD", "bandwidth_mbps": 25.5, "buffering_events": 0,
        "buffering_duration_seconds": 0, "error_count": 0, "ip_address": "192.168.1.100",
        "country": "United States", "state": "California", "city": "Los Angeles",
        "isp": "Comcast", "connection_type": "wifi",
    }  # fmt: skip
    # event_id is fine; customer_id is the first identifier with non-hex digits.
    assert reason(sample) == "validation.customer_id_format"


# -- required_fields -----------------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED)
def test_required_field_none_is_rejected(field: str) -> None:
    assert reason(event(**{field: None})) == "validation.required_fields"


@pytest.mark.parametrize("field", REQUIRED)
def test_required_field_missing_is_rejected(field: str) -> None:
    ev = dict(BASE)
    del ev[field]
    assert reason(ev) == "validation.required_fields"


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
@pytest.mark.parametrize("field", STRING_REQUIRED)
def test_required_string_blank_is_rejected(field: str, blank: str) -> None:
    assert reason(event(**{field: blank})) == "validation.required_fields"


@pytest.mark.parametrize("state", [None, "", "Ontario"])
def test_state_is_optional(state: str | None) -> None:
    assert validate(event(state=state)) is None
    ev = dict(BASE)
    del ev["state"]
    assert validate(ev) is None


# -- unknown_event_type --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"event_type": "start", **IDLE}, None),
        ({"event_type": "stop"}, None),
        ({"event_type": "pause"}, None),
        ({"event_type": "resume"}, None),  # the seed's "resume watch = 0" is not a rule
        ({"event_type": "complete", "completion_percentage": 97.5}, None),
        ({"event_type": "rewind"}, "unknown_event_type"),
        ({"event_type": "START", **IDLE}, "unknown_event_type"),
        ({"event_type": "stop "}, "unknown_event_type"),
    ],
)
def test_event_type(overrides: dict[str, Any], expected: str | None) -> None:
    assert reason(event(**overrides)) == expected


# -- <id>_format, app_version_format, ip_address_format, quality_value ----------------------

ID_FIELDS = (
    ("event_id", "EVENT"),
    ("customer_id", "CUST"),
    ("title_id", "TITLE"),
    ("session_id", "SESSION"),
    ("device_id", "DEVICE"),
)


@pytest.mark.parametrize(("field", "prefix"), ID_FIELDS)
@pytest.mark.parametrize(
    ("suffix", "ok"),
    [
        ("0123abcd", True),  # 8 hex digits
        ("ABCDEF09", True),  # upper-case hex is hex
        ("0123abc", False),  # 7
        ("0123abcde", False),  # 9
        ("0123abcg", False),  # 8, one not hex
        ("0123abc ", False),
        ("", False),
    ],
)
def test_identifier_format(field: str, prefix: str, suffix: str, ok: bool) -> None:
    expected = None if ok else f"validation.{field}_format"
    assert reason(event(**{field: f"{prefix}_{suffix}"})) == expected


@pytest.mark.parametrize(("field", "prefix"), ID_FIELDS)
def test_identifier_prefix(field: str, prefix: str) -> None:
    assert reason(event(**{field: f"{prefix.lower()}_0123abcd"})) == f"validation.{field}_format"
    assert reason(event(**{field: f"{prefix}0123abcd"})) == f"validation.{field}_format"
    assert reason(event(**{field: f"X{prefix}_0123abcd"})) == f"validation.{field}_format"
    wrong = "EVENT" if prefix != "EVENT" else "CUST"
    assert reason(event(**{field: f"{wrong}_0123abcd"})) == f"validation.{field}_format"


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("5.2.1", True),
        ("0.0.0", True),
        ("10.20.300", True),
        ("5.2", False),
        ("5", False),
        ("5.2.1.0", False),
        ("v5.2.1", False),
        ("5.2.x", False),
        ("5.2.1-beta", False),
        ("5..1", False),
        ("5.2.1\n", False),
        # Arabic-Indic digits: not X.Y.Z in the version sense (Python's \d matches them).
        ("\u0665.\u0662.\u0661", False),
    ],
)
def test_app_version_format(version: str, ok: bool) -> None:
    assert reason(event(app_version=version)) == (None if ok else "validation.app_version_format")


@pytest.mark.parametrize(
    ("ip", "ok"),
    [
        ("255.255.255.255", True),
        ("0.0.0.0", True),
        ("192.168.1.100", True),
        ("10.0.0.9", True),
        ("256.1.1.1", False),
        ("1.1.1.256", False),
        ("1.2.3", False),
        ("1.2.3.4.5", False),
        ("01.2.3.4", False),
        ("1.2.3.4 ", False),
        ("a.b.c.d", False),
        ("::1", False),
        ("2001:db8::1", False),
        # Non-ASCII digits are not an IPv4 address (ipaddress.IPv4Address rejects them too).
        ("\u0669.\u0669.\u0669.\u0669", False),
        ("1\u06692.168.1.1", False),
    ],
)
def test_ip_address_format(ip: str, ok: bool) -> None:
    assert reason(event(ip_address=ip)) == (None if ok else "validation.ip_address_format")


@pytest.mark.parametrize(
    ("quality", "expected"),
    [
        ("SD", None),
        ("HD", None),
        ("4K", None),
        ("4k", "validation.quality_value"),
        ("hd", "validation.quality_value"),
        ("UHD", "validation.quality_value"),
        ("8K", "validation.quality_value"),
    ],
)
def test_quality_value(quality: str, expected: str | None) -> None:
    assert reason(event(quality=quality)) == expected


# -- <field>_range --------------------------------------------------------------------------

RANGE_CASES = [
    # watch_duration_seconds 0-86400
    ({**IDLE, "watch_duration_seconds": 0}, None),
    ({"watch_duration_seconds": 86400}, None),
    ({**IDLE, "watch_duration_seconds": -1}, "validation.watch_duration_range"),
    ({"watch_duration_seconds": 86401}, "validation.watch_duration_range"),
    # position_seconds 0-86400
    ({"position_seconds": 0}, None),
    ({"position_seconds": 86400}, None),
    ({"position_seconds": -1}, "validation.position_range"),
    ({"position_seconds": 86401}, "validation.position_range"),
    # completion_percentage 0.0-100.0
    ({"completion_percentage": 0.0}, None),
    ({"completion_percentage": 100.0}, None),
    ({"completion_percentage": -0.01}, "validation.completion_percentage_range"),
    ({"completion_percentage": 100.01}, "validation.completion_percentage_range"),
    ({"completion_percentage": float("nan")}, "validation.completion_percentage_range"),
    # bandwidth_mbps 0.0-1000.0
    ({"bandwidth_mbps": 0.0}, None),
    ({"bandwidth_mbps": 1000.0}, None),
    ({"bandwidth_mbps": -0.01}, "validation.bandwidth_range"),
    ({"bandwidth_mbps": 1000.01}, "validation.bandwidth_range"),
    ({"bandwidth_mbps": float("nan")}, "validation.bandwidth_range"),
    # buffering_events 0-1000
    ({"buffering_events": 0, "buffering_duration_seconds": 0}, None),
    ({"buffering_events": 1000}, None),
    ({"buffering_events": -1}, "validation.buffering_events_range"),
    ({"buffering_events": 1001}, "validation.buffering_events_range"),
    # buffering_duration_seconds 0-3600
    ({"buffering_duration_seconds": 0}, None),
    ({"buffering_duration_seconds": 3600, "watch_duration_seconds": 3600}, None),
    ({"buffering_duration_seconds": -1}, "validation.buffering_duration_range"),
    (
        {"buffering_duration_seconds": 3601, "watch_duration_seconds": 86400},
        "validation.buffering_duration_range",
    ),
    # error_count 0-100
    ({"error_count": 0}, None),
    ({"error_count": 100}, None),
    ({"error_count": -1}, "validation.error_count_range"),
    ({"error_count": 101}, "validation.error_count_range"),
]


@pytest.mark.parametrize(("overrides", "expected"), RANGE_CASES)
def test_ranges(overrides: dict[str, Any], expected: str | None) -> None:
    assert reason(event(**overrides)) == expected


# -- logical rules ----------------------------------------------------------------------------

LOGICAL_CASES = [
    # buffering_within_watch: buffering_duration_seconds <= watch_duration_seconds
    ({"watch_duration_seconds": 100, "buffering_duration_seconds": 100}, None),
    (
        {"watch_duration_seconds": 100, "buffering_duration_seconds": 101},
        "validation.buffering_within_watch",
    ),
    (
        {"watch_duration_seconds": 0, "buffering_duration_seconds": 1},
        "validation.buffering_within_watch",
    ),
    # start_zero_watch: a start event has watch_duration_seconds 0
    ({"event_type": "start", **IDLE}, None),
    (
        {"event_type": "start", **IDLE, "watch_duration_seconds": 1},
        "validation.start_zero_watch",
    ),
    ({"event_type": "pause", **IDLE, "watch_duration_seconds": 1}, None),
    # no_buffering_zero_duration: no buffering events means no buffering seconds
    ({"buffering_events": 0, "buffering_duration_seconds": 0}, None),
    (
        {"buffering_events": 0, "buffering_duration_seconds": 1},
        "validation.no_buffering_zero_duration",
    ),
    ({"buffering_events": 1, "buffering_duration_seconds": 0}, None),  # the converse is fine
    # quality_4k_bandwidth: 4K needs bandwidth_mbps >= 15.0
    ({"quality": "4K", "bandwidth_mbps": 15.0}, None),
    ({"quality": "4K", "bandwidth_mbps": 14.99}, "validation.quality_4k_bandwidth"),
    ({"quality": "4K", "bandwidth_mbps": 0.0}, "validation.quality_4k_bandwidth"),
    ({"quality": "HD", "bandwidth_mbps": 14.99}, None),
    ({"quality": "SD", "bandwidth_mbps": 0.5}, None),
]


@pytest.mark.parametrize(("overrides", "expected"), LOGICAL_CASES)
def test_logical_rules(overrides: dict[str, Any], expected: str | None) -> None:
    assert reason(event(**overrides)) == expected


# -- rule order: an event breaking two rules reports the earlier one ------------------------

ORDER_CASES = [
    ({"city": None, "event_type": "rewind"}, "validation.required_fields"),
    ({"city": "", "event_id": "nope"}, "validation.required_fields"),
    ({"event_type": "rewind", "event_id": "nope"}, "unknown_event_type"),
    ({"event_type": "rewind", "watch_duration_seconds": -5}, "unknown_event_type"),
    ({"event_id": "nope", "customer_id": "nope"}, "validation.event_id_format"),
    ({"customer_id": "nope", "title_id": "nope"}, "validation.customer_id_format"),
    ({"title_id": "nope", "session_id": "nope"}, "validation.title_id_format"),
    ({"session_id": "nope", "device_id": "nope"}, "validation.session_id_format"),
    ({"device_id": "nope", "app_version": "5"}, "validation.device_id_format"),
    ({"app_version": "5", "ip_address": "999.1.1.1"}, "validation.app_version_format"),
    ({"ip_address": "999.1.1.1", "quality": "8K"}, "validation.ip_address_format"),
    ({"quality": "8K", "watch_duration_seconds": -1}, "validation.quality_value"),
    (
        {"watch_duration_seconds": 86401, "position_seconds": 86401},
        "validation.watch_duration_range",
    ),
    (
        {"position_seconds": -1, "completion_percentage": 101.0},
        "validation.position_range",
    ),
    (
        {"completion_percentage": 101.0, "bandwidth_mbps": 1001.0},
        "validation.completion_percentage_range",
    ),
    (
        {"bandwidth_mbps": 1001.0, "buffering_events": 1001},
        "validation.bandwidth_range",
    ),
    (
        {"buffering_events": 1001, "buffering_duration_seconds": 3601},
        "validation.buffering_events_range",
    ),
    (
        {"buffering_duration_seconds": 3601, "error_count": 101},
        "validation.buffering_duration_range",
    ),
    (
        {"error_count": 101, "buffering_duration_seconds": 700},  # 700 > watch 600
        "validation.error_count_range",
    ),
    (
        {"event_type": "start", "watch_duration_seconds": 5, "buffering_duration_seconds": 10},
        "validation.buffering_within_watch",
    ),
    (
        {
            "event_type": "start",
            "watch_duration_seconds": 5,
            "buffering_events": 0,
            "buffering_duration_seconds": 3,
        },
        "validation.start_zero_watch",
    ),
    (
        {
            "quality": "4K",
            "bandwidth_mbps": 10.0,
            "buffering_events": 0,
            "buffering_duration_seconds": 3,
        },
        "validation.no_buffering_zero_duration",
    ),
    # 4K with a negative bandwidth breaks the range, not the 4K rule
    ({"quality": "4K", "bandwidth_mbps": -1.0}, "validation.bandwidth_range"),
]


@pytest.mark.parametrize(("overrides", "expected"), ORDER_CASES)
def test_rule_order(overrides: dict[str, Any], expected: str) -> None:
    assert reason(event(**overrides)) == expected


def test_validate_does_not_modify_the_event() -> None:
    ev = event(quality="4K", bandwidth_mbps=1.0)
    before = dict(ev)
    validate(ev)
    assert ev == before
