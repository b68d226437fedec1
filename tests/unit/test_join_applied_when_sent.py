"""The join applies the repartition messages a worker sent to its own partitions as soon as
the broker acks them (``UserJoin.send``), in the partition's offset order: every message is
applied once, in order, whichever of the two ways (acked here, read back by the consumer)
gets to it first. That order is the join's crash argument (``app/engine/join.py``).

``_handle`` (the join itself) is replaced by a recorder; what is tested is which records it
is handed, and when.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import join as join_module
from app.engine.join import UserJoin, _SentRecord

GENERATION = 3


def make_join(monkeypatch: pytest.MonkeyPatch, owned: frozenset[int] = frozenset({0})) -> Any:
    monkeypatch.setattr(join_module, "owned_partitions", lambda app, topic: owned)
    join = UserJoin.__new__(UserJoin)
    join.app = SimpleNamespace(consumer_generation_id=GENERATION)
    join.topic = "app-users-repartition"
    join.apply_own = True
    join._applied_upto, join._acked, join._sent, join._appliers = {}, {}, {}, {}
    join._applier_error = None
    join._writers, join._unwritten = {}, {}
    join._unwritten_generation = GENERATION
    join._zones = SimpleNamespace(covers=lambda batch: False)
    join.handed: list[tuple[int, list[int]]] = []

    async def handle(partition: int, records: Any, generation: Any, replay: bool) -> Any:
        join.handed.append((partition, [offset for offset, _ in records]))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        join._writers[partition] = done
        return done

    join._handle = handle
    return join


def sent(*offsets: int, generation: int = GENERATION) -> list[_SentRecord]:
    return [_SentRecord(o, {}, generation) for o in offsets]


def apply_acked(join: Any, partition: int, records: list[_SentRecord]) -> None:
    async def run() -> None:
        join._lock = asyncio.Lock()
        join._acked.setdefault(partition, deque()).extend(records)
        async with join._lock:
            await join._apply_acked(partition, GENERATION)

    asyncio.run(run())


def test_nothing_is_applied_before_the_consumer_has_read_the_partition(monkeypatch) -> None:
    join = make_join(monkeypatch)
    apply_acked(join, 0, sent(0, 1))
    assert join.handed == [] and [r.offset for r in join._acked[0]] == [0, 1]


def test_the_next_contiguous_messages_are_applied_as_one_batch(monkeypatch) -> None:
    join = make_join(monkeypatch)
    join._applied_upto[0] = 9
    apply_acked(join, 0, sent(10, 11, 13))  # 12 is another worker's: 13 waits behind it
    assert join.handed == [(0, [10, 11])]
    assert join._applied_upto[0] == 11 and [r.offset for r in join._acked[0]] == [13]


def test_messages_the_consumer_has_applied_are_dropped(monkeypatch) -> None:
    join = make_join(monkeypatch)
    join._applied_upto[0] = 9
    apply_acked(join, 0, sent(8, 9, 10))
    assert join.handed == [(0, [10])]


@pytest.mark.parametrize("case", ["another generation", "not owned"])
def test_a_changed_assignment_leaves_every_message_to_the_consumer(monkeypatch, case) -> None:
    join = make_join(monkeypatch, owned=frozenset() if case == "not owned" else frozenset({0}))
    join._applied_upto[0] = 9
    if case == "another generation":
        join.app.consumer_generation_id = GENERATION + 1
    apply_acked(join, 0, sent(10, 11))
    assert join.handed == [] and not join._acked[0]


# the fixture only replaces owned_partitions, the same for every example
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    own=st.lists(st.booleans(), min_size=1, max_size=40),
    steps=st.lists(st.tuples(st.booleans(), st.integers(1, 6)), max_size=80),
)
def test_every_message_is_applied_once_in_offset_order(
    monkeypatch: pytest.MonkeyPatch, own: list[bool], steps: list[tuple[bool, int]]
) -> None:
    """A partition's messages 0..n-1, some this worker's (acked to it in order), some other
    workers'; acks and consumer fetches (the real ``on_events``) interleaved at random, the
    consumer reading on to the end at last: each offset is handed to the join exactly once,
    in increasing order."""
    join = make_join(monkeypatch)
    mine = [offset for offset, is_mine in enumerate(own) if is_mine]

    async def run() -> None:
        join._lock = asyncio.Lock()
        position, acked = 0, 0
        for is_ack, count in [*steps, (False, len(own))]:
            if is_ack and acked < len(mine):
                batch = mine[acked : acked + count]
                acked += len(batch)
                join._acked.setdefault(0, deque()).extend(sent(*batch))
                async with join._lock:
                    await join._apply_acked(0, GENERATION)
            elif not is_ack and position < len(own):
                records = [
                    SimpleNamespace(offset=o, value=b"{}")
                    for o in range(position, position + count)
                ]
                records = [r for r in records if r.offset < len(own)]
                position = records[-1].offset + 1
                batch = SimpleNamespace(partition=0, records=records)
                await (await join.on_events([batch]))

    asyncio.run(run())
    handed = [offset for _, offsets in join.handed for offset in offsets]
    assert handed == list(range(len(own)))
