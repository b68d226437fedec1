"""LENS recommendation system (seed 003). Model metrics, requests and responses feed
``agg.model.metrics`` (``models/lens.py``); responses, interactions and A/B events (with
orders, ``agents/orders.py``) feed the per-user join (``models/users.py``), whose outputs are
``ab.conversions`` and the ``ctr`` metric (:data:`JOIN_OUTPUTS`)."""

from __future__ import annotations

from collections.abc import Callable

from app.engine.domain import Domain
from app.settings import Settings
from app.validation.lens import (
    validate_ab_event,
    validate_interaction,
    validate_model_metric,
    validate_request,
    validate_response,
)
from models.combine import Aggregate
from models.experiments import AB_CONVERSIONS
from models.lens import MODEL_CTR, MODEL_ERRORS, MODEL_LATENCY, MODEL_REPORTED, MODEL_REQUESTS
from models.users import ab_join_event, interaction_join_event, response_join_event

MODEL_METRICS = Domain("model-metrics", validate_model_metric, (MODEL_REPORTED,))
REQUESTS = Domain("recommendation-requests", validate_request, (MODEL_REQUESTS,))
RESPONSES = Domain(
    "recommendation-responses", validate_response, (MODEL_LATENCY, MODEL_ERRORS),
    join=response_join_event,
)  # fmt: skip
INTERACTIONS = Domain("user-interactions", validate_interaction, join=interaction_join_event)
AB_TESTS = Domain("ab-test-events", validate_ab_event, join=ab_join_event)

#: the join's delta kinds -> (aggregate, its grace). A response's clicks may come
#: CTR_ATTRIBUTION_SECONDS after it, and a response arriving late by up to a window may move a
#: click's credit from an earlier one: its windows close that much later.
JOIN_OUTPUTS: dict[str, tuple[Aggregate, Callable[[Settings], int]]] = {
    "ab": (AB_CONVERSIONS, lambda s: s.grace_ms),
    "ctr": (MODEL_CTR, lambda s: s.grace_ms + s.ctr_attribution_ms + s.window_ms),
}
