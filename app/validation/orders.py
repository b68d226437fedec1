"""Seed 001's data-quality rules for order events (topic ``orders.raw``).

The seed's Pydantic models imply these rules (DLQ reason ``validation.<name>``), checked in
this order; the first broken one wins:

- ``unknown_event_type`` (its own DLQ reason, seed 004), first: an ``event_type``,
  ``payload.status`` or ``payload.payment_method`` symbol this reader schema does not know (a
  newer producer's). First, because such a message is decoded as written, without the reader's
  defaults, so it may lack fields a known event would have.
- ``required_fields``: ``event_type``, ``event_id``, ``order_id``, ``payload.currency`` and
  every item's ``sku`` present and not blank, ``timestamp`` present.
- ``event_id_format``: a UUID in canonical text form.
- ``timestamp_range``: epoch milliseconds between 2000-01-01 and 2100-01-01.
- ``currency_format``: three capital letters, the shape of an ISO 4217 code (the aggregate's
  group key; the list of codes is not checked, so a new currency needs no release).
- ``order_created_fields``: an ``ORDER_CREATED`` names its user, its items (at least one) and
  its ``total_amount`` (its revenue counts in ``agg.orders.summary``).
- ``payment_fields``: ``PAYMENT_AUTHORIZED`` and ``PAYMENT_FAILED`` name their
  ``payment_method`` and ``payment_id``.
- ``quantity_range``: every item's quantity is an integer from 1 to :data:`MAX_QUANTITY`.
- ``unit_price_range``, ``total_amount_range``: prices and totals are finite, not negative and
  at most :data:`MAX_AMOUNT` (far above any real order, and it keeps every sum of a window
  well inside a double's range).
- ``total_matches_items``: where an event lists items and a total, the total equals the sum of
  quantity x unit price within :func:`total_tolerance`: half a minor unit of the currency for
  the rounding of each line and of the total, so a total built from lines rounded to the
  currency's minor unit passes, and a missing or extra line, or a wrong quantity, does not
  (unless that line is worth less than the tolerance).
"""

from __future__ import annotations

import math
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
    "MAX_AMOUNT",
    "MAX_QUANTITY",
    "MINOR_UNITS",
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

#: The largest price or total accepted, in any currency.
MAX_AMOUNT = 1e12
#: The largest quantity: an Avro int.
MAX_QUANTITY = 2**31 - 1
#: ISO 4217 minor-unit exponents that are not 2 (yen has no minor unit, the dinar three).
MINOR_UNITS = {
    **dict.fromkeys(("JPY", "KRW", "VND", "CLP", "ISK", "PYG", "UGX", "XAF", "XOF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

_REQUIRED_STRINGS = (
    (None, "event_type"), (None, "event_id"), (None, "order_id"), ("payload", "currency"),
)  # fmt: skip
_REQUIRED_NUMBERS = ((None, "timestamp"),)


def total_tolerance(currency: str, lines: int, magnitude: float = 0.0) -> float:
    """How far a total may be from the sum of its ``lines`` (see the module docstring), plus
    the float error of summing numbers of that ``magnitude``."""
    half_minor_unit = 0.5 * 10.0 ** -MINOR_UNITS.get(currency, 2)
    return half_minor_unit * (lines + 1) + math.ulp(magnitude) * (lines + 1)


def _unknown_symbol(event: dict[str, Any]) -> str | None:
    """Why ``event`` uses a symbol this reader does not know, or None."""
    event_type = event.get("event_type")
    if event_type is not None and (not isinstance(event_type, str)
                                   or event_type not in EVENT_TYPES):  # fmt: skip
        return f"unknown order event_type {event_type!r}"
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return None
    for name, known in (("status", STATUSES), ("payment_method", PAYMENT_METHODS)):
        value = payload.get(name)
        if value is not None and (not isinstance(value, str) or value not in known):
            return f"unknown order {name} {value!r}"
    return None


def _missing(event: dict[str, Any]) -> str | None:
    """The first required field that is missing, blank or mistyped, or None."""
    missing = missing_field(event, _REQUIRED_STRINGS, _REQUIRED_NUMBERS)
    if missing:
        return missing
    items = event["payload"].get("items")
    if items is None:
        return None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return "payload.items"
    if any(is_blank(item.get("sku")) for item in items):
        return "payload.items[].sku"
    return None


def validate(event: dict[str, Any]) -> Violation | None:
    """Return the first broken rule of ``event``, or None when it is clean."""
    unknown = _unknown_symbol(event)
    if unknown:
        return Violation(UNKNOWN_EVENT_TYPE, unknown)
    missing = _missing(event)
    if missing:
        return Violation.rule(
            "required_fields", f"required field {missing} is missing, empty or mistyped"
        )
    violation = event_id_format(event["event_id"]) or timestamp_range(event["timestamp"])
    if violation:
        return violation
    payload = event["payload"]
    currency = payload["currency"]
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha()
            and currency.isupper()):  # fmt: skip
        return Violation.rule(
            "currency_format", f"currency {currency!r} is not three capital letters (ISO 4217)"
        )
    event_type = event["event_type"]
    items = payload.get("items")
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
        if not (is_count(item.get("quantity"), minimum=1) and item["quantity"] <= MAX_QUANTITY):
            return Violation.rule(
                "quantity_range", f"item {item['sku']} has quantity {item.get('quantity')!r}"
            )
        price = item.get("unit_price")
        if not (is_non_negative(price) and price <= MAX_AMOUNT):
            return Violation.rule(
                "unit_price_range", f"item {item['sku']} has unit_price {price!r}"
            )
    if total is not None and not (is_non_negative(total) and total <= MAX_AMOUNT):
        return Violation.rule(
            "total_amount_range",
            f"total_amount {total!r} is negative, not finite or above {MAX_AMOUNT:g}",
        )
    if items and total is not None:
        lines = sum(item["quantity"] * item["unit_price"] for item in items)
        tolerance = total_tolerance(currency, len(items), max(abs(total), abs(lines)))
        if abs(total - lines) > tolerance:
            return Violation.rule(
                "total_matches_items",
                f"total_amount {total} differs from the items' sum {lines:.4f} by more than"
                f" {tolerance:g}",
            )
    return None
