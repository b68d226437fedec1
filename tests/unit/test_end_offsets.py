"""End offsets for recovery read from the data (app/engine/offsets.py), against a fake broker
that answers ListOffsets as Tansu does: the last batch's base offset + 1."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

from app.engine.offsets import true_end_offsets

TP = namedtuple("TP", "topic partition")
Record = namedtuple("Record", "offset")


class FakeConsumer:
    """A partition's log as record batches; a fetch returns the whole batch holding the
    position (as a broker does) minus the records before it (as aiokafka does)."""

    def __init__(self, batches: dict[TP, list[list[int]]], answers: bool = True) -> None:
        self.batches = batches
        self.answers = answers
        self.positions: dict[TP, int] = {}
        self.fetched: set[TP] = set()
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, tps: list[TP]) -> None:
        self.positions = {tp: 0 for tp in tps}

    def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, *tps: TP, timeout_ms: int) -> dict[TP, list[Record]]:
        if not self.answers:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        out: dict[TP, list[Record]] = {}
        for tp in tps:
            self.fetched.add(tp)
            position = self.positions[tp]
            for batch in self.batches[tp]:
                if batch[0] <= position <= batch[-1]:
                    out[tp] = [Record(o) for o in batch if o >= position]
                    self.positions[tp] = batch[-1] + 1
                    break
        return out

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.fetched:
            return None
        return self.batches[tp][-1][-1] + 1

    async def position(self, tp: TP) -> int:
        return self.positions[tp]


def tansu_list_offsets(batches: dict[TP, list[list[int]]]) -> dict[TP, int]:
    return {tp: (b[-1][0] + 1 if b else 0) for tp, b in batches.items()}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_ends_are_raised_to_the_last_record_of_the_last_batch() -> None:
    a, b, c = TP("t", 0), TP("t", 1), TP("t", 2)
    batches = {
        a: [[0, 1, 2], [3, 4, 5, 6, 7]],  # reported 4, true end 8
        b: [[0], [1]],  # one-record batches: reported = true end = 2
        c: [],  # empty: reported 0, nothing to read
    }
    fake = FakeConsumer(batches)
    ends = run(true_end_offsets(lambda: fake, tansu_list_offsets(batches)))
    assert ends == {a: 8, b: 2, c: 0}
    assert fake.started and fake.stopped
    assert c not in fake.fetched  # nothing probed where the broker says empty


def test_a_correct_broker_answer_is_kept() -> None:
    a = TP("t", 0)
    batches = {a: [[0, 1], [2, 3, 4]]}
    ends = run(true_end_offsets(lambda: FakeConsumer(batches), {a: 5}))
    assert ends == {a: 5}


def test_a_probe_that_reads_nothing_keeps_the_reported_end_and_stops() -> None:
    a = TP("t", 0)
    batches = {a: [[0, 1, 2]]}
    fake = FakeConsumer(batches, answers=False)
    ends = run(true_end_offsets(lambda: fake, {a: 1}, timeout_s=0.5))
    assert ends == {a: 1}
    assert fake.stopped


def test_nothing_to_probe_starts_no_consumer() -> None:
    def must_not_build() -> FakeConsumer:
        raise AssertionError("no partition holds data: no probe consumer")

    assert run(true_end_offsets(must_not_build, {TP("t", 0): 0})) == {TP("t", 0): 0}
