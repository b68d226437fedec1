"""Telemetry aggregates, windowing helpers and derived records, against hand-worked numbers.

Every expected number below was summed by hand from the literal events (the working is in the
comments); none is computed with ``models/`` or ``app/engine/windowing.py``.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from typing import Any

import fastavro
import pytest
from aiokafka.partitioner import DefaultPartitioner
from fastavro.validation import validate as avro_validate

from app.catalog import SCHEMA_DIR
from app.engine.codec import parse_raw
from app.engine.publish import derived_record, record_event_id
from app.engine.windowing import build_partials, decode_key, encode_key, key_partition
from models.telemetry import BUFFERING, COMPLETION, ERRORS


def ev(
    n: int,
    *,
    country: str,
    isp: str,
    title: str,
    os: str,
    version: str,
    event_type: str,
    watch: int,
    buf_events: int,
    buf_seconds: int,
    errors: int,
    completion: float,
    ts: int = 1_754_922_600_000,
) -> dict[str, Any]:
    return {
        "event_id": f"EVENT_0000000{n}",
        "customer_id": f"CUST_1000000{n}",
        "title_id": title,
        "session_id": f"SESSION_2000000{n}",
        "event_type": event_type,
        "event_timestamp": ts,
        "watch_duration_seconds": watch,
        "position_seconds": watch,
        "completion_percentage": completion,
        "device_type": "mobile",
        "device_id": f"DEVICE_3000000{n}",
        "device_os": os,
        "app_version": version,
        "quality": "HD",
        "bandwidth_mbps": 20.0,
        "buffering_events": buf_events,
        "buffering_duration_seconds": buf_seconds,
        "error_count": errors,
        "ip_address": "10.0.0.1",
        "country": country,
        "state": None,
        "city": "Somewhere",
        "isp": isp,
        "connection_type": "wifi",
    }


T1, T2, T3 = "TITLE_0000000a", "TITLE_0000000b", "TITLE_0000000c"
US, CA = "United States", "Canada"

# fmt: off
# n  country/isp       title  os/version        type      watch  bufev bufsec  err  compl
E1 = ev(1, country=US, isp="Comcast", title=T1, os="iOS", version="5.2.1",
        event_type="start", watch=0, buf_events=0, buf_seconds=0, errors=0, completion=0.0)
E2 = ev(2, country=US, isp="Comcast", title=T1, os="iOS", version="5.2.1",
        event_type="stop", watch=600, buf_events=3, buf_seconds=30, errors=2, completion=40.0)
E3 = ev(3, country=US, isp="Verizon", title=T1, os="Android", version="5.2.1",
        event_type="complete", watch=1200, buf_events=1, buf_seconds=5, errors=0,
        completion=95.0)
E4 = ev(4, country=US, isp="Comcast", title=T2, os="iOS", version="5.2.1",
        event_type="pause", watch=300, buf_events=0, buf_seconds=0, errors=1, completion=20.0)
E5 = ev(5, country=CA, isp="Bell", title=T2, os="iOS", version="5.3.0",
        event_type="start", watch=0, buf_events=0, buf_seconds=0, errors=0, completion=0.0)
E6 = ev(6, country=CA, isp="Rogers", title=T3, os="Android", version="5.2.1",
        event_type="complete", watch=2000, buf_events=0, buf_seconds=0, errors=3,
        completion=100.0)
E7 = ev(7, country=US, isp="Comcast", title=T1, os="iOS", version="5.2.1",
        event_type="resume", watch=0, buf_events=0, buf_seconds=0, errors=0, completion=40.0)
EVENTS = [E1, E2, E3, E4, E5, E6, E7]
# fmt: on

# Buffering per (country, isp):
#   US/Comcast: E1 E2 E4 E7 -> events 4, buffering_events 0+3+0+0=3, seconds 0+30+0+0=30,
#               watch 0+600+300+0=900, ratio 30/900
#   US/Verizon: E3 -> 1, 1, 5, 1200, ratio 5/1200
#   CA/Bell:    E5 -> 1, 0, 0, 0, ratio null (watch 0)
#   CA/Rogers:  E6 -> 1, 0, 0, 2000, ratio 0/2000 = 0.0
EXPECTED_BUFFERING = {
    (US, "Comcast"): {"events": 4, "buffering_events": 3, "buffering_seconds": 30,
                      "watch_seconds": 900, "buffering_ratio": 30 / 900},
    (US, "Verizon"): {"events": 1, "buffering_events": 1, "buffering_seconds": 5,
                      "watch_seconds": 1200, "buffering_ratio": 5 / 1200},
    (CA, "Bell"): {"events": 1, "buffering_events": 0, "buffering_seconds": 0,
                   "watch_seconds": 0, "buffering_ratio": None},
    (CA, "Rogers"): {"events": 1, "buffering_events": 0, "buffering_seconds": 0,
                     "watch_seconds": 2000, "buffering_ratio": 0.0},
}  # fmt: skip
# Completion per title:
#   T1: E1 start, E2 stop 40, E3 complete 95, E7 resume (ignored for the mean)
#       starts 1, completes 1, rate 1.0, mean (40+95)/2 = 67.5, watch 0+600+1200+0 = 1800
#   T2: E4 pause 20 (ignored), E5 start -> starts 1, completes 0, rate 0.0, mean null, watch 300
#   T3: E6 complete 100 -> starts 0 (rate null), completes 1, mean 100.0, watch 2000
EXPECTED_COMPLETION = {
    (T1,): {"starts": 1, "completes": 1, "completion_rate": 1.0,
            "avg_completion_percentage": 67.5, "watch_seconds": 1800},
    (T2,): {"starts": 1, "completes": 0, "completion_rate": 0.0,
            "avg_completion_percentage": None, "watch_seconds": 300},
    (T3,): {"starts": 0, "completes": 1, "completion_rate": None,
            "avg_completion_percentage": 100.0, "watch_seconds": 2000},
}  # fmt: skip
# Errors per (device_os, app_version):
#   iOS/5.2.1:     E1 0, E2 2, E4 1, E7 0 -> events 4, error_events 2, error_count 3, rate 2/4
#   Android/5.2.1: E3 0, E6 3 -> events 2, error_events 1, error_count 3, rate 1/2
#   iOS/5.3.0:     E5 0 -> events 1, 0, 0, rate 0.0
EXPECTED_ERRORS = {
    ("iOS", "5.2.1"): {"events": 4, "error_events": 2, "error_count": 3, "error_rate": 0.5},
    ("Android", "5.2.1"): {"events": 2, "error_events": 1, "error_count": 3, "error_rate": 0.5},
    ("iOS", "5.3.0"): {"events": 1, "error_events": 0, "error_count": 0, "error_rate": 0.0},
}

CASES = [
    pytest.param(BUFFERING, EXPECTED_BUFFERING, id="buffering"),
    pytest.param(COMPLETION, EXPECTED_COMPLETION, id="completion"),
    pytest.param(ERRORS, EXPECTED_ERRORS, id="errors"),
]


def assert_metrics(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert list(actual) == list(expected)  # field names and order (the schema's order)
    for name, want in expected.items():
        got = actual[name]
        if want is None:
            assert got is None, name
        elif isinstance(want, float):
            assert isinstance(got, float), name
            assert got == pytest.approx(want, rel=1e-12), name
        else:
            assert type(got) is int and got == want, name


@pytest.mark.parametrize(("aggregate", "expected"), CASES)
def test_fold_and_metrics_match_hand_computed(aggregate: Any, expected: dict) -> None:
    folded = aggregate.fold(EVENTS)
    assert set(folded) == set(expected)
    for key, want in expected.items():
        assert_metrics(aggregate.extract(folded[key]), want)


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        (BUFFERING, {"events": 0, "buffering_events": 0, "buffering_seconds": 0,
                     "watch_seconds": 0, "buffering_ratio": None}),
        (COMPLETION, {"starts": 0, "completes": 0, "completion_rate": None,
                      "avg_completion_percentage": None, "watch_seconds": 0}),
        (ERRORS, {"events": 0, "error_events": 0, "error_count": 0, "error_rate": None}),
    ],
)  # fmt: skip
def test_ratios_are_null_when_denominators_are_zero(aggregate: Any, expected: dict) -> None:
    assert_metrics(aggregate.extract(aggregate.create()), expected)


def test_avg_completion_counts_only_stop_and_complete() -> None:
    # pause 10, resume 20, start 0 are ignored; stop 30 and complete 90 -> (30 + 90) / 2 = 60
    base = dict(country=US, isp="X", title=T1, os="iOS", version="1.0.0", watch=0,
                buf_events=0, buf_seconds=0, errors=0)  # fmt: skip
    events = [
        ev(1, event_type="pause", completion=10.0, **base),
        ev(2, event_type="resume", completion=20.0, **base),
        ev(3, event_type="start", completion=0.0, **base),
        ev(4, event_type="stop", completion=30.0, **base),
        ev(5, event_type="complete", completion=90.0, **base),
    ]
    metrics = COMPLETION.extract(COMPLETION.fold(events)[(T1,)])
    assert metrics["avg_completion_percentage"] == pytest.approx(60.0)
    assert metrics["completion_rate"] == pytest.approx(1.0)


def test_error_events_count_events_not_errors() -> None:
    base = dict(country=US, isp="X", title=T1, os="tvOS", version="2.0.0", event_type="stop",
                watch=10, buf_events=0, buf_seconds=0, completion=1.0)  # fmt: skip
    events = [ev(i, errors=e, **base) for i, e in enumerate([0, 100, 1, 0, 0])]
    # events 5, with errors 2, errors 101, rate 2/5
    assert_metrics(
        ERRORS.extract(ERRORS.fold(events)[("tvOS", "2.0.0")]),
        {"events": 5, "error_events": 2, "error_count": 101, "error_rate": 0.4},
    )


@pytest.mark.parametrize(("aggregate", "expected"), CASES)
@pytest.mark.parametrize("split", [0, 1, 3, 6, 7])
def test_merge_equals_folding_everything(aggregate: Any, expected: dict, split: int) -> None:
    first, second = aggregate.fold(EVENTS[:split]), aggregate.fold(EVENTS[split:])
    merged = dict(first)
    for key, acc in second.items():
        merged[key] = aggregate.merge(merged.get(key) or aggregate.create(), acc)
    whole = aggregate.fold(EVENTS)
    assert merged == whole
    for key, want in expected.items():
        assert_metrics(aggregate.extract(merged[key]), want)


def test_merge_adds_field_by_field_and_leaves_other_alone() -> None:
    # buffering: events, buffering_events, buffering_seconds, watch_seconds
    target, other = [1, 2, 3, 4], [10, 0, 5, 1]
    assert BUFFERING.merge(target, other) is target
    assert target == [11, 2, 8, 5]
    assert other == [10, 0, 5, 1]


def test_fold_does_not_modify_events() -> None:
    before = copy.deepcopy(EVENTS)
    for aggregate in (BUFFERING, COMPLETION, ERRORS):
        aggregate.fold(EVENTS)
    assert before == EVENTS


# -- build_partials: windows and keys ---------------------------------------------------------

W0 = 1_754_922_600_000  # 2025-08-11T14:30:00Z, a multiple of 60 000


def test_build_partials_windows() -> None:
    mk = dict(country=US, isp="Comcast", title=T1, os="iOS", version="5.2.1",
              event_type="stop", buf_events=1, errors=0, completion=1.0)  # fmt: skip
    events = [
        ev(1, ts=W0, watch=10, buf_seconds=1, **mk),  # first ms of [W0, W0+60s)
        ev(2, ts=W0 + 59_999, watch=20, buf_seconds=2, **mk),  # last ms of it
        ev(3, ts=W0 + 60_000, watch=40, buf_seconds=4, **mk),  # window end: next window
        ev(4, ts=W0 - 1, watch=80, buf_seconds=8, **mk),  # previous window
        ev(5, ts=W0 + 45_123, watch=160, buf_seconds=16, **mk),  # floor -> W0
    ]
    partials = build_partials(BUFFERING, events, 60_000, "event_timestamp")
    assert partials == {
        "United States|Comcast": {
            # events, buffering_events, buffering_seconds, watch_seconds
            W0: [3, 3, 1 + 2 + 16, 10 + 20 + 160],
            W0 + 60_000: [1, 1, 4, 40],
            W0 - 60_000: [1, 1, 8, 80],
        }
    }


def test_build_partials_splits_keys_and_floors_to_the_window_size() -> None:
    mk = dict(title=T1, os="iOS", version="5.2.1", event_type="stop", buf_events=0,
              buf_seconds=0, errors=0, completion=1.0, watch=7)  # fmt: skip
    events = [
        ev(1, country="A|B", isp="50%", ts=12_345, **mk),
        ev(2, country="A", isp="B|50%", ts=19_999, **mk),
        ev(3, country="A|B", isp="50%", ts=10_000, **mk),
        ev(4, country="A|B", isp="50%", ts=20_000, **mk),
    ]
    partials = build_partials(BUFFERING, events, 10_000, "event_timestamp")
    assert partials == {
        "A%7CB|50%25": {10_000: [2, 0, 0, 14], 20_000: [1, 0, 0, 7]},
        "A|B%7C50%25": {10_000: [1, 0, 0, 7]},
    }
    assert build_partials(BUFFERING, [], 10_000, "event_timestamp") == {}


@pytest.mark.parametrize(
    ("values", "encoded"),
    [
        (("United States", "Comcast"), "United States|Comcast"),
        (("a|b", "c"), "a%7Cb|c"),
        (("100%", "x"), "100%25|x"),
        (("%7C", "|"), "%257C|%7C"),
        (("%25", "%%"), "%2525|%25%25"),
        (("", ""), "|"),
        (("|", "|", "|"), "%7C|%7C|%7C"),
        (("TITLE_0000000a",), "TITLE_0000000a"),
        (("a%|b", "%7c"), "a%25%7Cb|%257c"),
    ],
)
def test_key_encoding_round_trip(values: tuple[str, ...], encoded: str) -> None:
    assert encode_key(values) == encoded
    assert decode_key(encoded) == values


# -- key_partition ----------------------------------------------------------------------------

# Kafka's own murmur2 test vectors (clients UtilsTest.testMurmur2), as signed Java ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("partitions", [1, 3, 4, 8, 20])
def test_key_partition_matches_kafka_java_partitioner(partitions: int) -> None:
    for key, java_hash in JAVA_MURMUR2.items():
        # Java: Utils.toPositive(murmur2(key)) % numPartitions
        assert key_partition(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize("partitions", [1, 2, 4, 7, 8, 20])
def test_key_partition_agrees_with_aiokafka_default_partitioner(partitions: int) -> None:
    partitioner = DefaultPartitioner()
    all_partitions = list(range(partitions))
    keys = [json.dumps(encode_key(v)).encode() for v in (("US", "Comcast"), ("a|b", "%"))]
    keys += [b"", b"x", "é|ü".encode(), *(f"key-{i}".encode() for i in range(200))]
    for key in keys:
        want = partitioner(key, all_partitions, all_partitions)
        got = key_partition(key, partitions)
        assert got == want, key
        assert 0 <= got < partitions


# -- derived_record ---------------------------------------------------------------------------

SCHEMA_FILES = {
    "agg.telemetry.buffering": "derived/TelemetryBuffering.avsc",
    "agg.telemetry.completion": "derived/TelemetryCompletion.avsc",
    "agg.telemetry.errors": "derived/TelemetryErrors.avsc",
}
ENVELOPE = ["event_id", "event_type", "occurred_at", "producer", "schema_version",
            "privacy_tier", "window_start", "window_end"]  # fmt: skip
NOW_MS = 1_754_922_675_000


@pytest.mark.parametrize(
    ("aggregate", "expected", "event_type", "key_fields"),
    [
        (BUFFERING, EXPECTED_BUFFERING, "telemetry.buffering", ["country", "isp"]),
        (COMPLETION, EXPECTED_COMPLETION, "telemetry.completion", ["title_id"]),
        (ERRORS, EXPECTED_ERRORS, "telemetry.errors", ["device_os", "app_version"]),
    ],
)
def test_derived_record_envelope_order_and_schema(
    aggregate: Any, expected: dict, event_type: str, key_fields: list[str]
) -> None:
    raw = json.loads((SCHEMA_DIR / SCHEMA_FILES[aggregate.table]).read_text())
    schema_fields = [f["name"] for f in raw["fields"]]
    parsed = parse_raw(raw)
    folded = aggregate.fold(EVENTS)
    for key_values, want in expected.items():
        key = "|".join(key_values)  # no | or % in these values
        record = derived_record(aggregate, key, key_values, W0, 60_000, folded[key_values], NOW_MS)
        assert list(record) == schema_fields
        assert list(record)[:8] == ENVELOPE
        assert list(record)[8 : 8 + len(key_fields)] == key_fields
        assert uuid.UUID(record["event_id"]).version == 5
        assert record["event_type"] == event_type
        assert record["occurred_at"] == NOW_MS
        assert record["producer"] == "streampulse"
        assert record["schema_version"] == 1
        assert record["privacy_tier"] == "internal"
        assert record["window_start"] == W0
        assert record["window_end"] == W0 + 60_000
        assert tuple(record[f] for f in key_fields) == key_values
        assert_metrics({k: record[k] for k in want}, want)
        assert avro_validate(record, parsed, raise_errors=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, parsed, None) == record


def test_record_event_id_is_stable_and_distinct() -> None:
    table, key = "agg.telemetry.buffering", "United States|Comcast"
    first = record_event_id(table, key, W0)
    assert record_event_id(table, key, W0) == first
    assert uuid.UUID(first).version == 5
    others = {
        record_event_id(table, "United States|Verizon", W0),
        record_event_id(table, key, W0 + 60_000),
        record_event_id("agg.telemetry.errors", key, W0),
        record_event_id(table, key + "|", W0),
    }
    assert first not in others
    assert len(others) == 4
    record = derived_record(BUFFERING, key, (US, "Comcast"), W0, 60_000, [1, 0, 0, 0], 1)
    again = derived_record(BUFFERING, key, (US, "Comcast"), W0, 60_000, [2, 1, 1, 5], 2)
    assert record["event_id"] == again["event_id"] == first  # a republished window keeps its id
