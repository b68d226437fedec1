"""E-commerce orders (seed 001): ``orders.raw`` into ``agg.orders.summary``; an
``ORDER_CREATED`` order is also an A/B conversion of its user (the per-user join)."""

from __future__ import annotations

from app.engine.domain import Domain
from app.validation.orders import validate
from models.orders import ORDERS_AGGREGATES
from models.users import order_join_event

DOMAIN = Domain("orders.raw", validate, ORDERS_AGGREGATES, join=order_join_event)
