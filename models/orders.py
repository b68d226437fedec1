"""Orders aggregate of the contract (section 3): ``agg.orders.summary`` per currency.

Declarations only (``models/combine.py``). Events are seed 001's ``OrderEvent``, validated by
``app/validation/orders.py``; the counts per event type derive from one label count.
"""

from __future__ import annotations

from models.combine import Aggregate, CountBy, FloatSum, field_is, ratio

__all__ = ["ORDERS_AGGREGATES", "ORDERS_SUMMARY"]


def _metrics(v: dict) -> dict:
    by_type: dict[str, int] = v["events_by_type"]
    created = by_type.get("ORDER_CREATED", 0)
    authorized = by_type.get("PAYMENT_AUTHORIZED", 0)
    failed = by_type.get("PAYMENT_FAILED", 0)
    return {
        "events_by_type": by_type,
        "orders_created": created,
        "payments_authorized": authorized,
        "payments_failed": failed,
        "payment_failure_rate": ratio(failed, authorized + failed),
        "gross_revenue": v["gross_revenue"],
        "avg_order_value": ratio(v["gross_revenue"], created),
    }


ORDERS_SUMMARY = Aggregate(
    table="agg.orders.summary",
    event_type="orders.summary",
    description="Order events per type, payments and their failure rate, gross revenue and "
    "average order value per currency.",
    key={"currency": "payload.currency"},
    fields={
        "events_by_type": CountBy("event_type"),
        "gross_revenue": FloatSum(
            "payload.total_amount", where=field_is("event_type", "ORDER_CREATED")
        ),
    },
    metrics=_metrics,
)

ORDERS_AGGREGATES: tuple[Aggregate, ...] = (ORDERS_SUMMARY,)
