"""LENS recommendation system (seed 003): model metrics, requests and responses into
``agg.model.metrics`` (``models/lens.py``). Interactions and A/B events feed the per-user join
(``agents/join.py``)."""

from __future__ import annotations

from app.engine.domain import Domain
from app.validation.lens import validate_model_metric, validate_request, validate_response
from models.lens import MODEL_ERRORS, MODEL_LATENCY, MODEL_REPORTED, MODEL_REQUESTS

MODEL_METRICS = Domain("model-metrics", validate_model_metric, (MODEL_REPORTED,))
REQUESTS = Domain("recommendation-requests", validate_request, (MODEL_REQUESTS,))
RESPONSES = Domain("recommendation-responses", validate_response, (MODEL_LATENCY, MODEL_ERRORS))
