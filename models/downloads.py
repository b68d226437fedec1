"""Downloads aggregate of the contract (section 3): ``agg.downloads.errors`` per region.

Declarations only (``models/combine.py``). Events are seed 000's ``ContentDownloadEvent``
(v1 or v2, read through one reader schema), validated by ``app/validation/downloads.py``.
Prices and speeds are Avro ``float``: summed as decoded, exactly (:class:`FloatSum`).
"""

from __future__ import annotations

from models.combine import Aggregate, Count, CountBy, FloatSum, Sum, field_is, ratio

__all__ = ["DOWNLOADS_AGGREGATES", "DOWNLOADS_ERRORS"]

_SUCCESS = field_is("download.status", "success")
_FAILED = field_is("download.status", "failed")
_CANCELLED = field_is("download.status", "cancelled")

DOWNLOADS_ERRORS = Aggregate(
    table="agg.downloads.errors",
    event_type="downloads.errors",
    description="Download attempts and outcomes per region: error rate and codes, speed, "
    "megabytes and revenue of successes.",
    key={"region": "user_context.region"},
    fields={
        "succeeded": Count(where=_SUCCESS),
        "failed": Count(where=_FAILED),
        "cancelled": Count(where=_CANCELLED),
        # Failed downloads per code; a cancelled download's optional code is not an error.
        "error_codes": CountBy("download.error_code", where=_FAILED),
        "speed_sum": FloatSum("download.speed_mbps", where=_SUCCESS),
        "megabytes": Sum("content.size_mb", where=_SUCCESS),
        "revenue": FloatSum("content.price", where=_SUCCESS),
    },
    metrics=lambda v: {
        "attempts": v["events"],
        "succeeded": v["succeeded"],
        "failed": v["failed"],
        "cancelled": v["cancelled"],
        "error_rate": ratio(v["failed"], v["events"]),
        "error_codes": v["error_codes"],
        "avg_speed_mbps": ratio(v["speed_sum"], v["succeeded"]),
        "megabytes": float(v["megabytes"]),
        "revenue": v["revenue"],
    },
)

DOWNLOADS_AGGREGATES: tuple[Aggregate, ...] = (DOWNLOADS_ERRORS,)
