"""The per-user join (``models/users.py``): any arrival order gives the contribution of the set.

The oracle computes each user's contribution straight from the definitions of the contract
(section 3), from the whole set of events at once; the join sees the same events one by one in
a random order, and the sum of its deltas must equal the oracle, per aggregate and event time.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from models.users import MAX_KEPT, JoinParams, apply, apply_all, empty_state

ATTRIBUTION = 10
EXPERIMENTS = ("exp_a", "exp_b")
VARIANTS = ("control", "treatment", "treatment_b")
ITEMS = ("i1", "i2", "i3", "i4")
NO_PRUNING = JoinParams(ATTRIBUTION, 10**9)

times = st.integers(min_value=0, max_value=60)
assignments = st.tuples(
    st.just("A"), times, st.sampled_from(EXPERIMENTS), st.sampled_from(VARIANTS)
)
ab_conversions = st.tuples(st.just("X"), times, st.sampled_from(EXPERIMENTS))
generic = st.tuples(st.just("G"), times)
clicks = st.tuples(st.just("C"), times, st.sampled_from(ITEMS))
responses = st.tuples(
    st.just("R"), times, st.sampled_from([f"req{i}" for i in range(6)]),
    st.sampled_from(["m1", "m2"]), st.just("1.0"),
    st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3, unique=True),
)  # fmt: skip
events = st.lists(
    st.one_of(assignments, ab_conversions, generic, clicks, responses), min_size=1, max_size=25
)


def unique_responses(items: list[tuple]) -> list[list[Any]]:
    """One response per request id (a request is answered once)."""
    seen: set[str] = set()
    out = []
    for event in items:
        if event[0] == "R":
            if event[2] in seen:
                continue
            seen.add(event[2])
        out.append(list(event))
    return out


def oracle(all_events: list[list[Any]]) -> Counter:
    """(aggregate, group, time, field) -> the user's contribution, from the definitions."""
    out: Counter = Counter()
    first: dict[str, tuple[int, str]] = {}
    for kind, t, *rest in all_events:
        if kind == "A":
            experiment, variant = rest
            if experiment not in first or (t, variant) < first[experiment]:
                first[experiment] = (t, variant)
    for experiment, (t_a, variant) in first.items():
        conversions = sorted(
            e[1] for e in all_events
            if (e[0] == "X" and e[2] == experiment) or e[0] == "G"
        )  # fmt: skip
        qualifying = [t for t in conversions if t >= t_a]
        out[("ab", experiment, variant, t_a, "assigned")] += 1
        out[("ab", experiment, t_a, "activity")] += 1
        for t in qualifying:
            out[("ab", experiment, t, "activity")] += 1
        if qualifying:
            out[("ab", experiment, variant, qualifying[0], "converted")] += 1
    answered = [e for e in all_events if e[0] == "R"]
    for _, t, _, model, version, items in answered:
        out[("ctr", model, version, t, "shown")] += len(set(items))
    hits: set[tuple[str, str]] = set()
    for kind, t, *rest in all_events:
        if kind != "C":
            continue
        (item,) = rest
        candidates = [r for r in answered if r[1] <= t <= r[1] + ATTRIBUTION and item in r[5]]
        if candidates:
            best = max(candidates, key=lambda r: (r[1], r[2]))
            hits.add((best[2], item))
    by_id = {r[2]: r for r in answered}
    for request_id, _ in hits:
        response = by_id[request_id]
        out[("ctr", response[3], response[4], response[1], "hits")] += 1
    return +out


def summed(deltas: list[tuple[str, dict[str, Any]]]) -> Counter:
    out: Counter = Counter()
    for kind, event in deltas:
        if kind == "ab":
            for name in ("assigned", "converted"):
                out[("ab", event["experiment_id"], event["variant"], event["ts"], name)] += event[
                    name
                ]
            out[("ab", event["experiment_id"], event["ts"], "activity")] += event["activity"]
        else:
            for name in ("shown", "hits"):
                out[("ctr", event["modelName"], event["modelVersion"], event["ts"], name)] += event[
                    name
                ]
    return Counter({k: v for k, v in out.items() if v})


@settings(max_examples=400, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_any_arrival_order_sums_to_the_contribution_of_the_set(
    raw: list[tuple], rng: random.Random
) -> None:
    all_events = unique_responses(raw)
    order = list(all_events)
    rng.shuffle(order)
    state = empty_state()
    deltas, reassignments = apply_all(state, [list(e) for e in order], NO_PRUNING)
    assert summed(deltas) == oracle(all_events)
    assigned = [e for e in all_events if e[0] == "A"]
    assert reassignments == len(assigned) - len({e[2] for e in assigned})
    # The state is plain JSON: it survives the changelog unchanged.
    assert json.loads(json.dumps(state)) == state


@settings(max_examples=200, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_replaying_from_a_saved_state_gives_the_same_deltas(
    raw: list[tuple], rng: random.Random
) -> None:
    """What a crash replays: the state as the changelog had it, and the same events after it."""
    all_events = unique_responses(raw)
    cut = rng.randint(0, len(all_events))
    state = empty_state()
    apply_all(state, all_events[:cut], NO_PRUNING)
    saved = json.loads(json.dumps(state))
    first, _ = apply_all(state, all_events[cut:], NO_PRUNING)
    again, _ = apply_all(saved, json.loads(json.dumps(all_events[cut:])), NO_PRUNING)
    assert first == again and state == saved


def test_a_conversion_before_the_assignment_never_counts_one_after_it_always() -> None:
    state = empty_state()
    deltas = []
    for event in (["G", 5], ["X", 30, "exp_a"], ["A", 10, "exp_a", "treatment"], ["G", 20]):
        deltas += apply(state, event, NO_PRUNING).deltas
    totals = summed(deltas)
    assert totals[("ab", "exp_a", "treatment", 10, "assigned")] == 1
    # converted at the first conversion at or after the assignment: 20 (arrived last), not 5
    assert totals[("ab", "exp_a", "treatment", 20, "converted")] == 1
    assert not totals[("ab", "exp_a", "treatment", 30, "converted")]
    assert not totals[("ab", "exp_a", "treatment", 5, "converted")]
    assert state["a"]["exp_a"] == [10, "treatment", 20]


def test_an_earlier_assignment_arriving_late_moves_the_user() -> None:
    state = empty_state()
    first = apply(state, ["A", 20, "exp_a", "treatment"], NO_PRUNING)
    assert not first.reassignment
    apply(state, ["G", 25], NO_PRUNING)
    later = apply(state, ["A", 10, "exp_a", "control"], NO_PRUNING)
    assert later.reassignment
    assert state["a"]["exp_a"] == [10, "control", 25]
    moved = summed(later.deltas)
    assert moved[("ab", "exp_a", "treatment", 20, "assigned")] == -1
    assert moved[("ab", "exp_a", "treatment", 25, "converted")] == -1
    assert moved[("ab", "exp_a", "control", 10, "assigned")] == 1
    assert moved[("ab", "exp_a", "control", 25, "converted")] == 1
    ignored = apply(state, ["A", 40, "exp_a", "treatment"], NO_PRUNING)
    assert ignored.reassignment and not ignored.deltas


def test_a_click_before_its_response_is_credited_to_the_most_recent_response() -> None:
    state = empty_state()
    deltas = []
    for event in (
        ["C", 12, "i1"],  # arrives first: no response yet
        ["R", 5, "req1", "m1", "1.0", ["i1", "i2"]],
        ["R", 8, "req2", "m2", "1.0", ["i1"]],  # more recent: takes the credit from req1
        ["C", 13, "i1"],  # a second click on the same item: no second hit
        ["C", 30, "i2"],  # too late for req1 (5 + 10 < 30)
    ):
        deltas += apply(state, event, NO_PRUNING).deltas
    totals = summed(deltas)
    assert totals == Counter({
        ("ctr", "m1", "1.0", 5, "shown"): 2, ("ctr", "m2", "1.0", 8, "shown"): 1,
        ("ctr", "m2", "1.0", 8, "hits"): 1,
    })  # fmt: skip


def test_state_is_bounded_by_the_users_own_events() -> None:
    params = JoinParams(attribution_ms=10, horizon_ms=100)
    state = empty_state()
    for t in range(0, 5000, 7):
        apply(state, ["A", t, f"exp{t}", "control"], params)
        apply(state, ["G", t], params)
        apply(state, ["C", t, "i1"], params)
        apply(state, ["R", t, f"req{t}", "m1", "1.0", ["i1"]], params)
    newest = 4998
    assert all(t >= newest - 100 for t in state["g"])  # behind the newest A/B event
    assert all(c[0] >= newest - 100 for c in state["c"])  # behind the newest response
    assert all(r[0] >= newest - 110 for r in state["r"])  # behind the newest click
    assert len(state["r"]) <= 17
    # A backlog of A/B events far ahead of the clicks prunes no response: clicks for them may
    # still come (the topics are read at different speeds).
    behind = empty_state()
    for t in range(0, 2000, 7):
        apply(behind, ["R", t, f"req{t}", "m1", "1.0", ["i1"]], params)
    apply(behind, ["A", 10**6, "exp", "control"], params)
    assert len(behind["r"]) == len(range(0, 2000, 7))
    assert apply(behind, ["C", 5, "i1"], params).deltas  # credited to req0
    # and at most MAX_KEPT of each, the newest
    for t in range(2000, 4000):
        apply(behind, ["C", t, "i1"], params)
    assert len(behind["c"]) == MAX_KEPT and behind["c"][0][0] == 4000 - MAX_KEPT


def test_a_click_whose_response_is_no_longer_kept_keeps_its_credit() -> None:
    """Review finding: a click credited to a response since dropped (MAX_KEPT) must not be
    credited again to a newer response arriving late (one click, one hit)."""
    params = JoinParams(attribution_ms=10**6, horizon_ms=10**9)
    state = empty_state()
    deltas = apply(state, ["R", 0, "req-old", "m1", "1.0", ["i1"]], params).deltas
    deltas += apply(state, ["C", 10, "i1"], params).deltas
    for t in range(1, MAX_KEPT + 1):  # newer responses push req-old out
        deltas += apply(state, ["R", 100 + t, f"req{t:04d}", "m1", "1.0", ["i2"]], params).deltas
    assert all(r[1] != "req-old" for r in state["r"])
    deltas += apply(state, ["R", 5, "req-late", "m1", "1.0", ["i1"]], params).deltas
    assert sum(d["hits"] for kind, d in deltas if kind == "ctr") == 1


def test_shown_counts_distinct_items_as_hits_do() -> None:
    state = empty_state()
    deltas = apply(state, ["R", 0, "req", "m1", "1.0", ["i1", "i1", "i2"]], NO_PRUNING).deltas
    deltas += apply(state, ["C", 1, "i1"], NO_PRUNING).deltas
    shown = sum(d["shown"] for _, d in deltas)
    hits = sum(d["hits"] for _, d in deltas)
    assert (shown, hits) == (2, 1)
