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
- **canonical**: the same events give the same accumulator whatever the split, order and
  grouping (:class:`FloatSum` keeps the exact sum, :class:`Sketch` integer bin counts), so a
  window's record does not depend on how fetches were cut: a replay or a republished window
  carries the same numbers;
- **plain JSON data** (lists, dicts with string keys, ints, floats, None): partials, table
  values and changelog records carry it unchanged, and a JSON round trip changes nothing.

Events are folded a group at a time (:meth:`Aggregate.add_all`): one pass per field over the
events of one key and window, with the getters mapped in C where they can be (the hot path
folds each fetch this way).
"""

from __future__ import annotations

import math
import operator
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import compress
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
    group of events in C."""

    def __init__(self, predicate: Callable[[Event], bool]) -> None:
        self._predicate = predicate

    def __call__(self, event: Event) -> bool:
        return bool(self._predicate(event))

    def select(self, events: Sequence[Event]) -> Sequence[Event]:
        return [event for event in events if self._predicate(event)]

    def count(self, events: Sequence[Event]) -> int:
        return sum(map(bool, map(self._predicate, events)))


class _FieldTest(Where):
    def __init__(self, path: str, test: Callable[[Any], bool]) -> None:
        self._get = getter(path)
        self._values = mapper(path)
        self._test = test
        super().__init__(lambda event: test(self._get(event)))

    def select(self, events: Sequence[Event]) -> Sequence[Event]:
        return list(compress(events, map(self._test, self._values(events))))

    def count(self, events: Sequence[Event]) -> int:
        return sum(map(self._test, self._values(events)))


def field_is(path: str, value: Any) -> Where:
    """Events whose ``path`` equals ``value``."""
    return _FieldTest(path, partial(operator.eq, value))


def field_in(path: str, values: Iterable[Any]) -> Where:
    """Events whose ``path`` is one of ``values``."""
    return _FieldTest(path, frozenset(values).__contains__)


def field_above(path: str, threshold: float) -> Where:
    """Events whose ``path`` is greater than ``threshold``."""
    return _FieldTest(path, partial(operator.lt, threshold))


def exact_sum_parts(values: Iterable[float]) -> list[float]:
    """The exact sum of ``values`` as its canonical expansion ``[p1, p2, ...]``.

    ``p1`` is the correctly rounded sum, ``p2`` the correctly rounded remainder, and so on until
    nothing remains (usually one or two parts), so the list depends only on the exact sum, not
    on the order or grouping of the values. ``math.fsum`` is correctly rounded, which is what
    makes each step exact; it runs in C, so this is cheap. Non-finite sums stay as they are.
    """
    pending = list(values)
    parts: list[float] = []
    while True:
        total = math.fsum(pending)
        if total == 0.0:
            return parts
        parts.append(total)
        if not math.isfinite(total):
            return parts
        pending.append(-total)


class FieldKind(ABC):
    """One named field of an accumulator: how its state starts, grows, merges and reads.

    ``value`` says what the field reads from each event, ``where`` which events it counts
    (all when None; a predicate of the event or a :class:`Where`). A state is JSON data;
    ``merge`` may update ``state`` in place and returns the merged state, and never changes
    ``other`` or keeps a reference into it.
    """

    needs_value = True

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
        self.where = where if where is None or isinstance(where, Where) else Where(where)

    def selected(self, events: Sequence[Event]) -> Sequence[Event]:
        """The events this field counts."""
        return events if self.where is None else self.where.select(events)

    def values(self, events: Sequence[Event]) -> Iterator[Any]:
        """The field's input values of the events it counts."""
        assert self.values_of is not None
        return self.values_of(self.selected(events))

    @abstractmethod
    def create(self) -> Any:
        """The state of no events (merge's identity)."""

    @abstractmethod
    def add_all(self, state: Any, events: Sequence[Event]) -> Any:
        """``state`` with ``events`` folded in."""

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

    def add_all(self, state: int, events: Sequence[Event]) -> int:
        return state + (len(events) if self.where is None else self.where.count(events))

    def merge(self, state: int, other: int) -> int:
        return state + other


class Sum(FieldKind):
    """Sum of an integer value (integer sums are exact in any order)."""

    def create(self) -> int:
        return 0

    def add_all(self, state: int, events: Sequence[Event]) -> int:
        return state + sum(self.values(events))

    def merge(self, state: int, other: int) -> int:
        return state + other


class FloatSum(FieldKind):
    """Sum of a floating-point value, kept exact (:func:`exact_sum_parts`).

    Why not a plain float: float addition is not associative, so a plain sum would differ in
    its last digits with how fetches were cut and merged. The state is the sum's canonical
    expansion; the record gets the correctly rounded sum of the values as decoded.
    """

    def create(self) -> list[float]:
        return []

    def add_all(self, state: list[float], events: Sequence[Event]) -> list[float]:
        pending = [*state, *self.values(events)]
        return exact_sum_parts(pending) if len(pending) > len(state) else state

    def merge(self, state: list[float], other: list[float]) -> list[float]:
        return exact_sum_parts([*state, *other]) if other else state

    def extract(self, state: list[float]) -> float:
        return math.fsum(state)


class Min(FieldKind):
    """Smallest value (None for no events)."""

    pick = staticmethod(min)

    def create(self) -> Any:
        return None

    def add_all(self, state: Any, events: Sequence[Event]) -> Any:
        best = self.pick(self.values(events), default=None)
        if best is None:
            return state
        return best if state is None else self.pick(state, best)

    def merge(self, state: Any, other: Any) -> Any:
        if other is None:
            return state
        return other if state is None else self.pick(state, other)


class Max(Min):
    """Largest value (None for no events)."""

    pick = staticmethod(max)


class CountBy(FieldKind):
    """Events per label (a map label -> count); None labels are not counted, other labels are
    counted under their ``str()`` (JSON object keys are strings)."""

    def create(self) -> dict[str, int]:
        return {}

    def add_all(self, state: dict[str, int], events: Sequence[Event]) -> dict[str, int]:
        for label, count in Counter(self.values(events)).items():
            if label is None:
                continue
            name = label if type(label) is str else str(label)
            state[name] = state.get(name, 0) + count
        return state

    def merge(self, state: dict[str, int], other: dict[str, int]) -> dict[str, int]:
        for name, count in other.items():
            state[name] = state.get(name, 0) + count
        return state

    def extract(self, state: dict[str, int]) -> dict[str, int]:
        return dict(sorted(state.items()))


class Sketch(FieldKind):
    """A DDSketch of a value (quantiles within ``relative_accuracy``), mergeable exactly.

    The state is what a DDSketch holds, as JSON: ``{"p": {bin: count}, "n": {bin: count},
    "z": count}`` for positive values, negative values (by magnitude) and zeros, each bin the
    key of ddsketch's own ``LogarithmicMapping``; merging adds bin counts, as DDSketch's merge
    does. ``extract`` rebuilds a ``DDSketch`` (ask it ``get_quantile_value(q)``).
    """

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

    def add_all(self, state: dict[str, Any], events: Sequence[Event]) -> dict[str, Any]:
        key = self.mapping.key
        smallest = self.mapping.min_possible
        positive, negative = state["p"], state["n"]
        for value in self.values(events):
            if value > smallest:
                bins, bin_key = positive, str(key(value))
            elif value < -smallest:
                bins, bin_key = negative, str(key(-value))
            else:
                state["z"] += 1
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
    ``schema_version`` and the web views' ``description`` come with it.
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
        self.key_values: Callable[[Event], tuple[str, ...]] = _key_reader(tuple(key.values()))

    def __repr__(self) -> str:
        return f"Aggregate({self.table!r})"

    # -- the combine function -------------------------------------------------------------------

    def create(self) -> Accumulator:
        """The accumulator of no events."""
        return [0, *(kind.create() for kind in self._kinds)]

    def add_all(self, acc: Accumulator, events: Sequence[Event]) -> None:
        """Fold ``events`` (all of one group key and window) into ``acc``, in place."""
        if not events:
            return
        acc[0] += len(events)
        for slot, kind in enumerate(self._kinds, 1):
            acc[slot] = kind.add_all(acc[slot], events)

    def add(self, acc: Accumulator, event: Event) -> None:
        """Fold one event into ``acc``, in place."""
        self.add_all(acc, (event,))

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
    getters = tuple(getter(p) for p in paths)
    return lambda event: tuple(get(event) for get in getters)
