"""A seeded data set for the per-user join, and its oracle (``ab.conversions``, CTR).

The events are built here (the simulator's factories give the shape of each record), with the
cases the contract's rules single out: users assigned twice (the later assignment ignored, or
an earlier one arriving after a later one), conversions before the assignment in event time
(never counted), conversions that arrive before the assignment they follow (counted), clicks
before their response arrives, clicks too late for attribution, clicks on items the response
did not list, and error responses. The oracle computes the records from the definitions with
plain Python and scipy (``norm.sf``), sharing no code with ``models/``.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import norm

from app.tools.simulator import lens, orders
from app.tools.simulator.population import Population, rng_uuid

WINDOW_MS = 10_000
BASE_MS = 1_754_922_600_000  # aligned to the window
SPAN_MS = 38_000
ATTRIBUTION_MS = 5_000
EXPERIMENTS = {"exp_checkout": ("control", "treatment"),
               "exp_ranker": ("control", "treatment", "treatment_b")}  # fmt: skip
TRUE_RATES = {"control": 0.25, "treatment": 0.45, "treatment_b": 0.35}
MODELS = (("collab_filter_als", "2.3.1"), ("neural_two_tower", "1.4.0"))
ITEMS = [f"item_{i:04d}" for i in range(12)]
JOIN_TOPICS = ("ab-test-events", "user-interactions", "orders.raw", "recommendation-responses")


@dataclass
class JoinData:
    """(key, event) per topic, in the order they are produced; and the facts of the cases."""

    by_topic: dict[str, list[tuple[str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    reassignments: int = 0


def _window(t: int) -> int:
    return t - t % WINDOW_MS


def build(seed: int = 7, users: int = 160) -> JoinData:
    rng = random.Random(seed)
    population = Population(seed=seed, size=50)
    templates = {f.topic: f.make(rng, BASE_MS)[1] for f in lens.factories(population)}
    order_factory = orders.OrderFactory(population)
    order_template = next(
        v for _, v in (order_factory.make(rng, BASE_MS) for _ in range(50))
        if v["event_type"] == "ORDER_CREATED"
    )  # fmt: skip
    data = JoinData()
    timed: dict[str, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)

    def ab(user: str, experiment: str, variant: str, kind: str, t: int) -> None:
        event = {**templates["ab-test-events"], "eventId": rng_uuid(rng), "experimentId":
                 experiment, "userId": user, "variant": variant, "eventType": kind,
                 "timestamp": t, "value": None, "metricName": None}  # fmt: skip
        timed["ab-test-events"].append((t, user, event))

    def interaction(user: str, kind: str, item: str, t: int) -> None:
        event = {**templates["user-interactions"], "eventId": rng_uuid(rng), "userId": user,
                 "interactionType": kind, "itemId": item, "timestamp": t, "rating": None,
                 "searchQuery": None}  # fmt: skip
        timed["user-interactions"].append((t, user, event))

    def order(user: str, t: int) -> None:
        order_id = f"ord_{rng.getrandbits(40):010x}"
        event = {
            **order_template,
            "event_id": rng_uuid(rng),
            "order_id": order_id,
            "timestamp": t,
            "payload": {**order_template["payload"], "user_id": user},
        }
        timed["orders.raw"].append((t, order_id, event))

    def respond(user: str, t: int, status: str, items: list[str]) -> str:
        model, version = rng.choice(MODELS)
        request_id = rng_uuid(rng)
        event = {
            **templates["recommendation-responses"],
            "requestId": request_id,
            "timestamp": t,
            "userId": user,
            "modelName": model,
            "modelVersion": version,
            "recommendations": [
                {"itemId": item, "score": 0.5, "rank": rank, "itemCategory": "books"}
                for rank, item in enumerate(items, 1)
            ],
            "processingTime": 12.5,
            "status": status,
            "errorMessage": "model server unavailable" if status == "error" else None,
        }
        timed["recommendation-responses"].append((t, user, event))  # fmt: skip
        return request_id

    def when() -> int:
        return BASE_MS + rng.randrange(SPAN_MS)

    for index in range(users):
        user = f"user_{index:04d}"
        for experiment, variants in EXPERIMENTS.items():
            if rng.random() < 0.1:
                continue  # not in this experiment
            variant = rng.choice(variants)
            t_assign = when()
            ab(user, experiment, variant, "assignment", t_assign)
            if rng.random() < 0.12:  # assigned again: later (ignored) or earlier (wins)
                ab(user, experiment, rng.choice(variants), "assignment", when())
                data.reassignments += 1
            if rng.random() < TRUE_RATES[variant]:
                t_conv = min(BASE_MS + SPAN_MS - 1, t_assign + rng.randrange(1, 15_000))
                kind = rng.choice(("ab", "purchase", "order"))
                if kind == "ab":
                    ab(user, experiment, rng.choice(variants), "conversion", t_conv)
                elif kind == "purchase":
                    interaction(user, "purchase", rng.choice(ITEMS), t_conv)
                else:
                    order(user, t_conv)
            if rng.random() < 0.15:  # a conversion before the assignment: never counts
                t_before = t_assign - rng.randrange(1, 5_000)
                if t_before >= BASE_MS:
                    ab(user, experiment, variant, "conversion", t_before)
        for _ in range(rng.randrange(0, 4)):
            t_resp = when()
            if rng.random() < 0.1:
                respond(user, t_resp, "error", [])
                continue
            shown = rng.sample(ITEMS, rng.randint(2, 5))
            respond(user, t_resp, rng.choice(("success", "success", "partial")), shown)
            for item in shown:
                draw = rng.random()
                if draw < 0.3:
                    interaction(user, "click", item, t_resp + rng.randrange(0, ATTRIBUTION_MS))
                elif draw < 0.35:  # too late to be attributed
                    interaction(user, "click", item,
                                t_resp + ATTRIBUTION_MS + rng.randrange(1, 3000))  # fmt: skip
                elif draw < 0.4:  # a second click on the same item: no second hit
                    t_click = t_resp + rng.randrange(0, ATTRIBUTION_MS)
                    interaction(user, "click", item, t_click)
                    interaction(user, "click", item, t_click + 100)
            if rng.random() < 0.2:
                interaction(user, "click", rng.choice(ITEMS), t_resp - rng.randrange(1, 2000))
            if rng.random() < 0.3:
                interaction(user, "view", rng.choice(ITEMS), t_resp + 50)
    # Arrival order: by event time, jittered by up to 1 s within each topic (less than the
    # 2 s of grace), so the topics interleave differently from event time.
    last = BASE_MS + SPAN_MS + ATTRIBUTION_MS + 3000
    for topic, items in timed.items():
        items = [item for item in items if item[0] < last]
        items.sort(key=lambda item: item[0] + rng.randrange(0, 1000))
        data.by_topic[topic] = [(key, event) for _, key, event in items]
    # Cases arriving before what they follow: an A/B conversion produced before its assignment
    # (same partition, so really read first), a click before its response.
    ab_events = data.by_topic["ab-test-events"]
    ab_events.insert(0, ("user_early", {**ab_events[0][1], "eventId": rng_uuid(rng),
                                        "userId": "user_early", "experimentId": "exp_checkout",
                                        "variant": "control", "eventType": "conversion",
                                        "timestamp": BASE_MS + 4_200}))  # fmt: skip
    ab_events.insert(1, ("user_early", {**ab_events[0][1], "eventId": rng_uuid(rng),
                                        "eventType": "assignment", "variant": "treatment",
                                        "timestamp": BASE_MS + 4_000}))  # fmt: skip
    return data


def _first_assignments(events: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, str]]:
    first: dict[tuple[str, str], tuple[int, str]] = {}
    for e in events:
        if e["eventType"] == "assignment":
            key = (e["experimentId"], e["userId"])
            if key not in first or (e["timestamp"], e["variant"]) < first[key]:
                first[key] = (e["timestamp"], e["variant"])
    return first


def ab_oracle(data: JoinData) -> dict[tuple[int, str, str], dict[str, Any]]:
    """(window start, experiment, variant) -> the ab.conversions record's metric fields."""
    ab_events = [e for _, e in data.by_topic["ab-test-events"]]
    first = _first_assignments(ab_events)
    generic: dict[str, list[int]] = defaultdict(list)
    for _, e in data.by_topic["user-interactions"]:
        if e["interactionType"] == "purchase":
            generic[e["userId"]].append(e["timestamp"])
    for _, e in data.by_topic["orders.raw"]:
        if e["event_type"] == "ORDER_CREATED":
            generic[e["payload"]["user_id"]].append(e["timestamp"])
    own: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in ab_events:
        if e["eventType"] == "conversion":
            own[(e["experimentId"], e["userId"])].append(e["timestamp"])
    # per experiment: users' (variant, assigned at, converted at or None); active windows
    users: dict[str, list[tuple[str, int, int | None]]] = defaultdict(list)
    active: dict[str, set[int]] = defaultdict(set)
    for (experiment, user), (t_a, variant) in first.items():
        times = sorted(t for t in (*own[(experiment, user)], *generic[user]) if t >= t_a)
        users[experiment].append((variant, t_a, times[0] if times else None))
        active[experiment].add(_window(t_a))
        active[experiment].update(_window(t) for t in times)
    out: dict[tuple[int, str, str], dict[str, Any]] = {}
    for experiment, windows in active.items():
        for start in sorted(windows):
            end = start + WINDOW_MS
            counts: dict[str, list[int]] = {}
            for variant, t_a, t_c in users[experiment]:
                if t_a < end:
                    n_x = counts.setdefault(variant, [0, 0])
                    n_x[0] += 1
                    n_x[1] += t_c is not None and t_c < end
            control = counts.get("control")
            for variant, (n, x) in counts.items():
                rate = x / n
                lift = z = p = None
                if variant != "control" and control:
                    n0, x0 = control
                    rate0 = x0 / n0
                    lift = (rate - rate0) / rate0 if rate0 else None
                    pooled = (x + x0) / (n + n0)
                    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
                    if se:
                        z = (rate - rate0) / se
                        p = float(2 * norm.sf(abs(z)))
                out[(start, experiment, variant)] = {
                    "assigned_users": n, "converted_users": x, "conversion_rate": rate,
                    "lift_vs_control": lift, "z_score": z, "p_value": p,
                }  # fmt: skip
    return out


def ctr_oracle(data: JoinData) -> dict[tuple[int, str, str], dict[str, Any]]:
    """(window start, model, version) -> the ctr record's count (items shown) and mean."""
    responses = [e for _, e in data.by_topic["recommendation-responses"] if e["status"] != "error"]
    shown: dict[tuple[int, str, str], int] = defaultdict(int)
    for r in responses:
        shown[(_window(r["timestamp"]), r["modelName"], r["modelVersion"])] += len(
            r["recommendations"]
        )
    hits: set[tuple[str, str]] = set()
    for _, e in data.by_topic["user-interactions"]:
        if e["interactionType"] != "click":
            continue
        candidates = [
            r for r in responses
            if r["userId"] == e["userId"]
            and r["timestamp"] <= e["timestamp"] <= r["timestamp"] + ATTRIBUTION_MS
            and e["itemId"] in {i["itemId"] for i in r["recommendations"]}
        ]  # fmt: skip
        if candidates:
            best = max(candidates, key=lambda r: (r["timestamp"], r["requestId"]))
            hits.add((best["requestId"], e["itemId"]))
    hit_count: dict[tuple[int, str, str], int] = defaultdict(int)
    by_id = {r["requestId"]: r for r in responses}
    for request_id, _ in hits:
        r = by_id[request_id]
        hit_count[(_window(r["timestamp"]), r["modelName"], r["modelVersion"])] += 1
    return {key: {"count": n, "mean": hit_count[key] / n} for key, n in shown.items()}
