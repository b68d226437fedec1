"""Seed 003's LENS topics: one rule set per topic, and the contract's metric-type rules.

Rule names (DLQ reason ``validation.<name>``), checked in the order listed; the first broken one
wins. Every topic starts with ``required_fields`` (its identifying strings present and not
blank, ``timestamp`` a number) and ``timestamp_range`` (epoch milliseconds, 2000-2100).

- ``user-interactions``: ``event_id_format`` (``eventId`` a UUID); an ``interactionType``
  outside view, click, rating, purchase, search, bookmark is ``unknown_event_type`` (a newer
  writer's enum symbol, decoded as written); ``rating_range`` (1 to 5, when a rating).
- ``recommendation-requests``: ``num_recommendations_range`` (an integer >= 1).
- ``recommendation-responses``: ``status_value`` (success, partial or error);
  ``processing_time_range`` (finite, >= 0); ``recommendations_items`` (every recommended item
  names its ``itemId``; an error response lists none, a success or partial one at least one).
- ``model-metrics``: ``event_id_format``; ``metric_type_format`` (``^[a-z][a-z0-9_]*$``);
  ``reserved_metric_type`` (``latency_ms``, ``error_rate``, ``ctr`` and ``requests`` are the
  types StreamPulse computes: a report of one would mix with them); ``value_range``
  (finite); ``report_window`` (``windowStart`` <= ``windowEnd``, both epoch milliseconds).
- ``ab-test-events``: ``event_id_format``; an ``eventType`` outside assignment, conversion,
  engagement, metric is ``unknown_event_type``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from app.validation import UNKNOWN_EVENT_TYPE, Violation
from app.validation.common import (
    event_id_format,
    is_blank,
    is_count,
    is_non_negative,
    is_number,
    missing_field,
    timestamp_range,
)

__all__ = [
    "AB_EVENT_TYPES",
    "INTERACTION_TYPES",
    "METRIC_TYPE_PATTERN",
    "RESERVED_METRIC_TYPES",
    "RESPONSE_STATUSES",
    "validate_ab_event",
    "validate_interaction",
    "validate_model_metric",
    "validate_request",
    "validate_response",
]

INTERACTION_TYPES = frozenset({"view", "click", "rating", "purchase", "search", "bookmark"})
RESPONSE_STATUSES = frozenset({"success", "partial", "error"})
AB_EVENT_TYPES = frozenset({"assignment", "conversion", "engagement", "metric"})
METRIC_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: computed by StreamPulse (contract section 3): a reported metric may not use these names
RESERVED_METRIC_TYPES = frozenset({"latency_ms", "error_rate", "ctr", "requests"})


def _required(event: dict[str, Any], *strings: str) -> Violation | None:
    missing = missing_field(event, [(None, s) for s in strings], [(None, "timestamp")])
    if missing:
        return Violation.rule(
            "required_fields", f"required field {missing} is missing, empty or mistyped"
        )
    return timestamp_range(event["timestamp"])


def _event_id(event: dict[str, Any]) -> Violation | None:
    """``eventId`` is a UUID (the LENS name of seed 004's ``event_id``)."""
    if event_id_format(event["eventId"]) is None:
        return None
    return Violation.rule("event_id_format", f"eventId {event['eventId']!r} is not a UUID")


def validate_interaction(event: dict[str, Any]) -> Violation | None:
    """Rules of ``user-interactions``."""
    violation = _required(event, "eventId", "userId", "sessionId", "itemId", "interactionType")
    if violation:
        return violation
    violation = _event_id(event)
    if violation:
        return violation
    kind = event["interactionType"]
    if kind not in INTERACTION_TYPES:
        return Violation(
            UNKNOWN_EVENT_TYPE, f"interactionType {kind!r} is not one this worker knows"
        )
    rating = event.get("rating")
    if kind == "rating" and not (is_number(rating) and 1.0 <= rating <= 5.0):
        return Violation.rule("rating_range", f"rating {rating!r} is not between 1 and 5")
    return None


def validate_request(event: dict[str, Any]) -> Violation | None:
    """Rules of ``recommendation-requests``."""
    violation = _required(event, "requestId", "userId", "modelName")
    if violation:
        return violation
    wanted = event.get("numRecommendations")
    if not is_count(wanted, 1):
        return Violation.rule(
            "num_recommendations_range", f"numRecommendations {wanted!r} is not an integer >= 1"
        )
    return None


def validate_response(event: dict[str, Any]) -> Violation | None:
    """Rules of ``recommendation-responses``."""
    violation = _required(event, "requestId", "userId", "modelName", "modelVersion", "status")
    if violation:
        return violation
    status = event["status"]
    if status not in RESPONSE_STATUSES:
        return Violation.rule("status_value", f"status {status!r} is not success, partial or error")
    latency = event.get("processingTime")
    if not is_non_negative(latency):
        return Violation.rule(
            "processing_time_range", f"processingTime {latency!r} is negative or not finite"
        )
    items = event.get("recommendations")
    if not isinstance(items, list) or any(
        not isinstance(item, dict) or is_blank(item.get("itemId")) for item in items
    ):
        return Violation.rule("recommendations_items", "a recommended item has no itemId")
    if (status == "error") != (not items):
        return Violation.rule(
            "recommendations_items",
            f"a {status} response lists {len(items)} items"
            + (" (an error lists none)" if status == "error" else " (it must list some)"),
        )
    return None


def validate_model_metric(event: dict[str, Any]) -> Violation | None:
    """Rules of ``model-metrics`` (and the contract's metric-type rules)."""
    violation = _required(event, "eventId", "modelName", "modelVersion", "metricType")
    if violation:
        return violation
    violation = _event_id(event)
    if violation:
        return violation
    metric = event["metricType"]
    if not METRIC_TYPE_PATTERN.fullmatch(metric):
        return Violation.rule(
            "metric_type_format", f"metricType {metric!r} does not match ^[a-z][a-z0-9_]*$"
        )
    if metric in RESERVED_METRIC_TYPES:
        return Violation.rule(
            "reserved_metric_type", f"metricType {metric!r} is computed by StreamPulse"
        )
    value = event.get("value")
    if not (is_number(value) and math.isfinite(value)):
        return Violation.rule("value_range", f"value {value!r} is not a finite number")
    start, end = event.get("windowStart"), event.get("windowEnd")
    if timestamp_range(start, "windowStart") or timestamp_range(end, "windowEnd") or start > end:
        return Violation.rule(
            "report_window", f"windowStart {start!r} / windowEnd {end!r} is not a window"
        )
    return None


def validate_ab_event(event: dict[str, Any]) -> Violation | None:
    """Rules of ``ab-test-events``."""
    violation = _required(event, "eventId", "experimentId", "userId", "variant", "eventType")
    if violation:
        return violation
    violation = _event_id(event)
    if violation:
        return violation
    kind = event["eventType"]
    if kind not in AB_EVENT_TYPES:
        return Violation(UNKNOWN_EVENT_TYPE, f"eventType {kind!r} is not one this worker knows")
    return None
