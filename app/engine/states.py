"""A windowed table's values, read through a bounded cache of the decoded values.

Why: a Faust table read over RocksDB is two lookups (``key in`` then ``[key]``) and a JSON
decode; on the live mix the windowed tables' reads were 10% of the worker's CPU (py-spy,
``bench/README.md``), because every fetch reads back every key it touches. The cache holds
the very objects last written, so it answers exactly what the table holds as long as every
write goes through :meth:`TableStates.put` and nothing else changes the table. Faust's table
recovery does, at a rebalance: the cache is dropped whenever the consumer generation or the
recovered generation changes.

Writes go to the Faust table as before (RocksDB and the changelog). Faust serializes a
changelog record when its buffer sends it, so a value changed in place after its write may
reach the changelog newer than written: still a state the table had, with its marks (the
exactly-once bookkeeping of ``windowing.py`` travels inside the value), so recovery stays
exact. The per-user join's states must not be shared like that (their order against the
join's deltas is the crash argument of ``join.py``): they are not read through this cache.
"""

from __future__ import annotations

from typing import Any

from cachetools import LRUCache

__all__ = ["CACHED_KEYS", "TableStates"]

#: Decoded values kept per table (least recently used out first): every key of the
#: low-cardinality tables, the popular keys of the others, a few MB per table.
CACHED_KEYS = 4096


class TableStates:
    """``get``/``put`` of a Faust table's values, through an LRU cache of decoded values."""

    def __init__(self, app: Any, table: Any, size: int = CACHED_KEYS) -> None:
        self.app = app
        self.table = table
        self._cache: LRUCache[str, Any] = LRUCache(maxsize=size)
        self._stamp: tuple[Any, Any] | None = None

    def _current(self) -> LRUCache[str, Any]:
        """The cache, emptied if the table may have changed under it (a rebalance)."""
        app = self.app
        stamp = (getattr(app, "consumer_generation_id", None),
                 getattr(app, "recovered_generation", None))  # fmt: skip
        if stamp != self._stamp:
            self._cache.clear()
            self._stamp = stamp
        return self._cache

    def get(self, key: str) -> Any:
        """The value of ``key`` (None if absent), as the table holds it."""
        cache = self._current()
        value = cache.get(key)
        if value is None:
            value = self.table.get(key)
            if value is not None:
                cache[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        """Write ``value`` (in the current table context) and keep it for the next read."""
        cache = self._current()
        self.table[key] = value
        cache[key] = value

    def clear(self) -> None:
        self._cache.clear()
