"""The table views' pure functions against hand-computed rows (no Faust, no broker)."""

from __future__ import annotations

import pytest

from app.engine.windowing import encode_key
from app.web.views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    QueryError,
    key_detail,
    key_rows,
    metric_fields,
    parse_limit,
    parse_sort,
    sort_rows,
    sortable_fields,
    table_info,
    table_rows,
)
from models.combine import Aggregate, Count, CountBy
from models.telemetry import BUFFERING, COMPLETION

W = 10_000  # window size, ms
T0 = 1_754_922_600_000

#: An aggregate with a map-valued metric (like agg.downloads.errors' error_codes).
MAPS = Aggregate(
    table="agg.test.maps",
    event_type="test.maps",
    description="test",
    key={"region": "region"},
    fields={"failed": Count(where=lambda e: e["failed"]), "error_codes": CountBy("code")},
    metrics=lambda v: {"attempts": v["events"], "error_codes": v["error_codes"],
                       "error_rate": v["failed"] / v["events"] if v["events"] else None},
)  # fmt: skip


def state(open_=None, closed=None):
    return {"open": {str(k): v for k, v in (open_ or {}).items()},
            "closed": {str(k): v for k, v in (closed or {}).items()}}  # fmt: skip


# Buffering accumulators: [events, buffering_events, buffering_seconds, watch_seconds]
US = encode_key(["United States", "Comcast"])
DE = encode_key(["Germany", "Telekom"])
ODD = encode_key(["Côte d'Ivoire", "A|B%C"])  # separator and escape inside a value
TABLE = {
    US: state(open_={T0 + 2 * W: [3, 1, 4, 400]}, closed={T0: [10, 2, 20, 1000],
                                                          T0 + W: [5, 0, 0, 0]}),
    DE: state(open_={T0 + 2 * W: [7, 3, 9, 300]}, closed={T0 + W: [4, 4, 8, 200]}),
    ODD: state(closed={T0: [1, 1, 1, 10]}),
    "empty": None,
}  # fmt: skip


def test_metric_and_sortable_fields() -> None:
    assert metric_fields(BUFFERING) == (
        "events", "buffering_events", "buffering_seconds", "watch_seconds", "buffering_ratio",
    )  # fmt: skip
    assert sortable_fields(BUFFERING) == metric_fields(BUFFERING)
    assert sortable_fields(MAPS) == ("attempts", "error_rate")


def test_table_info() -> None:
    assert table_info(BUFFERING, "acme-telemetry", 10_000, 2_000) == {
        "name": "agg.telemetry.buffering",
        "description": BUFFERING.description,
        "event_type": "telemetry.buffering",
        "source_topic": "acme-telemetry",
        "window_seconds": 10,
        "grace_seconds": 2,
        "key_fields": ["country", "isp"],
        "metric_fields": list(metric_fields(BUFFERING)),
        "sortable_fields": list(metric_fields(BUFFERING)),
    }
    assert table_info(BUFFERING, "acme-telemetry", 1_500, 0)["window_seconds"] == 1.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, DEFAULT_LIMIT), ("", DEFAULT_LIMIT), ("1", 1), ("25", 25), (" 7 ", 7),
     (str(MAX_LIMIT), MAX_LIMIT)],
)  # fmt: skip
def test_parse_limit(raw, expected) -> None:
    assert parse_limit(raw) == expected


@pytest.mark.parametrize(
    "raw", ["0", "-1", "abc", "1.5", "1e3", str(MAX_LIMIT + 1), "٣", "+5", "10 0"]
)
def test_parse_limit_rejects(raw) -> None:
    with pytest.raises(QueryError) as caught:
        parse_limit(raw)
    assert caught.value.parameter == "limit"
    assert caught.value.as_json()["parameter"] == "limit"
    assert "limit" in caught.value.as_json()["error"]


def test_parse_sort() -> None:
    assert parse_sort(None, BUFFERING) is None
    assert parse_sort("", BUFFERING) is None
    assert parse_sort("buffering_ratio", BUFFERING) == "buffering_ratio"
    for bad in ("country", "window_start", "nope", "EVENTS"):
        with pytest.raises(QueryError) as caught:
            parse_sort(bad, BUFFERING)
        assert caught.value.parameter == "sort"
        assert "buffering_ratio" in caught.value.message  # the message lists what is allowed
    with pytest.raises(QueryError):
        parse_sort("error_codes", MAPS)  # a map cannot order rows


def test_key_rows_hand_computed() -> None:
    rows = key_rows(BUFFERING, US, TABLE[US], W)
    assert rows == [
        {"key": US, "country": "United States", "isp": "Comcast",
         "window_start": T0 + 2 * W, "window_end": T0 + 3 * W, "closed": False,
         "events": 3, "buffering_events": 1, "buffering_seconds": 4, "watch_seconds": 400,
         "buffering_ratio": 0.01},
        {"key": US, "country": "United States", "isp": "Comcast",
         "window_start": T0 + W, "window_end": T0 + 2 * W, "closed": True,
         "events": 5, "buffering_events": 0, "buffering_seconds": 0, "watch_seconds": 0,
         "buffering_ratio": None},
        {"key": US, "country": "United States", "isp": "Comcast",
         "window_start": T0, "window_end": T0 + W, "closed": True,
         "events": 10, "buffering_events": 2, "buffering_seconds": 20, "watch_seconds": 1000,
         "buffering_ratio": 0.02},
    ]  # fmt: skip


def test_key_rows_decodes_escaped_key_values() -> None:
    (row,) = key_rows(BUFFERING, ODD, TABLE[ODD], W)
    assert (row["country"], row["isp"]) == ("Côte d'Ivoire", "A|B%C")
    assert row["key"] == ODD


def test_key_rows_empty_and_duplicate_window() -> None:
    assert key_rows(BUFFERING, US, None, W) == []
    assert key_rows(BUFFERING, US, {"open": {}, "closed": {}}, W) == []
    both = state(open_={T0: [1, 0, 0, 0]}, closed={T0: [2, 0, 0, 0]})
    (row,) = key_rows(BUFFERING, US, both, W)
    assert row["closed"] is True and row["events"] == 2


def test_table_rows_default_order() -> None:
    rows, total = table_rows(BUFFERING, TABLE.items(), W)
    assert total == 6
    # newest window first; within a window open before closed, then by key
    assert [(r["window_start"] - T0, r["closed"], r["key"]) for r in rows] == [
        (2 * W, False, DE),
        (2 * W, False, US),
        (W, True, DE),
        (W, True, US),
        (0, True, ODD),
        (0, True, US),
    ]


def test_table_rows_sort_desc_nulls_last_and_limit() -> None:
    rows, total = table_rows(BUFFERING, TABLE.items(), W, sort="buffering_ratio")
    # ratios: DE@2W 0.03, US@2W 0.01, DE@W 0.04, US@W None, ODD@0 0.1, US@0 0.02
    assert [(r["key"], r["window_start"] - T0) for r in rows] == [
        (ODD, 0), (DE, W), (DE, 2 * W), (US, 0), (US, 2 * W), (US, W),
    ]  # fmt: skip
    assert rows[-1]["buffering_ratio"] is None
    assert total == 6
    top, total = table_rows(BUFFERING, TABLE.items(), W, sort="events", limit=2)
    assert [(r["key"], r["events"]) for r in top] == [(US, 10), (DE, 7)]
    assert total == 6


def test_sort_ties_break_by_default_order() -> None:
    rows = [
        {"key": "b", "window_start": 1, "closed": True, "x": 5},
        {"key": "a", "window_start": 1, "closed": True, "x": 5},
        {"key": "c", "window_start": 2, "closed": True, "x": 5},
        {"key": "d", "window_start": 3, "closed": False, "x": None},
        {"key": "e", "window_start": 3, "closed": False, "x": float("nan")},
        {"key": "f", "window_start": 0, "closed": True, "x": -1.5},
    ]
    assert [r["key"] for r in sort_rows(rows, "x")] == ["c", "a", "b", "f", "d", "e"]


def test_key_detail() -> None:
    completion = COMPLETION
    # [events, starts, completes, ended, completion_sum (exact parts), watch_seconds]
    value = state(open_={T0: [6, 4, 1, 3, [210.0], 900]})
    detail = key_detail(completion, "TITLE_1", value, W)
    assert detail == {
        "table": "agg.telemetry.completion",
        "key": "TITLE_1",
        "key_values": {"title_id": "TITLE_1"},
        "windows": [
            {"key": "TITLE_1", "title_id": "TITLE_1", "window_start": T0, "window_end": T0 + W,
             "closed": False, "starts": 4, "completes": 1, "completion_rate": 0.25,
             "avg_completion_percentage": 70.0, "watch_seconds": 900},
        ],
    }  # fmt: skip
    assert key_detail(completion, "TITLE_1", None, W) is None
    assert key_detail(completion, "TITLE_1", state(), W) is None
