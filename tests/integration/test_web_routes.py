"""The HTTP routes of contract section 4 on two real workers sharing one consumer group.

Two ``faust worker`` processes (same APP_ID) split the table partitions; telemetry goes in; then
every route answers as the contract says, each worker lists exactly the windows of the
partitions it owns (together: every expected window, once, with the right numbers), and a key
asked of the worker that does not own it is routed to the owner and answered the same.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import quote

import pytest

from app.engine.windowing import key_partition, serialized_key
from tests.integration.web_support import (
    ALL_TABLES,
    BUFFERING,
    TELEMETRY_TABLES,
    WINDOW_MS,
    WORKER_ENV,
    expected_buffering,
    get_json,
    http,
    key_path,
    produce_telemetry,
    telemetry_events,
    wait_for,
    wait_split,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
METRICS = ("events", "buffering_events", "buffering_seconds", "watch_seconds", "buffering_ratio")


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def rows_of(url: str, table: str = BUFFERING, query: str = "?limit=10000") -> dict[str, Any]:
    return get_json(f"{url}/tables/{table}/{query}")


def test_routes_on_two_workers(stack, start_worker_process) -> None:
    t0 = time.monotonic()
    workers = [start_worker_process("sp-web", **WORKER_ENV) for _ in range(2)]
    urls = [w.url for w in workers]
    split = wait_split(urls)
    assert sorted(p for parts in split.values() for p in parts) == list(range(PARTITIONS))
    print(f"two workers ready and split {split} in {time.monotonic() - t0:.1f}s")

    events = telemetry_events(1500, span_ms=25_000, seed=61)
    expected = expected_buffering(events)
    produce_telemetry(stack, events)
    t1 = time.monotonic()

    # Live partial values: the newest window is open for a while (its end + grace has not
    # passed in event time; it closes by idle advance a few seconds after the last event).
    def open_rows() -> list[dict[str, Any]]:
        return [r for url in urls for r in rows_of(url)["rows"] if not r["closed"]]

    live = wait_for("an open window", open_rows, timeout=20, every=0.2)
    assert {r["window_start"] for r in live} <= {k[1] for k in expected}
    print(f"open windows visible {time.monotonic() - t1:.1f}s after producing")

    # Then every window closes; together the workers hold each expected window once.
    def settled() -> dict[str, dict[str, Any]] | None:
        answers = {url: rows_of(url) for url in urls}
        rows = [r for a in answers.values() for r in a["rows"]]
        if len(rows) >= len(expected) and all(r["closed"] for r in rows):
            return answers
        return None

    answers = wait_for("every window to close", settled, timeout=30, every=0.5)
    print(f"all {len(expected)} windows closed {time.monotonic() - t1:.1f}s after producing")
    got: dict[tuple[str, int], dict[str, Any]] = {}
    for url, answer in answers.items():
        assert answer["table"] == BUFFERING and answer["worker"] == url
        assert answer["window_seconds"] == 10 and answer["key_fields"] == ["country", "isp"]
        assert answer["partitions"] == split[url]
        assert answer["total"] == answer["count"] == len(answer["rows"])
        assert answer["sort"] is None and answer["limit"] == 10000
        for row in answer["rows"]:
            assert set(row) == {"key", "country", "isp", "window_start", "window_end", "closed",
                                *METRICS}  # fmt: skip
            assert row["key"] == f"{row['country']}|{row['isp']}"
            assert row["window_end"] - row["window_start"] == WINDOW_MS
            # a worker lists only the keys of the partitions it owns
            assert key_partition(serialized_key(row["key"]), PARTITIONS) in split[url]
            assert (row["key"], row["window_start"]) not in got
            got[(row["key"], row["window_start"])] = row
        starts = [r["window_start"] for r in answer["rows"]]
        assert starts == sorted(starts, reverse=True)  # newest first by default
    assert set(got) == set(expected)
    for k, metrics in expected.items():
        for name, value in metrics.items():
            assert same(got[k][name], value), (k, name, got[k][name], value)

    check_table_list(urls)
    check_sort_and_limit(urls[0])
    check_errors(urls)
    check_routing(urls, split, expected)
    check_other_routes(urls[0])
    print(f"test done in {time.monotonic() - t0:.1f}s")


def check_table_list(urls: list[str]) -> None:
    for url in urls:
        tables = get_json(f"{url}/tables/")
        # Every declared table, in domain order; this test sends telemetry only.
        assert [t["name"] for t in tables] == list(ALL_TABLES)
        buffering = tables[0]
        assert buffering["window_seconds"] == 10 and buffering["grace_seconds"] == 2
        assert buffering["key_fields"] == ["country", "isp"]
        assert buffering["metric_fields"] == list(METRICS)
        assert buffering["description"]
        for table in tables:
            assert {"name", "description", "window_seconds", "key_fields",
                    "metric_fields"} <= set(table)  # fmt: skip
            answer = rows_of(url, table["name"], "?limit=5")
            assert answer["count"] <= 5
            assert (answer["total"] > 0) == (table["name"] in TELEMETRY_TABLES)
            for row in answer["rows"]:
                assert {*table["key_fields"], *table["metric_fields"], "window_start",
                        "window_end", "closed"} <= set(row)  # fmt: skip


def check_sort_and_limit(url: str) -> None:
    everything = rows_of(url)["rows"]
    top = rows_of(url, query="?limit=3&sort=events")
    assert top["sort"] == "events" and top["limit"] == 3 and top["count"] == 3
    assert top["total"] == len(everything)
    best = sorted((r["events"] for r in everything), reverse=True)[:3]
    assert [r["events"] for r in top["rows"]] == best
    by_ratio = rows_of(url, query="?sort=buffering_ratio&limit=10000")["rows"]
    ratios = [r["buffering_ratio"] for r in by_ratio]
    numbers = [r for r in ratios if r is not None]
    assert numbers == sorted(numbers, reverse=True)
    assert ratios == numbers + [None] * (len(ratios) - len(numbers))  # nulls last
    assert rows_of(url, query="")["limit"] == 100  # the default


def check_errors(urls: list[str]) -> None:
    url = urls[0]
    for query, parameter in [
        ("?limit=0", "limit"), ("?limit=-3", "limit"), ("?limit=abc", "limit"),
        ("?limit=10001", "limit"), ("?sort=nope", "sort"), ("?sort=country", "sort"),
        ("?limit=5&sort=watch_seconds%20", "sort"),
    ]:  # fmt: skip
        body = get_json(f"{url}/tables/{BUFFERING}/{query}", expect=400)
        assert body["parameter"] == parameter and body["error"], (query, body)
    for path in ["/tables/nope/", "/tables/nope/United%20States%7CComcast/",
                 "/tables/agg.telemetry/", "/tables/a/b/c/", "/tables/x"]:  # fmt: skip
        body = get_json(f"{url}{path}", expect=404)
        assert body["error"], path
    # An unknown key: 404 from either worker (routed to whichever owns its partition).
    for each in urls:
        body = get_json(f"{each}{key_path(BUFFERING, 'Atlantis|Nobody')}", expect=404)
        assert body == {"error": "unknown key", "table": BUFFERING, "key": "Atlantis|Nobody"}


def check_routing(
    urls: list[str], split: dict[str, list[int]], expected: dict[tuple[str, int], Any]
) -> None:
    keys = sorted({k for k, _ in expected})
    owner_of = {}
    for key in keys:
        partition = key_partition(serialized_key(key), PARTITIONS)
        owner_of[key] = next(url for url, parts in split.items() if partition in parts)
        # Faust's own router agrees on the owner
        assert get_json(f"{urls[0]}/router/{BUFFERING}/{quote(key, safe='')}/") == owner_of[key]
    for url in urls:
        # keys the other worker owns, the first with characters that need URL-encoding
        foreign = sorted((k for k in keys if owner_of[k] != url),
                         key=lambda k: (not any(c in k for c in " &'"), k))  # fmt: skip
        assert foreign, f"{url} owns every key"
        for key in foreign[:3]:
            owner = owner_of[key]
            via_owner = get_json(f"{owner}{key_path(BUFFERING, key)}")
            routed = get_json(f"{url}{key_path(BUFFERING, key)}")
            assert routed == via_owner, key
            assert routed["worker"] == owner and routed["key"] == key
            country, isp = key.split("|")
            assert routed["key_values"] == {"country": country, "isp": isp}
            windows = routed["windows"]
            assert [w["window_start"] for w in windows] == sorted(
                (start for k, start in expected if k == key), reverse=True
            )
            for window in windows:
                assert window["closed"] is True
                for name, value in expected[(key, window["window_start"])].items():
                    assert same(window[name], value), (key, name)


def check_other_routes(url: str) -> None:
    assert get_json(f"{url}/healthz") == {"status": "ok"}
    assert get_json(f"{url}/readyz")["ready"] is True
    status, content_type, body = http(f"{url}/ui")  # redirected to /ui/
    assert status == 200 and content_type.startswith("text/html")
    assert b"/tables/" in body
    status, content_type, body = http(f"{url}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert b'streampulse_events_consumed_total{topic="acme-telemetry"}' in body
