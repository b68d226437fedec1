"""Seed 001's data-quality rules (app/validation/orders.py), each shown from both sides.

Every case is a literal change of one valid base event (the seed's ``create_order_created_event``
example, completed); the expected DLQ reason is spelled out by hand from the seed and the
module docstring.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from app.tools.simulator.orders import RULE_BREAKERS, OrderFactory
from app.tools.simulator.population import Population
from app.validation.orders import validate

CREATED: dict[str, Any] = {
    "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "event_type": "ORDER_CREATED",
    "order_id": "ORD-001",
    "timestamp": 1_754_922_600_000,
    "source": "order-service",
    "version": "1.0",
    "payload": {
        "user_id": "USR-123",
        "total_amount": 59.98,
        "currency": "USD",
        "status": "PENDING",
        "items": [{"sku": "SKU-123", "quantity": 2, "unit_price": 29.99}],
        "shipping_address": {"street": "123 Main St", "city": "Anytown", "postal_code": "12345"},
        "payment_method": None,
        "payment_id": None,
        "metadata": None,
    },
}
AUTHORIZED: dict[str, Any] = {
    **CREATED,
    "event_type": "PAYMENT_AUTHORIZED",
    "payload": {**CREATED["payload"], "status": "PAID", "items": None,
                "payment_method": "CREDIT_CARD", "payment_id": "pay_0001"},
}  # fmt: skip


def with_(base: dict[str, Any], **payload: Any) -> dict[str, Any]:
    """``base`` with payload fields changed; top-level fields as ``top__<name>``."""
    event = copy.deepcopy(base)
    for name, value in payload.items():
        if name.startswith("top__"):
            event[name.removeprefix("top__")] = value
        else:
            event["payload"][name] = value
    return event


def reason(event: dict[str, Any]) -> str | None:
    violation = validate(event)
    return violation.reason if violation else None


def items(*lines: tuple[int, float]) -> list[dict[str, Any]]:
    return [{"sku": f"SKU-{i}", "quantity": q, "unit_price": p} for i, (q, p) in enumerate(lines)]


def test_examples_are_valid() -> None:
    assert validate(CREATED) is None
    assert validate(AUTHORIZED) is None


@pytest.mark.parametrize("event_type", [
    "ORDER_CONFIRMED", "ORDER_UPDATED", "ORDER_SHIPPED", "ORDER_DELIVERED", "ORDER_CANCELLED",
    "ORDER_REFUNDED",
])  # fmt: skip
def test_other_event_types_need_no_items_or_payment(event_type: str) -> None:
    bare = with_(CREATED, top__event_type=event_type, items=None, total_amount=None,
                 user_id=None, status=None)  # fmt: skip
    assert validate(bare) is None


@pytest.mark.parametrize(
    "change", [{"top__event_id": ""}, {"top__order_id": " "}, {"top__order_id": None},
               {"currency": ""}, {"top__timestamp": None}, {"top__event_type": None}],
)  # fmt: skip
def test_required_fields(change: dict[str, Any]) -> None:
    assert reason(with_(CREATED, **change)) == "validation.required_fields"


def test_required_fields_of_items_and_a_missing_payload() -> None:
    assert reason(with_(CREATED, items=[{"sku": "", "quantity": 1, "unit_price": 1.0}])) == (
        "validation.required_fields"
    )
    assert reason(with_(CREATED, items=["SKU-1"])) == "validation.required_fields"
    event = copy.deepcopy(CREATED)
    del event["payload"]
    assert reason(event) == "validation.required_fields"


@pytest.mark.parametrize(
    ("change", "known"),
    [
        ({"top__event_type": "ORDER_RETURNED"}, False),
        ({"top__event_type": "order_created"}, False),
        ({"status": "ON_HOLD"}, False),
        ({"status": "REFUNDED"}, True),
        ({"status": None}, True),
        ({"payment_method": "CRYPTO"}, False),
        ({"payment_method": "GIFT_CARD"}, True),
    ],
)
def test_unknown_symbols_are_unknown_event_types(change: dict[str, Any], known: bool) -> None:
    assert reason(with_(CREATED, **change)) == (None if known else "unknown_event_type")


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [(946_684_800_000, None), (946_684_799_999, "validation.timestamp_range"),
     (4_102_444_799_999, None), (4_102_444_800_000, "validation.timestamp_range"),
     (1_754_922_600, "validation.timestamp_range")],
)  # fmt: skip
def test_timestamp_range(timestamp: int, expected: str | None) -> None:
    assert reason(with_(CREATED, top__timestamp=timestamp)) == expected


def test_event_id_format() -> None:
    assert reason(with_(CREATED, top__event_id="ORD-001-created")) == "validation.event_id_format"


@pytest.mark.parametrize(
    ("currency", "ok"),
    [("USD", True), ("JPY", True), ("usd", False), ("US", False), ("USDT", False),
     ("U5D", False), ("ÜSD", False)],
)  # fmt: skip
def test_currency_is_an_iso_code(currency: str, ok: bool) -> None:
    expected = None if ok else "validation.currency_format"
    assert reason(with_(CREATED, currency=currency)) == expected


@pytest.mark.parametrize(
    "change", [{"items": None}, {"items": []}, {"total_amount": None}, {"user_id": None},
               {"user_id": " "}],
)  # fmt: skip
def test_order_created_needs_user_items_and_total(change: dict[str, Any]) -> None:
    assert reason(with_(CREATED, **change)) == "validation.order_created_fields"


@pytest.mark.parametrize("event_type", ["PAYMENT_AUTHORIZED", "PAYMENT_FAILED"])
@pytest.mark.parametrize("change", [{"payment_method": None}, {"payment_id": None},
                                    {"payment_id": ""}])  # fmt: skip
def test_payment_events_need_method_and_id(event_type: str, change: dict[str, Any]) -> None:
    assert validate(with_(AUTHORIZED, top__event_type=event_type)) is None
    event = with_(AUTHORIZED, top__event_type=event_type, **change)
    assert reason(event) == "validation.payment_fields"


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(1, None), (0, "validation.quantity_range"), (-2, "validation.quantity_range"),
     (1.5, "validation.quantity_range")],
)  # fmt: skip
def test_quantities_are_positive_integers(quantity: Any, expected: str | None) -> None:
    event = with_(CREATED, items=items((quantity, 10.0)), total_amount=quantity * 10.0)
    assert reason(event) == expected


@pytest.mark.parametrize(
    ("price", "expected"),
    [(0.0, None), (-0.01, "validation.unit_price_range"), (math.nan, "validation.unit_price_range"),
     (math.inf, "validation.unit_price_range")],
)  # fmt: skip
def test_unit_prices_are_not_negative(price: float, expected: str | None) -> None:
    event = with_(CREATED, items=items((1, price)), total_amount=0.0)
    assert reason(event) == expected


@pytest.mark.parametrize(
    ("total", "expected"),
    [(0.0, None), (-0.01, "validation.total_amount_range"),
     (math.nan, "validation.total_amount_range")],
)  # fmt: skip
def test_totals_are_not_negative(total: float, expected: str | None) -> None:
    event = with_(CREATED, top__event_type="ORDER_REFUNDED", items=None, total_amount=total)
    assert reason(event) == expected


@pytest.mark.parametrize(
    ("lines", "total", "expected"),
    [
        # one line: tolerance 0.005 x 2 = 0.01
        (((2, 29.99),), 59.98, None),
        (((2, 29.99),), 59.989, None),  # 0.009 away: inside
        (((2, 29.99),), 59.9699, "validation.total_matches_items"),  # 0.0101 away
        (((2, 29.99),), 60.00, "validation.total_matches_items"),
        # three lines: tolerance 0.005 x 4 = 0.02
        (((1, 0.335), (1, 0.335), (1, 0.335)), 1.02, None),  # lines rounded up to 0.34 each
        (((1, 0.335), (1, 0.335), (1, 0.335)), 1.03, "validation.total_matches_items"),
        (((3, 1500.0), (1, 250.0)), 4750.0, None),  # JPY, no minor unit
        (((3, 1500.0),), 4750.0, "validation.total_matches_items"),  # a line missing
    ],
)
def test_total_matches_items(lines: tuple, total: float, expected: str | None) -> None:
    assert reason(with_(CREATED, items=items(*lines), total_amount=total)) == expected


@pytest.mark.parametrize("rule", sorted(RULE_BREAKERS))
def test_the_simulator_breaks_exactly_the_rule_it_names(rule: str) -> None:
    factory = OrderFactory(Population(5))
    rng = random.Random(rule)
    for _ in range(60):
        _, event = factory.make(rng, 1_754_922_600_000)
        assert validate(event) is None, event
        assert reason(RULE_BREAKERS[rule](event)) == f"validation.{rule}"
        assert validate(event) is None  # the breaker copied, it did not change the event


# -- check order, amount bounds, currencies' minor units, shapes Avro cannot produce ----------


def test_an_unknown_symbol_wins_over_missing_fields() -> None:
    """Decoded as written (no reader defaults), a newer producer's event may lack fields."""
    event = with_(CREATED, top__event_type="ORDER_RETURNED")
    del event["payload"]["currency"], event["event_id"]
    assert reason(event) == "unknown_event_type"
    assert reason(with_(CREATED, status="ON_HOLD", items=[{"sku": ""}])) == "unknown_event_type"
    assert reason(with_(CREATED, status=["PAID"])) == "unknown_event_type"  # not a symbol at all


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"top__event_id": "x", "top__timestamp": 5}, "validation.event_id_format"),
        ({"top__timestamp": 5, "currency": "usd"}, "validation.timestamp_range"),
        ({"currency": "usd", "items": None}, "validation.currency_format"),
        ({"items": None, "total_amount": -1.0}, "validation.order_created_fields"),
        ({"items": items((0, -1.0)), "total_amount": -1.0}, "validation.quantity_range"),
        ({"items": items((1, -1.0)), "total_amount": -1.0}, "validation.unit_price_range"),
        ({"items": items((1, 1.0)), "total_amount": -1.0}, "validation.total_amount_range"),
    ],
)
def test_the_first_broken_rule_wins(change: dict[str, Any], expected: str) -> None:
    assert reason(with_(CREATED, **change)) == expected


@pytest.mark.parametrize(
    ("amount", "ok"), [(1e12, True), (1e12 + 1e6, False), (1e308, False), (10**30, False)]
)
def test_amounts_have_an_upper_bound(amount: float, ok: bool) -> None:
    refund = with_(CREATED, top__event_type="ORDER_REFUNDED", items=None, total_amount=amount)
    assert reason(refund) == (None if ok else "validation.total_amount_range")
    line = with_(CREATED, items=items((1, amount)), total_amount=float(amount))
    assert reason(line) == (None if ok else "validation.unit_price_range")


@pytest.mark.parametrize(
    ("currency", "lines", "total", "ok"),
    [
        # JPY has no minor unit: half a yen per line and for the total
        ("JPY", ((3, 1500.0),), 4501.0, True),  # 1 yen off, tolerance 1.0
        ("JPY", ((3, 1500.0),), 4501.5, False),
        # KWD has three decimals: 0.0005 per line and for the total
        ("KWD", ((2, 1.2345),), 2.4695, True),  # 0.0005 off, tolerance 0.001
        ("KWD", ((2, 1.2345),), 2.4705, False),  # 0.0015 off
        ("EUR", ((2, 1.2345),), 2.4705, True),  # two decimals: tolerance 0.01
    ],
)
def test_the_tolerance_follows_the_currencys_minor_unit(
    currency: str, lines: tuple, total: float, ok: bool
) -> None:
    event = with_(CREATED, currency=currency, items=items(*lines), total_amount=total)
    assert reason(event) == (None if ok else "validation.total_matches_items")


def test_a_large_total_is_compared_within_float_precision() -> None:
    # 7 lines of 123,456,789.01: the float sum differs from the decimal one in the last digits
    lines = [(1, 123_456_789.01)] * 7
    assert reason(with_(CREATED, items=items(*lines), total_amount=864_197_523.07)) is None


@pytest.mark.parametrize("timestamp", [1_754_922_600_000.0, "1754922600000"])
def test_a_timestamp_must_be_an_integer(timestamp: Any) -> None:
    assert reason(with_(CREATED, top__timestamp=timestamp)) in (
        "validation.timestamp_range", "validation.required_fields",
    )  # fmt: skip


def test_values_avro_cannot_produce_are_reported_not_raised() -> None:
    assert reason(with_(CREATED, items=items((10**400, 1.0)), total_amount=1.0)) == (
        "validation.quantity_range"
    )
    assert reason(with_(CREATED, items=items((2**31 - 1, 1.0)), total_amount=2.0**31 - 1)) is None
    assert reason(with_(CREATED, items=[{"sku": "S", "quantity": "2", "unit_price": 1.0}])) == (
        "validation.quantity_range"
    )
    assert reason(with_(CREATED, payment_method={"x": 1})) == "unknown_event_type"
