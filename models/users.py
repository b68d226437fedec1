"""The per-user join: A/B assignments and conversions, recommendations and their clicks.

Pure functions over one user's state (JSON data, the value of the ``users`` table keyed by user
id, ``app/engine/join.py``) and that user's join events, in the order the user's partition of
the repartition topic holds them. Each event updates the state and returns *deltas*: signed
contributions to the windowed aggregates downstream (``ab.conversions``, the ``ctr`` metric of
``agg.model.metrics``), each in the window of the event time it is about.

Why deltas: events arrive in any order (other topics, partitions, workers). What a user
contributes downstream is a function of the *set* of its events (first assignment, first
conversion at or after it, the most recent response a click belongs to); each event moves that
contribution from its value before to its value after, and the delta is the difference. Summed
downstream, the deltas of any arrival order give the contribution of the set, so the
aggregates do not depend on arrival order. Why deterministic (no clock, no randomness): after a
crash the same events are replayed against the same state and must give the same deltas, which
the downstream marks then recognise (``app/engine/windowing.py``).

Join events (compact lists, as they travel on the repartition topic):

- ``["A", t, experiment, variant]``: an A/B assignment;
- ``["X", t, experiment]``: an A/B ``conversion`` event (its variant is not used);
- ``["G", t]``: a conversion for every experiment (a ``purchase`` interaction, an
  ``ORDER_CREATED`` order);
- ``["R", t, request_id, model, version, items]``: a ``success`` or ``partial`` response;
- ``["C", t, item]``: a ``click`` interaction.

Rules (contract section 3): a user's first assignment per experiment (earliest event time; a
tie goes to the smaller variant name) fixes variant and time; any other assignment is a
reassignment, ignored and counted. The user converts at the first conversion at or after the
assignment. A click is credited to the most recent response (by time, then request id) of the
same user that listed the item, at most ``attribution_ms`` before the click; a response's hits
are its items with at least one credited click.

State kept (bounded, and a function of the user's own events only, so a replay gives the
same state): assignments for good (one per experiment); conversions for ``horizon_ms`` behind
the user's newest A/B event (``"t"["A"]``: only an assignment needs them, and an on-time one
is not older than that), clicks behind the user's newest response (``"t"["R"]``: only a
response takes a click's credit), responses ``attribution_ms`` longer behind the user's newest
click (``"t"["C"]``); and at most :data:`MAX_KEPT` of each. Why per kind and not behind the
user's newest event of any kind: topics are read at different speeds (a backlog), so a user's
newest A/B event may be minutes ahead of the clicks still to come for its responses. Why not
behind the partition's watermark: that follows the wall clock when sources idle, and differs
in a replay. An event older than its horizon is applied against what is kept (whatever it
would have matched is gone).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

__all__ = [
    "MAX_KEPT",
    "Delta",
    "JoinParams",
    "UserJoinResult",
    "ab_join_event",
    "apply",
    "apply_all",
    "empty_state",
    "interaction_join_event",
    "order_join_event",
    "response_join_event",
]

#: conversions, clicks and responses kept per user at most (a bot cannot grow a state unbounded)
MAX_KEPT = 500

#: a delta: (downstream aggregate: "ab" or "ctr", its event)
Delta = tuple[str, dict[str, Any]]


class JoinParams:
    """The join's windows: how long a click may follow its response, and how long events are
    kept behind the user's newest one."""

    __slots__ = ("attribution_ms", "horizon_ms")

    def __init__(self, attribution_ms: int, horizon_ms: int) -> None:
        self.attribution_ms = attribution_ms
        self.horizon_ms = horizon_ms


class UserJoinResult:
    """What one event did: its deltas, and whether it was a reassignment."""

    __slots__ = ("deltas", "reassignment")

    def __init__(self) -> None:
        self.deltas: list[Delta] = []
        self.reassignment = False


def empty_state() -> dict[str, Any]:
    return {"t": {}, "a": {}, "x": {}, "g": [], "r": [], "c": []}


def _ab(out: UserJoinResult, experiment: str, variant: str, t: int, **changes: int) -> None:
    event = {"experiment_id": experiment, "variant": variant, "ts": t,
             "assigned": 0, "converted": 0, "activity": 0}  # fmt: skip
    event.update(changes)
    out.deltas.append(("ab", event))


def _ctr(out: UserJoinResult, response: list[Any], shown: int, hits: int) -> None:
    t, _, model, version = response[:4]
    event = {"modelName": model, "modelVersion": version, "ts": t, "shown": shown, "hits": hits}
    out.deltas.append(("ctr", event))


def _conversions(state: dict[str, Any], experiment: str) -> list[int]:
    """Conversion times that count for ``experiment``, sorted."""
    own = state["x"].get(experiment, ())
    return sorted((*own, *state["g"])) if own else state["g"]


def _first_at_or_after(times: list[int], t: int) -> int | None:
    index = bisect.bisect_left(times, t)
    return times[index] if index < len(times) else None


def _assign(state: dict[str, Any], event: list[Any], out: UserJoinResult) -> None:
    _, t, experiment, variant = event
    current = state["a"].get(experiment)
    if current is not None and (current[0], current[1]) <= (t, variant):
        out.reassignment = True  # a later (or the same) assignment: ignored
        return
    times = _conversions(state, experiment)
    if current is None:
        qualifying = times[bisect.bisect_left(times, t) :]
    else:
        out.reassignment = True  # an earlier assignment arrived late: it wins
        old_t, old_variant, old_converted = current
        _ab(out, experiment, old_variant, old_t, assigned=-1, activity=-1)
        if old_converted is not None:
            _ab(out, experiment, old_variant, old_converted, converted=-1)
        # conversions between the new and the old assignment now qualify too
        qualifying = times[bisect.bisect_left(times, t) : bisect.bisect_left(times, old_t)]
    converted = _first_at_or_after(times, t)
    state["a"][experiment] = [t, variant, converted]
    _ab(out, experiment, variant, t, assigned=1, activity=1)
    if converted is not None:
        _ab(out, experiment, variant, converted, converted=1)
    for q in qualifying:
        _ab(out, experiment, variant, q, activity=1)


def _convert(
    state: dict[str, Any], t: int, experiments: Iterable[str], out: UserJoinResult
) -> None:
    """A conversion at ``t`` for ``experiments`` the user is assigned to."""
    assignments = state["a"]
    for experiment in sorted(experiments):
        assignment = assignments.get(experiment)
        if assignment is None or t < assignment[0]:
            continue  # not assigned, or before the assignment: never counts
        _, variant, converted = assignment
        _ab(out, experiment, variant, t, activity=1)
        if converted is None or t < converted:
            if converted is not None:
                _ab(out, experiment, variant, converted, converted=-1)
            _ab(out, experiment, variant, t, converted=1)
            assignment[2] = t


def _order(entry: list[Any]) -> tuple[int, str]:
    """A response's recency: time, then request id (a deterministic tie-break)."""
    return entry[0], entry[1]


def _best_response(
    state: dict[str, Any], t: int, item: str, attribution_ms: int
) -> list[Any] | None:
    best = None
    for response in state["r"]:
        matches = response[0] <= t <= response[0] + attribution_ms and item in response[4]
        if matches and (best is None or _order(response) > _order(best)):
            best = response
    return best


def _credit(response: list[Any], item: str, step: int, out: UserJoinResult) -> None:
    """Add (``step`` 1) or remove (-1) one credited click on ``item`` of ``response``; its hits
    change when an item gets its first credited click or loses its last."""
    hits = response[5]
    count = hits.get(item, 0) + step
    if count:
        hits[item] = count
    else:
        hits.pop(item, None)
    if (step > 0 and count == 1) or (step < 0 and count == 0):
        _ctr(out, response, 0, step)


def _respond(
    state: dict[str, Any], event: list[Any], params: JoinParams, out: UserJoinResult
) -> None:
    _, t, request_id, model, version, items = event
    if any(r[1] == request_id for r in state["r"]):
        return  # the same response twice
    response = [t, request_id, model, version, sorted(set(items)), {}]
    state["r"].append(response)
    state["r"].sort(key=_order)
    _ctr(out, response, len(response[4]), 0)  # the distinct items listed
    by_id = {r[1]: r for r in state["r"]}
    listed = set(response[4])
    for click in state["c"]:
        click_t, item, credited = click
        if item not in listed or not t <= click_t <= t + params.attribution_ms:
            continue
        old = by_id.get(credited) if credited is not None else None
        if credited is not None and old is None:
            continue  # its response is no longer kept: the credit (and hit) stay where they are
        if old is not None and _order(old) >= _order(response):
            continue
        if old is not None:
            _credit(old, item, -1, out)
        _credit(response, item, 1, out)
        click[2] = request_id


def _click(
    state: dict[str, Any], event: list[Any], params: JoinParams, out: UserJoinResult
) -> None:
    _, t, item = event
    response = _best_response(state, t, item, params.attribution_ms)
    state["c"].append([t, item, response[1] if response is not None else None])
    if response is not None:
        _credit(response, item, 1, out)


#: per join event kind, the newest-time slot it advances (``"t"``)
_CLOCK = {"A": "A", "X": "A", "R": "R", "C": "C"}


def _prune(state: dict[str, Any], params: JoinParams) -> None:
    """Forget what no on-time event can match any more (see the module docstring)."""
    newest = state["t"]
    horizon = params.horizon_ms
    conversions_from = newest.get("A", 0) - horizon
    state["g"] = [t for t in state["g"] if t >= conversions_from][-MAX_KEPT:]
    for experiment, times in list(state["x"].items()):
        kept = [t for t in times if t >= conversions_from][-MAX_KEPT:]
        if kept:
            state["x"][experiment] = kept
        else:
            del state["x"][experiment]
    clicks_from = newest.get("R", 0) - horizon
    clicks = [c for c in state["c"] if c[0] >= clicks_from]
    clicks.sort(key=lambda c: c[0])
    state["c"] = clicks[-MAX_KEPT:]
    responses_from = newest.get("C", 0) - horizon - params.attribution_ms
    state["r"] = [r for r in state["r"] if r[0] >= responses_from][-MAX_KEPT:]


def apply(state: dict[str, Any], event: list[Any], params: JoinParams) -> UserJoinResult:
    """Apply one join event to ``state`` (in place); return its deltas."""
    out = UserJoinResult()
    kind, t = event[0], event[1]
    if kind == "A":
        _assign(state, event, out)
    elif kind == "X":
        bisect.insort(state["x"].setdefault(event[2], []), t)
        _convert(state, t, (event[2],), out)
    elif kind == "G":
        bisect.insort(state["g"], t)
        _convert(state, t, state["a"], out)
    elif kind == "R":
        _respond(state, event, params, out)
    elif kind == "C":
        _click(state, event, params, out)
    else:
        raise ValueError(f"unknown join event kind {kind!r}")
    slot = _CLOCK.get(kind)
    if slot is not None and t > state["t"].get(slot, 0):
        state["t"][slot] = t
    _prune(state, params)
    return out


def apply_all(
    state: dict[str, Any], events: Iterable[list[Any]], params: JoinParams
) -> tuple[list[Delta], int]:
    """Apply ``events`` in order; return all their deltas and how many were reassignments."""
    deltas: list[Delta] = []
    reassignments = 0
    for event in events:
        result = apply(state, event, params)
        deltas.extend(result.deltas)
        reassignments += result.reassignment
    return deltas, reassignments


# -- the join's inputs: a source event as (user id, join event), None when not needed --------


def ab_join_event(event: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """``ab-test-events``: assignments and conversions (engagement and metric events are not
    part of the contract's conversions)."""
    kind = event["eventType"]
    if kind == "assignment":
        return event["userId"], ["A", event["timestamp"], event["experimentId"], event["variant"]]
    if kind == "conversion":
        return event["userId"], ["X", event["timestamp"], event["experimentId"]]
    return None


def interaction_join_event(event: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """``user-interactions``: a purchase converts, a click may be a recommendation's hit."""
    kind = event["interactionType"]
    if kind == "purchase":
        return event["userId"], ["G", event["timestamp"]]
    if kind == "click":
        return event["userId"], ["C", event["timestamp"], event["itemId"]]
    return None


def order_join_event(event: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """``orders.raw``: an ``ORDER_CREATED`` order converts its user (``payload.user_id``)."""
    if event["event_type"] != "ORDER_CREATED":
        return None
    user = event["payload"].get("user_id")
    return (user, ["G", event["timestamp"]]) if user else None


def response_join_event(event: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """``recommendation-responses``: the items a success or partial response showed."""
    if event["status"] == "error":
        return None
    items = [item["itemId"] for item in event["recommendations"]]
    return event["userId"], [
        "R", event["timestamp"], event["requestId"], event["modelName"], event["modelVersion"],
        items,
    ]  # fmt: skip
