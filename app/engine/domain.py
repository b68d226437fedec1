"""A source domain, declared once: its topic, its rules and the aggregates its events feed.

``agents/<domain>.py`` declares one :class:`Domain`; ``app/engine/wiring.py`` builds its Faust
agents and tables from it. The topic's catalog entry (``app/catalog.py``) gives the reader
schema, the message key and the event-time field, so a domain names its topic only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.catalog import SOURCE_TOPICS, TopicSpec
from app.validation import Violation
from models.combine import Aggregate

__all__ = ["Domain", "Validator"]

#: A domain's data-quality rules: the first broken rule of a decoded event, or None.
Validator = Callable[[dict[str, Any]], Violation | None]


@dataclass(frozen=True)
class Domain:
    """One source topic: the rules its decoded events must pass, the aggregates they feed and
    (``join``) the join events they give the per-user join (``app/engine/join.py``)."""

    topic: str
    validate: Validator
    aggregates: tuple[Aggregate, ...] = ()
    #: the per-user join's input from this topic (``models/users.py``), if it feeds the join
    join: Callable[[dict[str, Any]], tuple[str, list[Any]] | None] | None = None

    def __post_init__(self) -> None:
        if self.topic not in SOURCE_TOPICS:
            raise ValueError(f"{self.topic} is not a source topic of the catalog")
        if not self.aggregates and self.join is None:
            raise ValueError(f"{self.topic} feeds neither an aggregate nor the join")
        if SOURCE_TOPICS[self.topic].time_field is None:
            raise ValueError(f"{self.topic} declares no event-time field in the catalog")

    @property
    def source(self) -> TopicSpec:
        return SOURCE_TOPICS[self.topic]

    @property
    def time_field(self) -> str:
        """The event-time field (epoch ms) that windows this domain's events."""
        time_field = self.source.time_field
        assert time_field is not None
        return time_field
