"""agg.downloads.errors and agg.orders.summary (contract section 3), against hand-worked numbers.

Every expected number is summed by hand from the literal events below (the working is in the
comments); the records are also checked against their Avro schemas.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from fastavro.validation import validate as avro_validate

from app.catalog import SCHEMA_DIR
from app.engine.codec import parse_raw
from app.engine.publish import derived_record
from models.downloads import DOWNLOADS_ERRORS
from models.orders import ORDERS_SUMMARY

W0 = 1_754_922_600_000


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def download(region: str, status: str, code: str | None, speed: float, size: int,
             price: float) -> dict[str, Any]:  # fmt: skip
    return {
        "content": {"size_mb": size, "price": f32(price)},
        "download": {"status": status, "error_code": code, "speed_mbps": f32(speed)},
        "user_context": {"region": region},
    }


DOWNLOADS = [
    download("US", "success", None, 40.0, 1000, 9.99),
    download("US", "success", None, 20.0, 500, 0.0),
    download("US", "failed", "cdn_timeout", 3.0, 800, 19.99),
    download("US", "failed", "cdn_timeout", 1.0, 800, 19.99),
    download("US", "failed", "storage_full", 2.0, 100, 4.99),
    download("US", "cancelled", "user_cancelled", 5.0, 4000, 14.99),  # code: not an error
    download("US", "cancelled", None, 7.0, 300, 1.99),
    download("EU", "cancelled", None, 9.0, 300, 1.99),
]
# US: attempts 7; succeeded 2, failed 3, cancelled 2; error_rate 3/7
#     error_codes: cdn_timeout 2, storage_full 1 (the cancelled user_cancelled is not counted)
#     avg speed of successes (40 + 20) / 2 = 30.0; megabytes 1000 + 500 = 1500.0
#     revenue f32(9.99) + 0.0 (failed and cancelled prices are not revenue)
# EU: attempts 1, cancelled 1, no success: error_rate 0.0, avg speed null, megabytes 0, revenue 0


def test_downloads_errors_hand_computed() -> None:
    folded = DOWNLOADS_ERRORS.fold(DOWNLOADS)
    assert DOWNLOADS_ERRORS.extract(folded[("US",)]) == {
        "attempts": 7, "succeeded": 2, "failed": 3, "cancelled": 2, "error_rate": 3 / 7,
        "error_codes": {"cdn_timeout": 2, "storage_full": 1}, "avg_speed_mbps": 30.0,
        "megabytes": 1500.0, "revenue": f32(9.99),
    }  # fmt: skip
    assert DOWNLOADS_ERRORS.extract(folded[("EU",)]) == {
        "attempts": 1, "succeeded": 0, "failed": 0, "cancelled": 1, "error_rate": 0.0,
        "error_codes": {}, "avg_speed_mbps": None, "megabytes": 0.0, "revenue": 0.0,
    }  # fmt: skip


def order(currency: str, event_type: str, total: float | None) -> dict[str, Any]:
    return {"event_type": event_type, "payload": {"currency": currency, "total_amount": total}}


ORDERS = [
    order("USD", "ORDER_CREATED", 100.0),
    order("USD", "ORDER_CREATED", 50.5),
    order("USD", "PAYMENT_AUTHORIZED", 100.0),  # totals of other events are not revenue
    order("USD", "PAYMENT_FAILED", 50.5),
    order("USD", "PAYMENT_FAILED", 50.5),
    order("USD", "PAYMENT_AUTHORIZED", 50.5),
    order("USD", "ORDER_REFUNDED", 100.0),
    order("USD", "ORDER_SHIPPED", None),
    order("JPY", "ORDER_SHIPPED", None),
]
# USD: by type CREATED 2, AUTHORIZED 2, FAILED 2, REFUNDED 1, SHIPPED 1
#      failure rate 2 / (2 + 2) = 0.5; gross 100 + 50.5 = 150.5; average 150.5 / 2 = 75.25
# JPY: SHIPPED 1; no payments (rate null), no orders (gross 0.0, average null)


def test_orders_summary_hand_computed() -> None:
    folded = ORDERS_SUMMARY.fold(ORDERS)
    assert ORDERS_SUMMARY.extract(folded[("USD",)]) == {
        "events_by_type": {"ORDER_CREATED": 2, "ORDER_REFUNDED": 1, "ORDER_SHIPPED": 1,
                           "PAYMENT_AUTHORIZED": 2, "PAYMENT_FAILED": 2},
        "orders_created": 2, "payments_authorized": 2, "payments_failed": 2,
        "payment_failure_rate": 0.5, "gross_revenue": 150.5, "avg_order_value": 75.25,
    }  # fmt: skip
    assert ORDERS_SUMMARY.extract(folded[("JPY",)]) == {
        "events_by_type": {"ORDER_SHIPPED": 1}, "orders_created": 0, "payments_authorized": 0,
        "payments_failed": 0, "payment_failure_rate": None, "gross_revenue": 0.0,
        "avg_order_value": None,
    }  # fmt: skip


def test_records_fit_their_derived_schemas() -> None:
    for aggregate, events, schema_file in (
        (DOWNLOADS_ERRORS, DOWNLOADS, "derived/DownloadsErrors.avsc"),
        (ORDERS_SUMMARY, ORDERS, "derived/OrdersSummary.avsc"),
    ):
        raw = json.loads((SCHEMA_DIR / schema_file).read_text())
        parsed = parse_raw(raw)
        for key_values, acc in aggregate.fold(events).items():
            record = derived_record(aggregate, key_values[0], key_values, W0, 60_000, acc, W0)
            assert list(record) == [f["name"] for f in raw["fields"]]
            assert avro_validate(record, parsed, raise_errors=True)
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, parsed, record)
            buffer.seek(0)
            assert fastavro.schemaless_reader(buffer, parsed, None) == record
