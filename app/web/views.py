"""Pure functions behind the table web views: table state in, JSON-ready rows out.

A windowed table's value per key is ``{"open": {"<window_start_ms>": acc}, "closed": {...}}``
(``app/engine/windowing.py``); its key is the group-key values joined by ``encode_key``. A row
is one window of one key::

    {"key": "United States|Comcast", "country": "United States", "isp": "Comcast",
     "window_start": 1754922600000, "window_end": 1754922610000, "closed": false,
     "events": 12, ..., "buffering_ratio": 0.04}

Rows come newest window first (then open before closed, then by key); ``sort=<metric>`` orders
by that metric, largest first, nulls last, the same order breaking ties. Nothing here touches
Faust: ``app/web/routes.py`` feeds these functions the table's items and turns :class:`QueryError`
into a 400 answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from app.engine.windowing import decode_key
from models.combine import Accumulator, Aggregate

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "QueryError",
    "key_detail",
    "key_rows",
    "metric_fields",
    "parse_limit",
    "parse_sort",
    "seconds",
    "sort_rows",
    "sortable_fields",
    "table_info",
    "table_rows",
    "window_row",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

Row = dict[str, Any]


class QueryError(ValueError):
    """A bad query parameter (the web view answers 400 with this message)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message

    def as_json(self) -> dict[str, str]:
        return {"error": self.message, "parameter": self.parameter}


def metric_fields(aggregate: Aggregate) -> tuple[str, ...]:
    """The record's metric fields, in record order (those ``aggregate.view`` returns)."""
    return tuple(aggregate.view(aggregate.create()))


def sortable_fields(aggregate: Aggregate) -> tuple[str, ...]:
    """Metric fields that hold a number (or null): maps and lists cannot order rows."""
    sample = aggregate.view(aggregate.create())
    return tuple(name for name, value in sample.items() if value is None or _is_number(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds(ms: int) -> int | float:
    """Milliseconds as whole seconds when they are whole (10000 -> 10, 1500 -> 1.5)."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def table_info(
    aggregate: Aggregate, source_topic: str, window_ms: int, grace_ms: int
) -> dict[str, Any]:
    """One entry of ``GET /tables/``."""
    return {
        "name": aggregate.table,
        "description": aggregate.description,
        "event_type": aggregate.event_type,
        "source_topic": source_topic,
        "window_seconds": seconds(window_ms),
        "grace_seconds": seconds(grace_ms),
        "key_fields": list(aggregate.key_fields),
        "metric_fields": list(metric_fields(aggregate)),
        "sortable_fields": list(sortable_fields(aggregate)),
    }


def parse_limit(raw: str | None) -> int:
    """``?limit=``: a positive integer up to :data:`MAX_LIMIT`; absent or empty: the default."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        raise QueryError("limit", f"limit must be a positive integer, got {raw!r}")
    value = int(text)
    if value < 1:
        raise QueryError("limit", f"limit must be at least 1, got {value}")
    if value > MAX_LIMIT:
        raise QueryError("limit", f"limit must be at most {MAX_LIMIT}, got {value}")
    return value


def parse_sort(raw: str | None, aggregate: Aggregate) -> str | None:
    """``?sort=``: one of the table's numeric metric fields; absent or empty: default order."""
    if raw is None or raw == "":
        return None
    allowed = sortable_fields(aggregate)
    if raw not in allowed:
        raise QueryError(
            "sort",
            f"cannot sort {aggregate.table} by {raw!r}; sortable fields: {', '.join(allowed)}",
        )
    return raw


def window_row(
    aggregate: Aggregate,
    key: str,
    key_values: tuple[str, ...],
    window_start: int,
    window_ms: int,
    acc: Accumulator,
    closed: bool,
) -> Row:
    """One window of one key, with the record's metric fields."""
    row: Row = {"key": key}
    row.update(zip(aggregate.key_fields, key_values, strict=False))
    row["window_start"] = window_start
    row["window_end"] = window_start + window_ms
    row["closed"] = closed
    row.update(aggregate.view(acc))
    return row


def key_rows(
    aggregate: Aggregate, key: str, state: Mapping[str, Any] | None, window_ms: int
) -> list[Row]:
    """Every window the table holds for ``key`` (open and closed, newest first).

    A window listed both open and closed (it should not happen) is reported once, closed.
    """
    if not state:
        return []
    key_values = decode_key(key)
    closed = state.get("closed") or {}
    rows = [
        window_row(aggregate, key, key_values, int(start), window_ms, acc, True)
        for start, acc in closed.items()
    ]
    rows.extend(
        window_row(aggregate, key, key_values, int(start), window_ms, acc, False)
        for start, acc in (state.get("open") or {}).items()
        if start not in closed
    )
    rows.sort(key=_default_order)
    return rows


def _default_order(row: Row) -> tuple[Any, ...]:
    return (-row["window_start"], row["closed"], row["key"])


def _metric_order(field: str) -> Callable[[Row], tuple[Any, ...]]:
    def order(row: Row) -> tuple[Any, ...]:
        value = row.get(field)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0, *_default_order(row))
        return (0, -value, *_default_order(row))

    return order


def sort_rows(rows: list[Row], sort: str | None) -> list[Row]:
    """Rows in the views' order (see the module docstring); sorts ``rows`` in place."""
    rows.sort(key=_default_order if sort is None else _metric_order(sort))
    return rows


def table_rows(
    aggregate: Aggregate,
    items: Iterable[tuple[str, Mapping[str, Any] | None]],
    window_ms: int,
    *,
    limit: int = DEFAULT_LIMIT,
    sort: str | None = None,
) -> tuple[list[Row], int]:
    """The first ``limit`` rows over the table's ``(key, state)`` items, and how many there
    are in all."""
    rows: list[Row] = []
    for key, state in items:
        rows.extend(key_rows(aggregate, key, state, window_ms))
    total = len(rows)
    return sort_rows(rows, sort)[:limit], total


def key_detail(
    aggregate: Aggregate, key: str, state: Mapping[str, Any] | None, window_ms: int
) -> dict[str, Any] | None:
    """``GET /tables/{name}/{key}/``: the key's fields and windows; ``None`` when it has none."""
    windows = key_rows(aggregate, key, state, window_ms)
    if not windows:
        return None
    fields = dict(zip(aggregate.key_fields, decode_key(key), strict=False))
    return {"table": aggregate.table, "key": key, "key_values": fields, "windows": windows}
