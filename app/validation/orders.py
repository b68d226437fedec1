"""Seed 001's data-quality rules for order events (topic ``orders.raw``).

The seed's Pydantic models imply these rules (DLQ reason ``validation.<name>``), checked in
this order; the first broken one wins:

- ``required_fields``: ``event_id``, ``order_id``, ``payload.currency`` and every item's ``sku``
  present and not blank, ``timestamp`` present.
- ``unknown_event_type`` (its own DLQ reason, seed 004): an ``event_type``, ``payload.status``
  or ``payload.payment_method`` symbol this reader schema does not know (a newer producer's).
- ``event_id_format``: a UUID in canonical text form.
- ``timestamp_range``: epoch milliseconds between 2000-01-01 and 2100-01-01.
- ``currency_format``: an ISO 4217 code (three capital letters): the aggregate's group key.
- ``order_created_fields``: an ``ORDER_CREATED`` names its user, its items (at least one) and
  its ``total_amount`` (its revenue counts in ``agg.orders.summary``).
- ``payment_fields``: ``PAYMENT_AUTHORIZED`` and ``PAYMENT_FAILED`` name their
  ``payment_method`` and ``payment_id``.
- ``quantity_range``: every item's quantity is at least 1.
- ``unit_price_range``, ``total_amount_range``: prices and totals are finite and not negative.
- ``total_matches_items``: where an event lists items and a total, the total equals the sum of
  quantity x unit price within :func:`total_tolerance`: half a minor unit (0.005) for the
  rounding of each line and of the total, so a total built from lines rounded to cents passes
  and a missing or extra line, or a wrong quantity, does not.
"""

from __future__ import annotations

from typing import Any

from app.validation import UNKNOWN_EVENT_TYPE, Violation
from app.validation.common import (
    event_id_format,
    is_blank,
    is_count,
    is_non_negative,
    missing_field,
    timestamp_range,
)

__all__ = [
    "EVENT_TYPES",
    "PAYMENT_EVENTS",
    "PAYMENT_METHODS",
    "STATUSES",
    "total_tolerance",
    "validate",
]

EVENT_TYPES = frozenset({
    "ORDER_CREATED", "PAYMENT_AUTHORIZED", "PAYMENT_FAILED", "ORDER_CONFIRMED", "ORDER_UPDATED",
    "ORDER_SHIPPED", "ORDER_DELIVERED", "ORDER_CANCELLED", "ORDER_REFUNDED",
})  # fmt: skip
STATUSES = frozenset({
    "PENDING", "PAID", "PAYMENT_FAILED", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED",
    "REFUNDED",
})  # fmt: skip
PAYMENT_METHODS = frozenset({
    "CREDIT_CARD", "DEBIT_CARD", "PAYPAL", "APPLE_PAY", "GOOGLE_PAY", "BANK_TRANSFER",
    "GIFT_CARD",
})  # fmt: skip
PAYMENT_EVENTS = frozenset({"PAYMENT_AUTHORIZED", "PAYMENT_FAILED"})

_REQUIRED_STRINGS = ((None, "event_id"), (None, "order_id"), ("payload", "currency"))
_REQUIRED_NUMBERS = ((None, "timestamp"),)


def total_tolerance(lines: int) -> float:
    """How far a total may be from the sum of its ``lines`` (see the module docstring)."""
    return 0.005 * (lines + 1)


def _unknown_symbol(event_type: Any, payload: dict[str, Any]) -> str | None:
    if event_type not in EVENT_TYPES:
        return f"unknown order event_type {event_type!r}"
    status = payload.get("status")
    if status is not None and status not in STATUSES:
        return f"unknown order status {status!r}"
    method = payload.get("payment_method")
    if method is not None and method not in PAYMENT_METHODS:
        return f"unknown payment_method {method!r}"
    return None


def validate(event: dict[str, Any]) -> Violation | None:
    """Return the first broken rule of ``event``, or None when it is clean."""
    missing = missing_field(event, _REQUIRED_STRINGS, _REQUIRED_NUMBERS)
    payload = event.get("payload")
    items = payload.get("items") if isinstance(payload, dict) else None
    if missing is None and items is not None:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            missing = "payload.items"
        elif any(is_blank(item.get("sku")) for item in items):
            missing = "payload.items[].sku"
    if missing is None and event.get("event_type") is None:
        missing = "event_type"
    if missing:
        return Violation.rule(
            "required_fields", f"required field {missing} is missing, empty or mistyped"
        )
    assert isinstance(payload, dict)
    unknown = _unknown_symbol(event["event_type"], payload)
    if unknown:
        return Violation(UNKNOWN_EVENT_TYPE, unknown)
    violation = event_id_format(event["event_id"]) or timestamp_range(event["timestamp"])
    if violation:
        return violation
    currency = payload["currency"]
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha()
            and currency.isupper()):  # fmt: skip
        return Violation.rule(
            "currency_format", f"currency {currency!r} is not an ISO 4217 code"
        )
    event_type = event["event_type"]
    total = payload.get("total_amount")
    if event_type == "ORDER_CREATED" and (is_blank(payload.get("user_id")) or not items
                                          or total is None):  # fmt: skip
        return Violation.rule(
            "order_created_fields", "ORDER_CREATED needs user_id, items and total_amount"
        )
    if event_type in PAYMENT_EVENTS and (payload.get("payment_method") is None
                                         or is_blank(payload.get("payment_id"))):  # fmt: skip
        return Violation.rule(
            "payment_fields", f"{event_type} needs payment_method and payment_id"
        )
    for item in items or ():
        if not is_count(item.get("quantity"), minimum=1):
            return Violation.rule(
                "quantity_range", f"item {item['sku']} has quantity {item.get('quantity')!r}"
            )
        if not is_non_negative(item.get("unit_price")):
            return Violation.rule(
                "unit_price_range",
                f"item {item['sku']} has unit_price {item.get('unit_price')!r}",
            )
    if total is not None and not is_non_negative(total):
        return Violation.rule(
            "total_amount_range", f"total_amount {total!r} is negative or not finite"
        )
    if items and total is not None:
        lines = sum(item["quantity"] * item["unit_price"] for item in items)
        if abs(total - lines) > total_tolerance(len(items)):
            return Violation.rule(
                "total_matches_items",
                f"total_amount {total} differs from the items' sum {lines:.4f}",
            )
    return None
