"""Seed 000's data-quality rules (app/validation/downloads.py), each shown from both sides.

Every case is a literal change of one valid base event (the seed's own example); the expected
DLQ reason is spelled out by hand from the seed, the contract and the module docstring.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from app.tools.simulator.downloads import RULE_BREAKERS, ContentDownloadFactory
from app.tools.simulator.population import Population
from app.validation.downloads import validate

# The seed's example event.
BASE: dict[str, Any] = {
    "event_id": "550e8400-e29b-41d4-a716-446655440000",
    "timestamp": 1698768000000,
    "user_id": "user_abc123",
    "content": {
        "content_id": "mov_avengers_2", "title": "Avengers: Endgame 2", "type": "movie",
        "category": "action", "size_mb": 4200, "price": 19.99,
    },
    "download": {
        "status": "success", "duration_seconds": 120, "speed_mbps": 35.0,
        "error_code": None, "error_message": None,
    },
    "user_context": {
        "region": "US-California", "city": "San Francisco", "device": "iPhone 15 Pro",
        "os_version": "iOS 18.1", "connection_type": "wifi",
    },
}  # fmt: skip


def with_(**changes: Any) -> dict[str, Any]:
    """BASE with ``record__field=value`` changes (``user_id=...`` for top-level fields)."""
    event = copy.deepcopy(BASE)
    for path, value in changes.items():
        record, _, name = path.rpartition("__")
        (event[record] if record else event)[name] = value
    return event


def reason(event: dict[str, Any]) -> str | None:
    violation = validate(event)
    return violation.reason if violation else None


def test_the_seed_example_is_valid() -> None:
    assert validate(BASE) is None


@pytest.mark.parametrize(
    "path",
    ["event_id", "user_id", "content__content_id", "content__title", "content__type",
     "content__category", "download__status", "user_context__region", "user_context__city",
     "user_context__device", "user_context__os_version", "user_context__connection_type"],
)  # fmt: skip
@pytest.mark.parametrize("value", ["", "   ", None, 7])
def test_required_strings(path: str, value: Any) -> None:
    assert reason(with_(**{path: value})) == "validation.required_fields"


@pytest.mark.parametrize("record", ["content", "download", "user_context"])
def test_a_missing_nested_record_is_reported_not_raised(record: str) -> None:
    event = copy.deepcopy(BASE)
    del event[record]
    assert reason(event) == "validation.required_fields"
    assert reason({}) == "validation.required_fields"


@pytest.mark.parametrize(
    "path", ["timestamp", "content__size_mb", "content__price", "download__duration_seconds",
             "download__speed_mbps"],
)  # fmt: skip
def test_required_numbers(path: str) -> None:
    assert reason(with_(**{path: None})) == "validation.required_fields"
    assert reason(with_(**{path: "12"})) == "validation.required_fields"


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        ("550e8400-e29b-41d4-a716-446655440000", None),
        ("550E8400-E29B-41D4-A716-446655440000", None),  # upper-case hex is a UUID too
        ("550e8400e29b41d4a716446655440000", "validation.event_id_format"),  # no dashes
        ("550e8400-e29b-41d4-a716-44665544000", "validation.event_id_format"),  # 11 digits
        ("550e8400-e29b-41d4-a716-44665544000g", "validation.event_id_format"),
        ("{550e8400-e29b-41d4-a716-446655440000}", "validation.event_id_format"),
    ],
)
def test_event_id_is_a_canonical_uuid(event_id: str, expected: str | None) -> None:
    assert reason(with_(event_id=event_id)) == expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (946_684_800_000, None),  # 2000-01-01T00:00:00Z
        (946_684_799_999, "validation.timestamp_range"),
        (4_102_444_799_999, None),  # the last ms of 2099
        (4_102_444_800_000, "validation.timestamp_range"),
        (1_698_768_000, "validation.timestamp_range"),  # the seed's time in seconds
        (-1, "validation.timestamp_range"),
    ],
)
def test_timestamp_is_epoch_milliseconds(timestamp: int, expected: str | None) -> None:
    assert reason(with_(timestamp=timestamp)) == expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("success", None, None),
        ("success", "cdn_timeout", "validation.error_code_forbidden"),
        ("success", "", "validation.error_code_forbidden"),  # present, though blank
        ("failed", "cdn_timeout", None),
        ("failed", None, "validation.error_code_required"),
        ("failed", " ", "validation.error_code_required"),
        ("cancelled", None, None),  # optional when cancelled
        ("cancelled", "user_abort", None),
        ("paused", None, "validation.status_value"),
        ("Success", None, "validation.status_value"),
    ],
)
def test_status_and_error_code(status: str, code: str | None, expected: str | None) -> None:
    assert reason(with_(download__status=status, download__error_code=code)) == expected


@pytest.mark.parametrize("content_type", ["movie", "tv_show", "music", "app", "book"])
def test_documented_content_types(content_type: str) -> None:
    assert reason(with_(content__type=content_type)) is None


@pytest.mark.parametrize("content_type", ["podcast", "Movie", "tv show"])
def test_other_content_types(content_type: str) -> None:
    assert reason(with_(content__type=content_type)) == "validation.content_type_value"


@pytest.mark.parametrize(
    ("path", "rule"),
    [("content__size_mb", "size_range"), ("download__duration_seconds", "duration_range"),
     ("download__speed_mbps", "speed_range"), ("content__price", "price_range")],
)  # fmt: skip
def test_non_negative_numbers(path: str, rule: str) -> None:
    assert reason(with_(**{path: 0})) is None  # zero is allowed (a free app, an instant copy)
    assert reason(with_(**{path: -1})) == f"validation.{rule}"
    if not path.endswith(("size_mb", "duration_seconds")):  # Avro floats
        assert reason(with_(**{path: 0.0})) is None
        assert reason(with_(**{path: -1e-6})) == f"validation.{rule}"
        assert reason(with_(**{path: math.nan})) == f"validation.{rule}"
        assert reason(with_(**{path: math.inf})) == f"validation.{rule}"


def test_unchecked_fields_take_any_value() -> None:
    """No closed set in the seed: regions, categories, devices, connections beyond its list."""
    assert reason(with_(user_context__connection_type="ethernet", content__category="x",
                        user_context__region="SA-Lima")) is None  # fmt: skip
    assert reason({**BASE, "content_rating": "PG-13"}) is None  # v2 field, read or not


@pytest.mark.parametrize("rule", sorted(RULE_BREAKERS))
def test_the_simulator_breaks_exactly_the_rule_it_names(rule: str) -> None:
    factory = ContentDownloadFactory(Population(5))
    rng = random.Random(rule)
    for _ in range(30):
        _, event = factory.make(rng, 1_754_922_600_000)
        assert validate(event) is None
        assert reason(RULE_BREAKERS[rule](event)) == f"validation.{rule}"
        assert validate(event) is None  # the breaker copied, it did not change the event


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"event_id": "x", "timestamp": 5}, "validation.event_id_format"),
        ({"timestamp": 5, "download__status": "paused"}, "validation.timestamp_range"),
        ({"download__status": "paused", "content__type": "podcast"}, "validation.status_value"),
        ({"content__type": "podcast", "download__status": "failed"},
         "validation.content_type_value"),
        ({"download__status": "failed", "content__size_mb": -1}, "validation.error_code_required"),
        ({"download__error_code": "x", "content__size_mb": -1}, "validation.error_code_forbidden"),
        ({"content__size_mb": -1, "content__price": -1.0}, "validation.size_range"),
        ({"download__duration_seconds": -1, "content__price": -1.0}, "validation.duration_range"),
        ({"download__speed_mbps": -1.0, "content__price": -1.0}, "validation.speed_range"),
    ],
)  # fmt: skip
def test_the_first_broken_rule_wins(changes: dict[str, Any], expected: str) -> None:
    assert reason(with_(**changes)) == expected


def test_a_timestamp_must_be_an_integer() -> None:
    assert reason(with_(timestamp=1698768000000.0)) == "validation.timestamp_range"
