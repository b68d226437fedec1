"""Wires declared domains into the one Faust app: tables, partials and source batch agents.

Per aggregate a Faust table, its partials topic and the batch agent merging partials into it
(``app/engine/tables.py``, ``app/engine/windowing.py``); per domain one source batch agent
running the decode -> validate -> ship-partials pipeline (``app/engine/pipeline.py``). A new
domain therefore adds a declaration (``agents/``), never agent code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.engine.codec import RegistryCodec
from app.engine.domain import Domain
from app.engine.pipeline import Runtime, SourcePipeline
from app.engine.publish import AggregatePublisher
from app.engine.tables import declare_windowed_table
from app.engine.windowing import WindowedTable
from app.settings import Settings

__all__ = ["Engine"]


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

    def add_domains(self, domains: Iterable[Domain]) -> None:
        for domain in domains:
            self.add_domain(domain)

    def add_domain(self, domain: Domain) -> None:
        """Declare ``domain``'s tables and agents on the app."""
        app = self.app
        if domain.topic in self.pipelines:
            raise ValueError(f"{domain.topic} is declared twice")
        tables = []
        for index, aggregate in enumerate(domain.aggregates):
            if aggregate.table in self.tables:
                raise ValueError(f"table {aggregate.table} is fed by two domains")
            # Every table of a topic sees the same events: the first counts them as late for
            # the topic (streampulse_late_events_total), each for itself by table.
            windowed, partials_topic = declare_windowed_table(
                app, self.settings, aggregate, self.publisher,
                source_topic=domain.topic, time_field=domain.time_field,
                counts_late_events=index == 0,
            )  # fmt: skip
            app.batch_agent(partials_topic)(windowed.on_partials)
            self.tables[aggregate.table] = windowed
            self.runtime.tables.append(windowed)
            tables.append(windowed)
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
