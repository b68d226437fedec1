"""Aggregations as combine functions: create, add, merge, extract (Beam's ``CombineFn``).

An :class:`Aggregate` is the math of one derived table: the group key read from each event,
named fields each of one *kind* (:class:`Count`, :class:`Sum`, :class:`FloatSum`,
:class:`Min`, :class:`Max`, :class:`CountBy`, :class:`Sketch`), and a function from the
fields' values to the record's metric fields. A new aggregate is a declaration
(``models/<domain>.py``); windowing, tables, partials and publishing never change for it.

Its accumulator is a list: slot 0 counts the events folded in (the late-events metric counts
it), then one state per field in declaration order. Three properties, each for a reason:

- **mergeable**: ``merge`` is associative and commutative and ``create()`` is its identity, so
  the source side folds a fetch per key before the shuffle and the table side merges partials
  in whatever order they arrive (combiner lifting);
- **canonical**: the same events give equal accumulators whatever the split, order and
  grouping (:class:`FloatSum` keeps the exact sum, :class:`Sketch` integer bin counts, ties
  and labels normalised), so a window's record does not depend on how fetches were cut: a
  replay or a republished window carries the same numbers (only the order of a map's keys in
  the stored JSON may differ);
- **plain JSON data** (lists, dicts with string keys, ints, finite floats): partials, table
  values and changelog records carry it unchanged, and a JSON round trip changes nothing.

Events are folded a group at a time (:meth:`Aggregate.add_all`): each condition selects the
group's events once, each field folds its selection in one pass, the field reads and
conditions mapped in C where they can be (the hot path folds each fetch this way). Inputs are
the domain's validated events: a field's values must be present (not None) and finite; the
rules of ``app/validation/`` see to that.
"""

from __future__ import annotations

import math
import operator
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from ddsketch import DDSketch, LogarithmicMapping

__all__ = [
    "Accumulator",
    "Aggregate",
    "Count",
    "CountBy",
    "FieldKind",
    "FloatSum",
    "Getter",
    "Max",
    "Min",
    "Sketch",
    "Sum",
    "SumBy",
    "Where",
    "exact_sum_parts",
    "field_above",
    "field_in",
    "field_is",
    "getter",
    "mapper",
    "ratio",
]

Event = Mapping[str, Any]
#: A field's input: an event field path (``"download.speed_mbps"``) or a function of the event.
Getter = str | Callable[[Event], Any]
Accumulator = list[Any]
#: an aggregate's rows of one window: (window's values, running total's values) ->
#: [(extra group-key values, metric fields)]
Rows = Callable[[dict[str, Any], dict[str, Any]], list[tuple[tuple[str, ...], dict[str, Any]]]]


def ratio(numerator: float, denominator: float) -> float | None:
    """Contract ratios: null when the denominator is 0."""
    return numerator / denominator if denominator else None


def getter(path: Getter) -> Callable[[Event], Any]:
    """A function reading ``path`` (dotted for nested records) from one event."""
    if callable(path):
        return path
    parts = path.split(".")
    if len(parts) == 1:
        return operator.itemgetter(path)
    if len(parts) == 2:
        outer, inner = parts
        return lambda event: event[outer][inner]

    def get(event: Event) -> Any:
        value: Any = event
        for part in parts:
            value = value[part]
        return value

    return get


def mapper(path: Getter) -> Callable[[Iterable[Event]], Iterator[Any]]:
    """A function mapping events to their ``path`` values; for a field path a chain of
    ``map(itemgetter)``, so the whole pass runs in C (no Python call per event)."""
    if callable(path):
        return partial(map, path)
    getters = tuple(operator.itemgetter(part) for part in path.split("."))
    if len(getters) == 1:
        return partial(map, getters[0])

    def values(events: Iterable[Event]) -> Iterator[Any]:
        out: Iterator[Any] = iter(events)
        for get in getters:
            out = map(get, out)
        return out

    return values


class Where:
    """Which events a field counts: any predicate of the event, or (faster) a test of one
    field's value (:func:`field_is`, :func:`field_in`, :func:`field_above`), which selects a
    group of events in C. Fields sharing one condition object share its selection."""

    def __init__(self, predicate: Callable[[Event], bool]) -> None:
        self.matches = predicate

    def select(self, events: Sequence[Event]) -> Sequence[Event]:
        return [event for event in events if self.matches(event)]


class _FieldTest(Where):
    """A test of one field's value. Both the one-event test and the group selection read and
    compare the field inline (for top-level and once-nested fields): measured faster here
    than ``compress``/``map`` chains or a predicate call per event."""

    def __init__(self, path: str, op: str, operand: Any) -> None:
        parts = path.split(".")
        matches: Callable[[Event], bool]
        select: Callable[[Sequence[Event]], list[Event]]
        if len(parts) == 1 and op == "is":
            (a,) = parts
            matches = lambda e: e[a] == operand  # noqa: E731
            select = lambda events: [e for e in events if e[a] == operand]  # noqa: E731
        elif len(parts) == 1 and op == "in":
            (a,) = parts
            matches = lambda e: e[a] in operand  # noqa: E731
            select = lambda events: [e for e in events if e[a] in operand]  # noqa: E731
        elif len(parts) == 2 and op == "is":
            a, b = parts
            matches = lambda e: e[a][b] == operand  # noqa: E731
            select = lambda events: [e for e in events if e[a][b] == operand]  # noqa: E731
        else:
            get, test = getter(path), _TESTS[op]
            matches = lambda e: test(get(e), operand)  # noqa: E731
            select = lambda events: [e for e in events if test(get(e), operand)]  # noqa: E731
        super().__init__(matches)
        self.select = select  # type: ignore[method-assign]


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "is": operator.eq,
    "in": lambda value, values: value in values,
    "above": operator.gt,
}


def field_is(path: str, value: Any) -> Where:
    """Events whose ``path`` equals ``value``."""
    return _FieldTest(path, "is", value)


def field_in(path: str, values: Iterable[Any]) -> Where:
    """Events whose ``path`` is one of ``values`` (hashable values only)."""
    return _FieldTest(path, "in", frozenset(values))


def field_above(path: str, threshold: float) -> Where:
    """Events whose ``path`` is greater than ``threshold``."""
    return _FieldTest(path, "above", threshold)


def _exact_parts(pending: list[float]) -> list[float]:
    """:func:`exact_sum_parts` of ``pending`` (which it extends: the caller's scratch list)."""
    parts: list[float] = []
    while True:
        try:
            total = math.fsum(pending)
        except (OverflowError, ValueError):  # the exact sum is beyond a double, or inf - inf
            total = sum(pending)  # inf, -inf or nan: as plain addition would have it
        if total == 0.0:
            return parts
        parts.append(total)
        if not math.isfinite(total):
            return parts
        pending.append(-total)


def exact_sum_parts(values: Iterable[float]) -> list[float]:
    """The exact sum of ``values`` as its canonical expansion ``[p1, p2, ...]``.

    ``p1`` is the correctly rounded sum, ``p2`` the correctly rounded remainder, and so on until
    nothing remains (usually one or two parts), so the list depends only on the exact sum, not
    on the order or grouping of the values. ``math.fsum`` is correctly rounded, which is what
    makes each step exact; it runs in C, so this is cheap. A sum beyond the range of a double
    ends as ``[inf]`` (or ``[nan]``) instead of raising: the rules keep such inputs out, and a
    hot path must not crash on them (``orjson``, Faust's JSON, stores it as null, which
    :class:`FloatSum` reads back as NaN).
    """
    return _exact_parts(list(values))


class FieldKind(ABC):
    """One named field of an accumulator: how its state starts, grows, merges and reads.

    ``value`` says what the field reads from each event, ``where`` which events it counts
    (all when None; a predicate of the event or a :class:`Where`). A state is JSON data;
    ``merge`` may update ``state`` in place and returns the merged state, and never changes
    ``other`` or keeps a reference into it. ``fold`` gets the events ``where`` selected.
    """

    needs_value = True
    #: whether ``fold``, ``fold_one`` or ``merge`` change a state in place (a dict's counts):
    #: then every accumulator needs its own fresh state
    mutable_state = False

    def __init__(
        self,
        value: Getter | None = None,
        *,
        where: Where | Callable[[Event], bool] | None = None,
    ) -> None:
        if self.needs_value and value is None:
            raise TypeError(f"{type(self).__name__} needs the value it reads from each event")
        self.value = value
        self.values_of = mapper(value) if value is not None else None
        self.get = getter(value) if value is not None else None
        self.where = where if where is None or isinstance(where, Where) else Where(where)

    def values(self, selected: Sequence[Event]) -> Iterator[Any]:
        """The field's input values of the selected events."""
        assert self.values_of is not None
        return self.values_of(selected)

    def add_all(self, state: Any, events: Sequence[Event]) -> Any:
        """``state`` with those of ``events`` that ``where`` selects folded in."""
        return self.fold(state, events if self.where is None else self.where.select(events))

    @abstractmethod
    def create(self) -> Any:
        """The state of no events (merge's identity)."""

    @abstractmethod
    def fold(self, state: Any, selected: Sequence[Event]) -> Any:
        """``state`` with the ``selected`` events folded in."""

    @abstractmethod
    def fold_one(self, state: Any, event: Event) -> Any:
        """``state`` with one selected event folded in: :meth:`fold` of ``[event]``, without
        its per-group set-up (a high-cardinality key sees one event per fetch)."""

    @abstractmethod
    def merge(self, state: Any, other: Any) -> Any:
        """The state of both sets of events."""

    def extract(self, state: Any) -> Any:
        """The field's value for the record."""
        return state


class Count(FieldKind):
    """How many events (``where`` holds for)."""

    needs_value = False

    def create(self) -> int:
        return 0

    def fold(self, state: int, selected: Sequence[Event]) -> int:
        return state + len(selected)

    def fold_one(self, state: int, event: Event) -> int:
        return state + 1

    def merge(self, state: int, other: int) -> int:
        return state + other


class Sum(FieldKind):
    """Sum of an integer value (integer sums are exact in any order)."""

    def create(self) -> int:
        return 0

    def fold(self, state: int, selected: Sequence[Event]) -> int:
        return state + sum(self.values(selected))

    def fold_one(self, state: int, event: Event) -> int:
        assert self.get is not None
        return state + self.get(event)

    def merge(self, state: int, other: int) -> int:
        return state + other


def _parts(state: Any) -> list[float]:
    """A FloatSum state as a list of parts: null parts (a non-finite sum after a JSON round
    trip) read as NaN, and a bare number (a plain float sum, this field's shape before exact
    sums) as one part, so older table values and partials still merge."""
    if isinstance(state, list):
        return [math.nan if part is None else part for part in state]
    return [] if state is None else [float(state)]


class FloatSum(FieldKind):
    """Sum of a floating-point value, kept exact (:func:`exact_sum_parts`).

    Why not a plain float: float addition is not associative, so a plain sum would differ in
    its last digits with how fetches were cut and merged. The state is the sum's canonical
    expansion; the record gets the correctly rounded sum of the values as decoded.
    """

    def create(self) -> list[float]:
        return []

    def fold(self, state: list[float], selected: Sequence[Event]) -> list[float]:
        if not selected:
            return state
        pending = _parts(state)
        pending.extend(self.values(selected))
        return _exact_parts(pending)

    def fold_one(self, state: list[float], event: Event) -> list[float]:
        assert self.get is not None
        value = self.get(event)
        if not state and math.isfinite(value):
            return [value + 0.0] if value else []  # one double is its own exact expansion
        pending = _parts(state)
        pending.append(value)
        return _exact_parts(pending)

    def merge(self, state: list[float], other: list[float]) -> list[float]:
        more = _parts(other)
        return _exact_parts([*_parts(state), *more]) if more else state

    def extract(self, state: list[float]) -> float:
        parts = _parts(state)
        return math.fsum(parts) if all(map(math.isfinite, parts)) else sum(parts)


class Min(FieldKind):
    """Smallest value as a float (None for no events)."""

    pick = staticmethod(min)

    def create(self) -> float | None:
        return None

    def fold(self, state: float | None, selected: Sequence[Event]) -> float | None:
        best = self.pick(self.values(selected), default=None)
        if best is None:
            return state
        # float() and + 0.0: 1 and 1.0, -0.0 and 0.0 tie; whichever came first must not show.
        best = float(best) + 0.0
        return best if state is None else self.pick(state, best)

    def fold_one(self, state: float | None, event: Event) -> float | None:
        assert self.get is not None
        value = self.get(event)
        if value is None:
            return state
        value = float(value) + 0.0
        return value if state is None else self.pick(state, value)

    def merge(self, state: float | None, other: float | None) -> float | None:
        if other is None:
            return state
        return other if state is None else self.pick(state, other)


class Max(Min):
    """Largest value as a float (None for no events)."""

    pick = staticmethod(max)


class CountBy(FieldKind):
    """Events per label (a map label -> count); None labels are not counted, other labels are
    counted under their ``str()`` (JSON object keys are strings)."""

    mutable_state = True

    def create(self) -> dict[str, int]:
        return {}

    def fold(self, state: dict[str, int], selected: Sequence[Event]) -> dict[str, int]:
        counts = Counter(self.values(selected))
        counts.pop(None, None)
        if not all(type(label) is str for label in counts):
            # Convert before counting: 1, 1.0 and True are one Counter key, three labels.
            counts = Counter(
                lab if type(lab) is str else str(lab)
                for lab in self.values(selected)
                if lab is not None
            )
        for label, count in counts.items():
            state[label] = state.get(label, 0) + count
        return state

    def fold_one(self, state: dict[str, int], event: Event) -> dict[str, int]:
        assert self.get is not None
        label = self.get(event)
        if label is not None:
            name = label if type(label) is str else str(label)
            state[name] = state.get(name, 0) + 1
        return state

    def merge(self, state: dict[str, int], other: dict[str, int]) -> dict[str, int]:
        for name, count in other.items():
            state[name] = state.get(name, 0) + count
        return state

    def extract(self, state: dict[str, int]) -> dict[str, int]:
        return dict(sorted(state.items()))


class SumBy(FieldKind):
    """Sum of an integer value per label (a map label -> sum): :class:`CountBy` with a value.
    Values may be negative (a join's retractions, ``models/users.py``); labels as in
    :class:`CountBy`."""

    mutable_state = True

    def __init__(
        self,
        label: Getter,
        value: Getter,
        *,
        where: Where | Callable[[Event], bool] | None = None,
    ) -> None:
        super().__init__(value, where=where)
        self.label_of = getter(label)

    def create(self) -> dict[str, int]:
        return {}

    def fold(self, state: dict[str, int], selected: Sequence[Event]) -> dict[str, int]:
        for event in selected:
            self.fold_one(state, event)
        return state

    def fold_one(self, state: dict[str, int], event: Event) -> dict[str, int]:
        assert self.get is not None
        label = self.label_of(event)
        if label is not None:
            name = label if type(label) is str else str(label)
            state[name] = state.get(name, 0) + self.get(event)
        return state

    def merge(self, state: dict[str, int], other: dict[str, int]) -> dict[str, int]:
        for name, total in other.items():
            state[name] = state.get(name, 0) + total
        return state

    def extract(self, state: dict[str, int]) -> dict[str, int]:
        return dict(sorted(state.items()))


class Sketch(FieldKind):
    """A DDSketch of a value (quantiles within ``relative_accuracy``), mergeable exactly.

    The state is what a DDSketch holds, as JSON: ``{"p": {bin: count}, "n": {bin: count},
    "z": count}`` for positive values, negative values (by magnitude) and zeros, each bin the
    key of ddsketch's own ``LogarithmicMapping``; merging adds bin counts, as DDSketch's merge
    does. ``extract`` rebuilds a ``DDSketch``: ask it ``get_quantile_value(q)`` and ``count``;
    its min, max, sum and mean are bin representatives (declare ``Min``, ``Max``, ``FloatSum``
    fields for exact ones). Non-finite values are not counted. The bins depend on
    ``relative_accuracy``: changing it needs fresh tables (a new ``APP_ID``).
    """

    mutable_state = True

    def __init__(
        self,
        value: Getter,
        *,
        where: Where | Callable[[Event], bool] | None = None,
        relative_accuracy: float = 0.01,
    ) -> None:
        super().__init__(value, where=where)
        self.relative_accuracy = relative_accuracy
        self.mapping = LogarithmicMapping(relative_accuracy)

    def create(self) -> dict[str, Any]:
        return {"p": {}, "n": {}, "z": 0}

    def fold(self, state: dict[str, Any], selected: Sequence[Event]) -> dict[str, Any]:
        return self._bin(state, self.values(selected))

    def fold_one(self, state: dict[str, Any], event: Event) -> dict[str, Any]:
        assert self.get is not None
        return self._bin(state, (self.get(event),))

    def _bin(self, state: dict[str, Any], values: Iterable[float]) -> dict[str, Any]:
        key = self.mapping.key
        smallest, largest = self.mapping.min_possible, self.mapping.max_possible
        positive, negative = state["p"], state["n"]
        for value in values:
            if smallest < value <= largest:
                bins, bin_key = positive, str(key(value))
            elif -largest <= value < -smallest:
                bins, bin_key = negative, str(key(-value))
            elif -smallest <= value <= smallest:
                state["z"] += 1
                continue
            else:  # NaN, infinities, values beyond the mapping's range
                continue
            bins[bin_key] = bins.get(bin_key, 0) + 1
        return state

    def merge(self, state: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
        for side in ("p", "n"):
            bins = state[side]
            for bin_key, count in other[side].items():
                bins[bin_key] = bins.get(bin_key, 0) + count
        state["z"] += other["z"]
        return state

    def extract(self, state: dict[str, Any]) -> DDSketch:
        sketch = DDSketch(self.relative_accuracy)
        value = self.mapping.value
        for bin_key, count in state["p"].items():
            sketch.add(value(int(bin_key)), count)
        for bin_key, count in state["n"].items():
            sketch.add(-value(int(bin_key)), count)
        if state["z"]:
            sketch.add(0.0, state["z"])
        return sketch


#: The implicit first value of every aggregate: events folded in (accumulator slot 0).
EVENTS = "events"


class Aggregate:
    """One derived table's math, declared: group key, fields, record metrics.

    ``key`` maps each group-key field of the record to what it reads from the event (its
    values must be strings); ``fields`` names the accumulator's fields; ``metrics`` turns their
    values (a dict: every field's extracted value, plus ``events``) into the record's metric
    fields, in record order. The envelope's ``event_type``, ``privacy_tier`` and
    ``schema_version``, the web views' ``description`` and the derived ``topic`` (default: the
    table's name) come with it. ``cumulative`` aggregates publish running totals as of each
    window's end; ``rows`` (with ``row_key_fields``) turns one key's window into several
    records, or none.
    """

    def __init__(
        self,
        *,
        table: str,
        event_type: str,
        description: str,
        key: Mapping[str, Getter],
        fields: Mapping[str, FieldKind],
        metrics: Callable[[dict[str, Any]], dict[str, Any]],
        privacy_tier: str = "internal",
        schema_version: int = 1,
        topic: str | None = None,
        cumulative: bool = False,
        rows: Rows | None = None,
        row_key_fields: Sequence[str] = (),
    ) -> None:
        if EVENTS in fields:
            raise ValueError(f"{table}: '{EVENTS}' is every aggregate's event count already")
        if not key:
            raise ValueError(f"{table}: an aggregate needs a group key")
        self.table = table
        self.event_type = event_type
        self.description = description
        self.key_fields: tuple[str, ...] = tuple(key)
        self.fields: dict[str, FieldKind] = dict(fields)
        self._kinds = tuple(self.fields.values())
        self._metrics = metrics
        self.privacy_tier = privacy_tier
        self.schema_version = schema_version
        #: the derived topic its records go to: the table's name unless several tables feed
        #: one topic (``agg.model.metrics`` gets a table per metric source)
        self.topic = topic or table
        #: records as of a window's end since the first event (a closed window's accumulator
        #: is merged into the key's running total; a late contribution joins the total)
        self.cumulative = cumulative
        self._rows = rows
        #: group-key fields a row adds after the table key's (``ab.conversions``: variant)
        self.row_key_fields: tuple[str, ...] = tuple(row_key_fields)
        self.key_values: Callable[[Event], tuple[str, ...]] = _key_reader(tuple(key.values()))
        # create(): a copy of the empty accumulator, fresh states only where they change in place
        self._empty = [0, *(kind.create() for kind in self._kinds)]
        self._fresh = tuple((slot, kind.create) for slot, kind in enumerate(self._kinds, 1)
                            if kind.mutable_state)  # fmt: skip
        # add(): per field, its condition's test (None: every event) and its one-event fold
        self._one = tuple(
            (slot, kind.where.matches if kind.where is not None else None, kind.fold_one)
            for slot, kind in enumerate(self._kinds, 1)
        )

    def __repr__(self) -> str:
        return f"Aggregate({self.table!r})"

    # -- the combine function -------------------------------------------------------------------

    def create(self) -> Accumulator:
        """The accumulator of no events."""
        acc = self._empty[:]
        for slot, create in self._fresh:
            acc[slot] = create()
        return acc

    def add_all(self, acc: Accumulator, events: Sequence[Event]) -> None:
        """Fold ``events`` (all of one group key and window) into ``acc``, in place; each
        condition selects from them once, whichever fields share it."""
        if len(events) == 1:
            self.add(acc, events[0])
            return
        if not events:
            return
        acc[0] += len(events)
        selections: dict[int, Sequence[Event]] = {}
        for slot, kind in enumerate(self._kinds, 1):
            where = kind.where
            if where is None:
                selected = events
            else:
                selected = selections.get(id(where))  # conditions live as long as the kinds
                if selected is None:
                    selected = selections[id(where)] = where.select(events)
            acc[slot] = kind.fold(acc[slot], selected)

    def add(self, acc: Accumulator, event: Event) -> None:
        """Fold one event into ``acc``, in place (each field's ``fold_one``)."""
        acc[0] += 1
        for slot, matches, fold_one in self._one:
            if matches is None or matches(event):
                acc[slot] = fold_one(acc[slot], event)

    def merge(self, acc: Accumulator, other: Accumulator) -> Accumulator:
        """Merge ``other`` into ``acc`` in place (``other`` is left as it was); returns
        ``acc``."""
        acc[0] += other[0]
        for slot, kind in enumerate(self._kinds, 1):
            acc[slot] = kind.merge(acc[slot], other[slot])
        return acc

    def values(self, acc: Accumulator) -> dict[str, Any]:
        """Every field's value (and ``events``) from an accumulator."""
        out: dict[str, Any] = {EVENTS: acc[0]}
        for slot, (name, kind) in enumerate(self.fields.items(), 1):
            out[name] = kind.extract(acc[slot])
        return out

    def extract(self, acc: Accumulator) -> dict[str, Any]:
        """The record's metric fields from a window's accumulator."""
        return self._metrics(self.values(acc))

    def view(self, acc: Accumulator) -> dict[str, Any]:
        """What the web views show of one window: the record's metric fields, or, for an
        aggregate with ``rows`` (whose records need the running total), the window's own
        field values."""
        if self._rows is None:
            return self.extract(acc)
        return {name: value for name, value in self.values(acc).items() if name != EVENTS}

    def records(
        self, acc: Accumulator, total: Accumulator | None = None
    ) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """A closing window's rows: (extra group-key values, metric fields) each. One row of
        :meth:`extract` unless the aggregate declares ``rows``, a function of the window's
        values and (cumulative aggregates) the running total's, which may give several rows
        or none."""
        if self._rows is None:
            return [((), self.extract(total if total is not None else acc))]
        window = self.values(acc)
        return self._rows(window, self.values(total) if total is not None else window)

    @staticmethod
    def size(acc: Accumulator) -> int:
        """How many events ``acc`` holds."""
        return int(acc[0])

    # -- conveniences --------------------------------------------------------------------------

    def fold(self, events: Iterable[Event]) -> dict[tuple[str, ...], Accumulator]:
        """Fold ``events`` (of one window) into one accumulator per group key (pure)."""
        groups: dict[tuple[str, ...], list[Event]] = {}
        key_values = self.key_values
        for event in events:
            groups.setdefault(key_values(event), []).append(event)
        out: dict[tuple[str, ...], Accumulator] = {}
        for key, group in groups.items():
            out[key] = acc = self.create()
            self.add_all(acc, group)
        return out


def _key_reader(paths: tuple[Getter, ...]) -> Callable[[Event], tuple[str, ...]]:
    """A function returning an event's group-key values as a tuple (``itemgetter`` when every
    path is a top-level field: one C call)."""
    if all(isinstance(p, str) and "." not in p for p in paths):
        if len(paths) > 1:
            return operator.itemgetter(*paths)  # type: ignore[return-value]
        (name,) = paths
        return lambda event: (event[name],)
    if len(paths) == 1:
        get = getter(paths[0])
        return lambda event: (get(event),)
    getters = tuple(getter(p) for p in paths)
    return lambda event: tuple(get(event) for get in getters)
