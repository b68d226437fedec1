"""Order lifecycle events (seed 001) for topic ``orders.raw``, keyed by ``order_id``.

Orders move through a plausible lifecycle, one event per call: ``ORDER_CREATED``, then
``PAYMENT_AUTHORIZED`` (about 92%) or ``PAYMENT_FAILED`` (retried or cancelled), then
``ORDER_CONFIRMED``, sometimes ``ORDER_UPDATED``, ``ORDER_SHIPPED``, ``ORDER_DELIVERED``, with
occasional cancellations and refunds. Amounts are in the ordering user's local currency.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from app.catalog import SOURCE_TOPICS
from app.tools.simulator.population import (
    CURRENCY_RATES,
    EventFactory,
    Population,
    User,
    changed,
    rng_uuid,
)

__all__ = [
    "EVENT_TYPES",
    "NEWER_EVENT_TYPE",
    "PAYMENT_METHODS",
    "RULE_BREAKERS",
    "OrderFactory",
    "factories",
]

_TOPIC = SOURCE_TOPICS["orders.raw"]

EVENT_TYPES: tuple[str, ...] = (
    "ORDER_CREATED",
    "PAYMENT_AUTHORIZED",
    "PAYMENT_FAILED",
    "ORDER_CONFIRMED",
    "ORDER_UPDATED",
    "ORDER_SHIPPED",
    "ORDER_DELIVERED",
    "ORDER_CANCELLED",
    "ORDER_REFUNDED",
)
PAYMENT_METHODS: tuple[str, ...] = (
    "CREDIT_CARD",
    "DEBIT_CARD",
    "PAYPAL",
    "APPLE_PAY",
    "GOOGLE_PAY",
    "BANK_TRANSFER",
    "GIFT_CARD",
)
_PAYMENT_WEIGHTS = (38, 18, 16, 12, 8, 5, 3)
_FAILURE_REASONS = ("insufficient_funds", "card_declined", "fraud_suspected", "expired_card")
_CHANNELS = ("web", "ios", "android")
_CARRIERS = ("UPS", "FedEx", "DHL", "USPS", "Royal Mail")
_STREETS = ("Main St", "Oak Ave", "Market St", "High St", "Park Rd", "Elm St", "King St")

# (sku, USD unit price), earlier SKUs sell more often.
_SKUS: tuple[tuple[str, float], ...] = (
    ("SKU-10001", 12.99),
    ("SKU-10002", 24.50),
    ("SKU-10003", 8.75),
    ("SKU-10004", 59.00),
    ("SKU-10005", 129.99),
    ("SKU-10006", 5.49),
    ("SKU-10007", 34.95),
    ("SKU-10008", 249.00),
    ("SKU-10009", 17.25),
    ("SKU-10010", 79.99),
    ("SKU-10011", 3.99),
    ("SKU-10012", 449.00),
)
_SKU_WEIGHTS = [1.0 / (rank + 1) for rank in range(len(_SKUS))]

_MAX_OPEN_ORDERS = 1000
_P_NEW_ORDER = 0.25


@dataclass
class _Order:
    """An open order: what its later events repeat (user, total) and its next step."""

    order_id: str
    user: User
    total: float
    next_event: str
    payment_attempts: int = 0
    paid: bool = False


def _money(amount_usd: float, currency: str) -> float:
    """Convert a USD amount, rounded as the currency is (yen has no minor unit)."""
    digits = 0 if currency == "JPY" else 2
    return round(amount_usd * CURRENCY_RATES[currency], digits)


class OrderFactory:
    """Interleaved lifecycles of many open orders; each call emits the next event of one."""

    topic: str = _TOPIC.name
    schema_file: str = _TOPIC.schema_file

    def __init__(self, population: Population) -> None:
        self.population = population
        self._open: dict[str, _Order] = {}
        self._open_ids: list[str] = []

    def make(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        create = not self._open_ids or (
            len(self._open_ids) < _MAX_OPEN_ORDERS and rng.random() < _P_NEW_ORDER
        )
        if create:
            event_type, order, payload = self._create(rng)
        else:
            order = self._open[self._open_ids[rng.randrange(len(self._open_ids))]]
            event_type, payload = self._advance(rng, order)
        value: dict[str, Any] = {
            "event_id": rng_uuid(rng),
            "event_type": event_type,
            "order_id": order.order_id,
            "timestamp": now_ms,
            "source": "order-service",
            "version": "1.0",
            "payload": {
                "user_id": order.user.user_id,
                "total_amount": None,
                "currency": order.user.currency,
                "status": None,
                "items": None,
                "shipping_address": None,
                "payment_method": None,
                "payment_id": None,
                "metadata": None,
                **payload,
            },
        }
        return order.order_id, value

    def _create(self, rng: random.Random) -> tuple[str, _Order, dict[str, Any]]:
        user = self.population.pick_shopper(rng)
        order_id = f"ORD-{rng.getrandbits(40):010X}"
        currency = user.currency
        items = []
        for _ in range(rng.choices((1, 2, 3, 4), weights=(55, 25, 12, 8))[0]):
            sku, usd = rng.choices(_SKUS, weights=_SKU_WEIGHTS)[0]
            quantity = rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
            items.append({"sku": sku, "quantity": quantity, "unit_price": _money(usd, currency)})
        total = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
        order = _Order(order_id, user, total, next_event="PAYMENT")
        self._open[order_id] = order
        self._open_ids.append(order_id)
        payload = {
            "total_amount": total,
            "status": "PENDING",
            "items": items,
            "shipping_address": self._address(rng, user),
            "metadata": {"channel": rng.choice(_CHANNELS)},
        }
        return "ORDER_CREATED", order, payload

    def _address(self, rng: random.Random, user: User) -> dict[str, str]:
        return {
            "street": f"{rng.randint(1, 2400)} {rng.choice(_STREETS)}",
            "city": user.city,
            "postal_code": f"{rng.randint(1000, 99999):05d}",
        }

    def _advance(self, rng: random.Random, order: _Order) -> tuple[str, dict[str, Any]]:
        """Emit the order's next lifecycle event and decide the one after it."""
        step = order.next_event
        if step == "PAYMENT":
            order.payment_attempts += 1
            payment = {
                "total_amount": order.total,
                "payment_method": rng.choices(PAYMENT_METHODS, weights=_PAYMENT_WEIGHTS)[0],
                "payment_id": f"pay_{rng.getrandbits(48):012x}",
            }
            if rng.random() < 0.92:
                order.paid = True
                order.next_event = "ORDER_CONFIRMED"
                return "PAYMENT_AUTHORIZED", {**payment, "status": "PAID"}
            retry = order.payment_attempts < 3 and rng.random() < 0.5
            order.next_event = "PAYMENT" if retry else "ORDER_CANCELLED"
            reason = {"failure_reason": rng.choice(_FAILURE_REASONS)}
            return "PAYMENT_FAILED", {**payment, "status": "PAYMENT_FAILED", "metadata": reason}
        if step == "ORDER_CONFIRMED":
            order.next_event = rng.choices(
                ("ORDER_SHIPPED", "ORDER_UPDATED", "ORDER_CANCELLED"), weights=(88, 8, 4)
            )[0]
            return "ORDER_CONFIRMED", {"status": "CONFIRMED"}
        if step == "ORDER_UPDATED":
            order.next_event = "ORDER_SHIPPED"
            address = self._address(rng, order.user)
            return "ORDER_UPDATED", {"status": "CONFIRMED", "shipping_address": address}
        if step == "ORDER_SHIPPED":
            order.next_event = "ORDER_DELIVERED"
            metadata = {"carrier": rng.choice(_CARRIERS)}
            return "ORDER_SHIPPED", {"status": "SHIPPED", "metadata": metadata}
        if step == "ORDER_DELIVERED":
            order.next_event = "ORDER_REFUNDED" if rng.random() < 0.04 else "DONE"
            if order.next_event == "DONE":
                self._close(order)
            return "ORDER_DELIVERED", {"status": "DELIVERED"}
        if step == "ORDER_CANCELLED":
            # A paid order is refunded after cancelling; an unpaid one simply ends.
            order.next_event = "ORDER_REFUNDED" if order.paid else "DONE"
            if order.next_event == "DONE":
                self._close(order)
            return "ORDER_CANCELLED", {"status": "CANCELLED"}
        # ORDER_REFUNDED: always the last event.
        self._close(order)
        return "ORDER_REFUNDED", {"status": "REFUNDED", "total_amount": order.total}

    def _close(self, order: _Order) -> None:
        del self._open[order.order_id]
        index = self._open_ids.index(order.order_id)
        # Swap-remove keeps removal O(1) after the lookup and the order of picks deterministic.
        self._open_ids[index] = self._open_ids[-1]
        self._open_ids.pop()


def _created(items: list[dict[str, Any]], total: float) -> Any:
    """An ORDER_CREATED with these items and total (the rest of the event as it was)."""
    return changed({"event_type": "ORDER_CREATED", "payload.status": "PENDING",
                    "payload.items": items, "payload.total_amount": total})  # fmt: skip


def _in_seconds(event: dict[str, Any]) -> dict[str, Any]:
    return changed({"timestamp": event["timestamp"] // 1000})(event)


#: rule of ``app/validation/orders.py`` -> how to make a valid event break exactly that rule
#: (the first it breaks in check order)
RULE_BREAKERS: dict[str, Any] = {
    "required_fields": changed({"order_id": ""}),
    "event_id_format": changed({"event_id": "evt-0001"}),
    "timestamp_range": _in_seconds,
    "currency_format": changed({"payload.currency": "usd"}),
    "order_created_fields": _created(items=[], total=20.0),
    "payment_fields": changed({"event_type": "PAYMENT_AUTHORIZED", "payload.status": "PAID",
                               "payload.payment_method": "PAYPAL", "payload.payment_id": None,
                               "payload.items": None}),
    "quantity_range": _created([{"sku": "SKU-10001", "quantity": 0, "unit_price": 10.0}], 0.0),
    "unit_price_range": _created([{"sku": "SKU-10001", "quantity": 1, "unit_price": -10.0}],
                                 0.0),
    "total_amount_range": changed({"event_type": "ORDER_REFUNDED", "payload.status": "REFUNDED",
                                   "payload.items": None, "payload.total_amount": -5.0}),
    "total_matches_items": _created([{"sku": "SKU-10001", "quantity": 2, "unit_price": 10.0}],
                                    25.0),
}  # fmt: skip

#: An event type a newer producer knows and this reader schema does not (seed 004: log, count,
#: skip): the simulator writes it with an evolved writer schema that has the extra symbol.
NEWER_EVENT_TYPE = "ORDER_RETURNED"


def factories(population: Population) -> list[EventFactory]:
    """The order factories the simulator runs."""
    return [OrderFactory(population)]
