"""The source domains this worker consumes, one declaration per module.

Each module declares a :class:`app.engine.domain.Domain` (topic, data-quality rules,
aggregates); ``app/main.py`` wires them into the Faust app. Adding a domain is a module here,
its rules in ``app/validation/`` and its aggregates in ``models/``.
"""

from __future__ import annotations

from agents import downloads, lens, orders, telemetry
from app.engine.domain import Domain

__all__ = ["DOMAINS", "JOIN_OUTPUTS"]

DOMAINS: tuple[Domain, ...] = (
    telemetry.DOMAIN,
    downloads.DOMAIN,
    orders.DOMAIN,
    lens.MODEL_METRICS,
    lens.REQUESTS,
    lens.RESPONSES,
    lens.INTERACTIONS,
    lens.AB_TESTS,
)
#: what the per-user join of the domains with a ``join`` feeds
JOIN_OUTPUTS = lens.JOIN_OUTPUTS
