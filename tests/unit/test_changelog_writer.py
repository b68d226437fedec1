"""ChangelogWriter (``app/engine/states.py``): a table write without Faust's per-write
machinery must leave what ``table[key] = value`` leaves (the same bytes in the partition's
database at once and on its changelog partition, there each key's newest value of the
coalescing interval, the changelog offset noted in the database once delivered), and an ack
that waits on it must wait for the broker and see a failed send. Against stand-ins for
Faust's store and producer; the expected bytes are Faust's own JSON serializer's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.serializers import codecs

from app.engine.batching import table_context
from app.engine.states import CHANGELOG_COALESCE_SECONDS, TableStates

TOPIC = "app-agg.t-changelog"


@dataclass
class Store:
    """Faust's SerializedStore over RocksDB, as far as the writer uses it."""

    dbs: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    persisted: dict[int, int] = field(default_factory=dict)

    def _encode_key(self, key: Any) -> bytes:
        return codecs.dumps("json", key)

    def _encode_value(self, value: Any) -> bytes:
        return codecs.dumps("json", value)

    def _set(self, key: bytes, value: bytes) -> None:
        from faust.streams import current_event

        event = current_event()
        assert event is not None
        self.dbs.setdefault(event.message.partition, {})[key] = value

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp.partition] = offset


@dataclass
class Metadata:
    topic_partition: Any
    offset: int


class Producer:
    """Sends complete when ``acked`` is set (or fail, with ``fail``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int, asyncio.Future[Any]]] = []
        self.offsets: dict[int, int] = {}

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, *_: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, value, partition, future))
        return future

    def ack(self, fail_partition: int | None = None) -> None:
        for _, _, _, partition, future in self.sent:
            if future.done():
                continue
            if partition == fail_partition:
                future.set_exception(ConnectionError("not delivered"))
                continue
            offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
            tp = type("TP", (), {"partition": partition})()
            future.set_result(Metadata(tp, offset))


class Event:
    def __init__(self, message: Any) -> None:
        self.message = message


@dataclass
class App:
    producer: Producer = field(default_factory=Producer)
    in_transaction: bool = False
    consumer_generation_id: int = 1
    recovered_generation: int = 1
    sets: list[Any] = field(default_factory=list)

    def create_event(self, key: Any, value: Any, headers: Any, message: Any) -> Event:
        return Event(message)


class Table:
    def __init__(self, app: App) -> None:
        self.data = Store()
        self.changelog_topic = type("Topic", (), {"get_topic_name": staticmethod(lambda: TOPIC)})()
        self._sensor_on_set = lambda table, key, value: app.sets.append(key)


def test_writes_leave_faust_bytes_in_order_and_the_ack_waits_for_the_broker() -> None:
    async def scenario() -> None:
        app = App()
        table = Table(app)
        states = TableStates(app, table)
        writes = [(p, f"k{i % 3}", {"n": i, "p": p}) for i in range(12) for p in (0, 2)]
        for partition, key, value in writes:
            with table_context(app, "partials", partition):
                states.put(key, value)
        delivered = asyncio.ensure_future(states.delivered())
        await asyncio.sleep(0.01)
        assert app.producer.sent == []  # later writes of the same keys may still come
        await asyncio.sleep(CHANGELOG_COALESCE_SECONDS + 0.05)
        assert not delivered.done()  # sent, not acknowledged yet
        # Per partition, each key once, with its newest value (what recovery would keep).
        expected = []
        for partition in dict.fromkeys(p for p, _, _ in writes):
            newest: dict[str, Any] = {}
            for p, key, value in writes:
                if p == partition:
                    newest[key] = value
            expected += [
                (TOPIC, codecs.dumps("json", k), codecs.dumps("json", v), partition)
                for k, v in newest.items()
            ]
        sent = app.producer.sent
        assert [(t, k, v, p) for t, k, v, p, _ in sent] == expected
        assert len(sent) == 6 < len(writes)
        app.producer.ack()
        await asyncio.wait_for(delivered, 1)
        for partition in (0, 2):
            last = {key: value for p, key, value in writes if p == partition}
            assert table.data.dbs[partition] == {
                codecs.dumps("json", k): codecs.dumps("json", v) for k, v in last.items()
            }
            assert table.data.persisted[partition] == app.producer.offsets[partition]
        assert app.sets == [key for _, key, _ in writes]
        assert states.get("k1") == [v for _, k, v in writes if k == "k1"][-1]

    asyncio.run(scenario())


def test_a_failed_changelog_send_fails_the_ack() -> None:
    async def scenario() -> None:
        app = App()
        states = TableStates(app, Table(app))
        for partition in (0, 1):
            with table_context(app, "partials", partition):
                states.put("k", {"p": partition})
        await asyncio.sleep(CHANGELOG_COALESCE_SECONDS + 0.05)
        app.producer.ack(fail_partition=1)
        await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            await states.delivered()  # asked after the failure: still raised
        with pytest.raises(ConnectionError):
            await states.delivered()  # and to every later ack: that write is not delivered

    asyncio.run(scenario())
