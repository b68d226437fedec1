"""``agg.model.metrics`` (contract section 3): one aggregate per metric source, one topic.

Every record is (model_name, model_version, metric_type) with ``count``, ``mean``, ``min``,
``max`` and, for latency, ``p50``/``p95``/``p99``. Each metric source is its own table (its own
source topic, or its own selection of one), all publishing to ``agg.model.metrics``:

- reported (``model-metrics``): count, mean, min, max of ``value`` per reported metric type;
- ``requests`` (``recommendation-requests``): count of requests; mean, min, max of
  ``numRecommendations``; a request without ``modelVersion`` counts under ``unknown``;
- ``latency_ms`` (``recommendation-responses``): count, exact mean, min and max of
  ``processingTime``, and its percentiles from a DDSketch (relative error 1%) that is the
  accumulator itself, so it is in the table and its changelog;
- ``error_rate`` (``recommendation-responses``): count of responses, mean the share with
  status ``error`` (``partial`` is not an error); min and max null;
- ``ctr`` (the recommendation join, ``models/join.py``).

Declarations only (``models/combine.py``); rules in ``app/validation/lens.py``.
"""

from __future__ import annotations

from typing import Any

from models.combine import Aggregate, Count, FloatSum, Max, Min, Sketch, Sum, field_is, ratio

__all__ = [
    "MODEL_CTR",
    "MODEL_ERRORS",
    "MODEL_LATENCY",
    "MODEL_METRICS_TOPIC",
    "MODEL_REPORTED",
    "MODEL_REQUESTS",
    "UNKNOWN_VERSION",
    "model_record",
]

MODEL_METRICS_TOPIC = "agg.model.metrics"
_EVENT_TYPE = "model.metrics"
#: the model version a request without one counts under (contract section 3)
UNKNOWN_VERSION = "unknown"
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def model_record(
    count: int,
    mean: float | None,
    low: float | None = None,
    high: float | None = None,
    sketch: Any = None,
) -> dict[str, Any]:
    """The metric fields of one ``agg.model.metrics`` record (schema order); percentiles from
    ``sketch`` (a ``DDSketch``) when the metric type has them."""
    record: dict[str, Any] = {"count": count, "mean": mean, "min": low, "max": high}
    for name, q in QUANTILES.items():
        record[name] = sketch.get_quantile_value(q) if sketch is not None and count else None
    return record


def _constant(value: str) -> Any:
    return lambda event: value


MODEL_REPORTED = Aggregate(
    table="agg.model.metrics.reported",
    topic=MODEL_METRICS_TOPIC,
    event_type=_EVENT_TYPE,
    description="Metrics the models report (model-metrics): count, mean, min and max of the "
    "values per model, version and metric type.",
    key={"model_name": "modelName", "model_version": "modelVersion", "metric_type": "metricType"},
    fields={"total": FloatSum("value"), "low": Min("value"), "high": Max("value")},
    metrics=lambda v: model_record(
        v["events"], ratio(v["total"], v["events"]), v["low"], v["high"]
    ),
)

MODEL_REQUESTS = Aggregate(
    table="agg.model.metrics.requests",
    topic=MODEL_METRICS_TOPIC,
    event_type=_EVENT_TYPE,
    description="Recommendation requests per model and version (metric type requests): count, "
    "and mean, min and max of the recommendations asked for.",
    key={
        "model_name": "modelName",
        "model_version": lambda e: e.get("modelVersion") or UNKNOWN_VERSION,
        "metric_type": _constant("requests"),
    },
    fields={
        "asked": Sum("numRecommendations"),
        "low": Min("numRecommendations"),
        "high": Max("numRecommendations"),
    },
    metrics=lambda v: model_record(
        v["events"], ratio(v["asked"], v["events"]), v["low"], v["high"]
    ),
)

MODEL_LATENCY = Aggregate(
    table="agg.model.metrics.latency",
    topic=MODEL_METRICS_TOPIC,
    event_type=_EVENT_TYPE,
    description="Recommendation response latency per model and version (metric type "
    "latency_ms): count, mean, min, max and p50/p95/p99 (DDSketch, 1% relative error).",
    key={
        "model_name": "modelName",
        "model_version": "modelVersion",
        "metric_type": _constant("latency_ms"),
    },
    fields={
        "total": FloatSum("processingTime"),
        "low": Min("processingTime"),
        "high": Max("processingTime"),
        "sketch": Sketch("processingTime", relative_accuracy=0.01),
    },
    metrics=lambda v: model_record(
        v["events"], ratio(v["total"], v["events"]), v["low"], v["high"], v["sketch"]
    ),
)

MODEL_ERRORS = Aggregate(
    table="agg.model.metrics.errors",
    topic=MODEL_METRICS_TOPIC,
    event_type=_EVENT_TYPE,
    description="Recommendation responses per model and version (metric type error_rate): "
    "count, and the share with status error.",
    key={
        "model_name": "modelName",
        "model_version": "modelVersion",
        "metric_type": _constant("error_rate"),
    },
    fields={"errors": Count(where=field_is("status", "error"))},
    metrics=lambda v: model_record(v["events"], ratio(v["errors"], v["events"])),
)

MODEL_CTR = Aggregate(
    table="agg.model.metrics.ctr",
    topic=MODEL_METRICS_TOPIC,
    event_type=_EVENT_TYPE,
    description="Click-through of recommendations per model and version (metric type ctr): "
    "items shown, and hits (clicks attributed to the response) per item shown.",
    key={
        "model_name": "modelName",
        "model_version": "modelVersion",
        "metric_type": _constant("ctr"),
    },
    fields={"shown": Sum("shown"), "hits": Sum("hits")},
    metrics=lambda v: model_record(v["shown"], ratio(v["hits"], v["shown"])),
)
