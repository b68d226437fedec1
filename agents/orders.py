"""E-commerce orders (seed 001): ``orders.raw`` into ``agg.orders.summary``."""

from __future__ import annotations

from app.engine.domain import Domain
from app.validation.orders import validate
from models.orders import ORDERS_AGGREGATES

DOMAIN = Domain("orders.raw", validate, ORDERS_AGGREGATES)
