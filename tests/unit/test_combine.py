"""The aggregation core (``models/combine.py``): field kinds, and the combine-function laws for
every aggregate the product declares.

The laws, checked with hypothesis on generated events: folding a list of events equals folding
any split of it and merging the parts in any order and grouping (exactly: accumulators are
canonical), ``create()`` is merge's identity, merge leaves its second argument alone, and a JSON
round trip of an accumulator changes nothing. Expected values in the example tests are worked
by hand or computed here with plain Python (``math.fsum``, ``sorted``), not with the core.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.combine import (
    Aggregate,
    Count,
    CountBy,
    FloatSum,
    Max,
    Min,
    Sketch,
    Sum,
    exact_sum_parts,
    getter,
    ratio,
)
from models.downloads import DOWNLOADS_ERRORS
from models.orders import ORDERS_SUMMARY
from models.telemetry import BUFFERING, COMPLETION, ERRORS

# -- event strategies: the fields the aggregates read, few distinct keys, Avro floats as decoded

floats32 = st.floats(0, 10_000, width=32, allow_subnormal=False)

telemetry_events = st.fixed_dictionaries({
    "country": st.sampled_from(["US", "CA", "DE"]),
    "isp": st.sampled_from(["Comcast", "Bell", "A|B%"]),
    "title_id": st.sampled_from(["TITLE_0000000a", "TITLE_0000000b"]),
    "device_os": st.sampled_from(["iOS", "Android"]),
    "app_version": st.sampled_from(["5.2.1", "5.3.0"]),
    "event_type": st.sampled_from(["start", "stop", "pause", "resume", "complete"]),
    "watch_duration_seconds": st.integers(0, 86_400),
    "buffering_events": st.integers(0, 1000),
    "buffering_duration_seconds": st.integers(0, 3600),
    "completion_percentage": st.floats(0, 100, width=32),
    "error_count": st.integers(0, 100),
})  # fmt: skip


@st.composite
def download_events(draw: Any) -> dict[str, Any]:
    status = draw(st.sampled_from(["success", "failed", "cancelled"]))
    code = draw(st.sampled_from(["cdn_timeout", "network_error", "storage_full"]))
    if status == "success" or (status == "cancelled" and draw(st.booleans())):
        code = None
    return {
        "content": {"size_mb": draw(st.integers(0, 10_000)), "price": draw(floats32)},
        "download": {"status": status, "error_code": code, "speed_mbps": draw(floats32)},
        "user_context": {"region": draw(st.sampled_from(["US-California", "EU-London"]))},
    }


order_events = st.fixed_dictionaries({
    "event_type": st.sampled_from([
        "ORDER_CREATED", "PAYMENT_AUTHORIZED", "PAYMENT_FAILED", "ORDER_SHIPPED",
        "ORDER_REFUNDED",
    ]),
    "payload": st.fixed_dictionaries({
        "currency": st.sampled_from(["USD", "EUR", "JPY"]),
        "total_amount": st.floats(0, 1e7, allow_nan=False, allow_infinity=False),
    }),
})  # fmt: skip

#: A declaration using every field kind (the domain aggregates do not use Min, Max, Sketch yet).
EVERY_KIND = Aggregate(
    table="agg.test.kinds",
    event_type="test.kinds",
    description="every field kind",
    key={"group": "group"},
    fields={
        "big": Count(where=lambda e: e["value"] > 100),
        "int_sum": Sum("n"),
        "float_sum": FloatSum("value"),
        "low": Min("value"),
        "high": Max("value"),
        "labels": CountBy("label"),
        "sketch": Sketch("value"),
    },
    metrics=lambda v: {
        "events": v["events"], "big": v["big"], "int_sum": v["int_sum"],
        "mean": ratio(v["float_sum"], v["events"]), "low": v["low"], "high": v["high"],
        "labels": v["labels"], "p50": v["sketch"].get_quantile_value(0.5),
        "p99": v["sketch"].get_quantile_value(0.99),
    },
)  # fmt: skip

kinds_events = st.fixed_dictionaries({
    "group": st.sampled_from(["a", "b"]),
    "n": st.integers(-1000, 1000),
    "value": st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    # 1, True and 1.0 are equal in Python and three labels here: "1", "True", "1.0"
    "label": st.sampled_from(["x", "y", None, 7, 1, True, 1.0]),
})  # fmt: skip

AGGREGATES = [
    (BUFFERING, telemetry_events),
    (COMPLETION, telemetry_events),
    (ERRORS, telemetry_events),
    (DOWNLOADS_ERRORS, download_events()),
    (ORDERS_SUMMARY, order_events),
    (EVERY_KIND, kinds_events),
]
IDS = [a.table for a, _ in AGGREGATES]


def canonical(folds: dict) -> str:
    """Folded accumulators as JSON text, map keys sorted (their order is not part of them)."""
    return json.dumps(sorted(folds.items()), sort_keys=True)


def merge_folds(aggregate: Aggregate, folds: list[dict], rng: random.Random) -> dict:
    """Merge per-key folds in a random binary tree (any grouping), keys in any order."""
    folds = [copy.deepcopy(f) for f in folds]
    while len(folds) > 1:
        i = rng.randrange(len(folds) - 1)
        left, right = folds[i], folds.pop(i + 1)
        if rng.random() < 0.5:
            left, right = right, left
        merged = dict(left)
        keys = list(right)
        rng.shuffle(keys)
        for key in keys:
            merged[key] = aggregate.merge(merged.get(key) or aggregate.create(), right[key])
        folds[i] = merged
    return folds[0] if folds else {}


@pytest.mark.parametrize(("aggregate", "events_strategy"), AGGREGATES, ids=IDS)
def test_fold_equals_merged_folds_of_any_split_order_and_grouping(
    aggregate: Aggregate, events_strategy: Any
) -> None:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(events_strategy, max_size=40), st.lists(st.integers(0, 40), max_size=6),
           st.randoms(use_true_random=False))  # fmt: skip
    def check(events: list[dict], cuts: list[int], rng: random.Random) -> None:
        bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
        parts = [events[a:b] for a, b in itertools.pairwise(bounds)]
        rng.shuffle(parts)
        whole = aggregate.fold(events)
        merged = merge_folds(aggregate, [aggregate.fold(p) for p in parts], rng)
        # The same accumulators, to the last bit: as JSON, so -0.0 is not 0.0 nor 1 is 1.0.
        assert canonical(merged) == canonical(whole)

    check()


@pytest.mark.parametrize(("aggregate", "events_strategy"), AGGREGATES, ids=IDS)
def test_accumulators_survive_json_and_merge_has_an_identity(
    aggregate: Aggregate, events_strategy: Any
) -> None:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(events_strategy, max_size=30))
    def check(events: list[dict]) -> None:
        for acc in aggregate.fold(events).values():
            text = json.dumps(acc)
            assert json.loads(text) == acc
            assert aggregate.extract(json.loads(text)) == aggregate.extract(acc)
            snapshot = copy.deepcopy(acc)
            merged = aggregate.merge(aggregate.create(), acc)
            assert merged == acc
            aggregate.merge(merged, copy.deepcopy(acc))  # grows merged: acc must not follow
            assert acc == snapshot  # merge neither changed its second argument nor shares it
            assert aggregate.merge(copy.deepcopy(acc), aggregate.create()) == acc
        sizes = Counter(aggregate.key_values(e) for e in events)
        assert {k: aggregate.size(a) for k, a in aggregate.fold(events).items()} == dict(sizes)

    check()


def test_events_are_not_modified_by_folding() -> None:
    events = [
        {"group": "a", "n": 1, "value": 2.5, "label": "x"},
        {"group": "a", "n": 2, "value": 0.0, "label": None},
    ]
    before = copy.deepcopy(events)
    EVERY_KIND.fold(events)
    assert events == before


# -- the kinds, one by one ----------------------------------------------------------------------


def test_count_with_and_without_condition() -> None:
    events = [{"x": 1}, {"x": 5}, {"x": 7}]
    assert Count().add_all(0, events) == 3
    assert Count(where=lambda e: e["x"] > 4).add_all(10, events) == 12
    assert Count().merge(2, 3) == 5


def test_sum_reads_dotted_paths() -> None:
    events = [{"a": {"b": 2}}, {"a": {"b": 40}}]
    assert Sum("a.b").add_all(0, events) == 42
    assert Sum("a.b", where=lambda e: e["a"]["b"] > 10).add_all(0, events) == 40
    assert getter("a.b.c")({"a": {"b": {"c": 9}}}) == 9
    assert getter(lambda e: e["z"] * 2)({"z": 4}) == 8


def test_float_sum_is_exact_where_plain_addition_is_not() -> None:
    values = [1e16, 1.0, -1e16, 0.1, 0.2, 0.3]
    plain = 0.0
    for v in values:
        plain += v
    exact = math.fsum(values)  # 1.6 (correctly rounded)
    assert plain != exact
    kind = FloatSum("v")
    state = kind.add_all(kind.create(), [{"v": v} for v in values])
    assert kind.extract(state) == exact
    # Any split and order: the same state (canonical), the same sum.
    left = kind.add_all(kind.create(), [{"v": v} for v in values[3:]])
    right = kind.add_all(kind.create(), [{"v": v} for v in reversed(values[:3])])
    assert kind.merge(right, left) == state
    assert kind.create() == [] and kind.extract([]) == 0.0


@given(st.lists(st.floats(-1e300, 1e300, allow_nan=False), max_size=30),
       st.randoms(use_true_random=False))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_exact_sum_parts_is_canonical_and_sums_exactly(values: list[float], rng: Any) -> None:
    parts = exact_sum_parts(values)
    assert math.fsum(parts) == math.fsum(values)
    shuffled = list(values)
    rng.shuffle(shuffled)
    cut = rng.randint(0, len(shuffled))
    assert exact_sum_parts([*exact_sum_parts(shuffled[:cut]), *shuffled[cut:]]) == parts
    assert all(p != 0.0 for p in parts)
    # Each part is the correctly rounded rest: the magnitudes shrink fast.
    for bigger, smaller in itertools.pairwise(parts):
        assert abs(smaller) <= abs(bigger) * 2**-52


def test_exact_sum_parts_of_non_finite_values_ends() -> None:
    assert exact_sum_parts([math.inf, 1.0]) == [math.inf]
    assert exact_sum_parts([]) == []
    assert exact_sum_parts([0.0, -0.0]) == []
    # math.fsum raises on these; a sum must not: beyond a double's range it is inf or nan.
    assert exact_sum_parts([1e308, 1e308]) == [math.inf]
    assert exact_sum_parts([-1e308, -1e308]) == [-math.inf]
    assert math.isnan(exact_sum_parts([math.inf, -math.inf])[0])


def test_float_sum_reads_older_and_non_finite_states() -> None:
    kind = FloatSum("v")
    # A plain float: this field's state before exact sums (older table values, partials).
    assert kind.merge(12.5, [0.25]) == [12.75]
    assert kind.merge([0.25], 12.5) == [12.75]
    assert kind.extract(12.5) == 12.5
    assert kind.fold(12.5, [{"v": 0.5}]) == [13.0]
    # orjson (Faust's JSON) stores a non-finite part as null.
    assert math.isnan(kind.extract([None]))
    assert math.isnan(kind.extract(kind.merge([1.0], [None])))
    assert kind.extract([math.inf]) == math.inf


def test_min_and_max_hold_floats_whichever_tie_came_first() -> None:
    low = Min("v")
    assert json.dumps(low.add_all(None, [{"v": 0.0}, {"v": -0.0}])) == "0.0"
    assert json.dumps(low.add_all(None, [{"v": -0.0}, {"v": 0.0}])) == "0.0"
    assert json.dumps(low.add_all(None, [{"v": 1}, {"v": 1.0}])) == "1.0"


def test_min_and_max_treat_none_as_no_events() -> None:
    low, high = Min("v"), Max("v")
    events = [{"v": 3.5}, {"v": -2.0}, {"v": 9.0}]
    assert low.add_all(low.create(), events) == -2.0
    assert high.add_all(high.create(), events) == 9.0
    assert low.add_all(5.0, events[:1]) == 3.5
    assert low.add_all(-9.0, events) == -9.0
    assert low.add_all(None, []) is None
    assert low.merge(None, 4.0) == 4.0 and low.merge(4.0, None) == 4.0
    assert high.merge(1.0, 7.0) == 7.0 and high.merge(None, None) is None


def test_count_by_skips_none_and_names_labels_as_strings() -> None:
    kind = CountBy("code")
    state = kind.add_all(kind.create(), [{"code": c} for c in ["a", "b", "a", None, 404]])
    assert state == {"a": 2, "b": 1, "404": 1}
    labels = [{"code": c} for c in [1, True, 1.0, "None", None]]
    assert kind.add_all(kind.create(), labels) == {"1": 1, "True": 1, "1.0": 1, "None": 1}
    other = {"b": 5, "c": 1}
    assert kind.merge(state, other) == {"a": 2, "b": 6, "404": 1, "c": 1}
    assert other == {"b": 5, "c": 1}
    assert list(kind.extract({"b": 1, "a": 2})) == ["a", "b"]  # stable order for records


@given(st.lists(st.floats(1e-3, 1e6, allow_nan=False), min_size=1, max_size=400),
       st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]))  # fmt: skip
@settings(max_examples=150, deadline=None)
def test_sketch_quantiles_are_within_its_relative_accuracy(values: list[float], q: float) -> None:
    kind = Sketch("v", relative_accuracy=0.01)
    state = kind.add_all(kind.create(), [{"v": v} for v in values])
    exact = sorted(values)[math.floor(q * (len(values) - 1))]  # DDSketch's rank definition
    got = kind.extract(state).get_quantile_value(q)
    assert abs(got - exact) <= 0.01 * exact * (1 + 1e-9)


def test_sketch_skips_values_it_cannot_bin() -> None:
    kind = Sketch("v")
    state = kind.add_all(kind.create(), [{"v": v} for v in [math.nan, math.inf, -math.inf, 1.0]])
    assert state["z"] == 0 and sum(state["p"].values()) == 1 and not state["n"]


def test_sketch_counts_zero_and_negative_values_and_merges_bins() -> None:
    kind = Sketch("v")
    state = kind.add_all(kind.create(), [{"v": v} for v in [0.0, -5.0, -5.0, 10.0]])
    assert state["z"] == 1 and sum(state["n"].values()) == 2 and sum(state["p"].values()) == 1
    sketch = kind.extract(state)
    assert sketch.count == 4
    assert sketch.get_quantile_value(0.0) == pytest.approx(-5.0, rel=0.01)
    assert sketch.get_quantile_value(1.0) == pytest.approx(10.0, rel=0.01)
    doubled = kind.merge(copy.deepcopy(state), state)
    assert kind.extract(doubled).count == 8
    assert json.loads(json.dumps(doubled)) == doubled


def test_every_kind_aggregate_against_plain_python() -> None:
    rng = random.Random(3)
    events = [
        {"group": rng.choice("ab"), "n": rng.randint(-9, 9), "value": rng.uniform(0, 500),
         "label": rng.choice(["x", "y", None])}
        for _ in range(300)
    ]  # fmt: skip
    for (group,), acc in EVERY_KIND.fold(events).items():
        mine = [e for e in events if e["group"] == group]
        values = sorted(e["value"] for e in mine)
        got = EVERY_KIND.extract(acc)
        assert got["events"] == len(mine)
        assert got["big"] == sum(1 for e in mine if e["value"] > 100)
        assert got["int_sum"] == sum(e["n"] for e in mine)
        assert got["mean"] == math.fsum(values) / len(mine)
        assert got["low"] == values[0] and got["high"] == values[-1]
        assert got["labels"] == dict(sorted(Counter(e["label"] for e in mine
                                                    if e["label"]).items()))  # fmt: skip
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            exact = values[math.floor(q * (len(values) - 1))]
            assert abs(got[name] - exact) <= 0.01 * exact


def test_declarations_fail_early() -> None:
    with pytest.raises(TypeError, match="needs the value"):
        Sum()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="event count"):
        Aggregate(table="t", event_type="t.t", description="", key={"k": "k"},
                  fields={"events": Count()}, metrics=dict)  # fmt: skip
    with pytest.raises(ValueError, match="group key"):
        Aggregate(table="t", event_type="t.t", description="", key={}, fields={},
                  metrics=dict)  # fmt: skip


def test_key_values_read_nested_and_top_level_fields() -> None:
    assert DOWNLOADS_ERRORS.key_values({"user_context": {"region": "EU-Paris"}}) == ("EU-Paris",)
    assert ORDERS_SUMMARY.key_values({"payload": {"currency": "JPY"}}) == ("JPY",)
    assert BUFFERING.key_values({"country": "US", "isp": "X"}) == ("US", "X")
    assert COMPLETION.key_values({"title_id": "T"}) == ("T",)
