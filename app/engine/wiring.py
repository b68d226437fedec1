"""Wires declared domains into the one Faust app: tables, partials and source batch agents.

Per aggregate a Faust table, its partials topic and the batch agent merging partials into it
(``app/engine/tables.py``, ``app/engine/windowing.py``); per domain one source batch agent
running the decode -> validate -> ship-partials pipeline (``app/engine/pipeline.py``). A new
domain therefore adds a declaration (``agents/``), never agent code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from app.engine.codec import RegistryCodec
from app.engine.domain import Domain
from app.engine.join import UserJoin, repartition_topic_name
from app.engine.pipeline import Runtime, SourcePipeline
from app.engine.publish import AggregatePublisher
from app.engine.tables import declare_windowed_table
from app.engine.windowing import WindowedTable
from app.settings import Settings
from models.combine import Aggregate

__all__ = ["Engine", "JoinOutputs"]

log = logging.getLogger(__name__)

#: delta kind -> (the aggregate the join's deltas of that kind feed, its grace in ms)
JoinOutputs = Mapping[str, tuple[Aggregate, Callable[[Settings], int]]]


class Engine:
    """The machinery every domain shares, and the domains wired onto it."""

    def __init__(self, app: Any, settings: Settings, codec: RegistryCodec) -> None:
        self.app = app
        self.settings = settings
        self.runtime = Runtime(app, codec)
        self.publisher = AggregatePublisher(app, codec)
        #: table name -> its windowed table
        self.tables: dict[str, WindowedTable] = {}
        #: source topic -> its pipeline
        self.pipelines: dict[str, SourcePipeline] = {}
        #: the per-user join, once a domain feeds it
        self.join: UserJoin | None = None

    def add_domains(self, domains: Iterable[Domain], join_outputs: JoinOutputs = ()) -> None:
        """Declare ``domains``; those with a ``join`` feed one per-user join whose deltas go
        to the aggregates of ``join_outputs``."""
        domains = list(domains)
        joined = [d.topic for d in domains if d.join is not None]
        consumed = set(self.settings.source_topics or joined)
        if joined and not set(joined) <= consumed:
            # A worker reading only some of the joined topics (a replay of one topic) would
            # publish join results from part of their inputs: it runs no join.
            log.info("no join: SOURCE_TOPICS lacks %s", sorted(set(joined) - consumed))
        elif joined:
            self.declare_join(joined, join_outputs)
        for domain in domains:
            self.add_domain(domain)
        if self.join is not None:  # listed after the tables of the sources they join
            for windowed in self.join.downstream.values():
                self.tables[windowed.aggregate.table] = self.tables.pop(windowed.aggregate.table)

    def declare_join(self, topics: list[str], outputs: JoinOutputs) -> UserJoin:
        """The per-user join of ``topics`` (``app/engine/join.py``), its windowed tables and
        batch agents."""
        if self.join is not None:
            raise ValueError("the join is declared once, with every topic it joins")
        app, settings = self.app, self.settings
        downstream: dict[str, WindowedTable] = {}
        for kind, (aggregate, grace) in outputs.items():
            windowed = self._add_table(
                aggregate, source_topic=repartition_topic_name(settings.app_id),
                time_field="ts", counts_late_events=False, grace_ms=grace(settings),
            )  # fmt: skip
            downstream[kind] = windowed
        self.join = UserJoin(app, settings, topics, downstream)
        app.batch_agent(self.join.source)(self.join.on_events)
        return self.join

    def _add_table(self, aggregate: Aggregate, **options: Any) -> WindowedTable:
        if aggregate.table in self.tables:
            raise ValueError(f"table {aggregate.table} is fed twice")
        windowed, partials_topic = declare_windowed_table(
            self.app, self.settings, aggregate, self.publisher, **options
        )
        self.app.batch_agent(partials_topic)(windowed.on_partials)
        self.tables[aggregate.table] = windowed
        self.runtime.tables.append(windowed)
        return windowed

    def add_domain(self, domain: Domain) -> None:
        """Declare ``domain``'s tables and agents on the app."""
        app = self.app
        if domain.topic in self.pipelines:
            raise ValueError(f"{domain.topic} is declared twice")
        tables: list[Any] = []
        for index, aggregate in enumerate(domain.aggregates):
            # Every table of a topic sees the same events: the first counts them as late for
            # the topic (streampulse_late_events_total), each for itself by table.
            tables.append(self._add_table(
                aggregate, source_topic=domain.topic, time_field=domain.time_field,
                counts_late_events=index == 0,
            ))  # fmt: skip
        if domain.join is not None and self.join is not None:
            feed = self.join.feed(domain.topic, domain.join)
            tables.append(feed)
            self.runtime.tables.append(feed)
        pipeline = SourcePipeline(
            self.runtime, domain.topic, domain.validate, tables, domain.time_field
        )
        source = app.topic(domain.topic, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")  # fmt: skip
        app.batch_agent(source)(pipeline.handle)
        self.pipelines[domain.topic] = pipeline

    async def close_idle_windows(self) -> None:
        """Close windows whose end + grace the (idle-advanced) watermarks have passed."""
        for table in self.tables.values():
            await table.tick()
