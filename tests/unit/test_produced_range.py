"""produced_range: the production-time range of a fetch that partials carry for table latency."""

from types import SimpleNamespace

from faust.types import TP

from app.engine.batching import SourceBatch
from app.engine.pipeline import produced_range


def _batch(partition: int, stamps: list[int | None]) -> SourceBatch:
    records = [SimpleNamespace(timestamp=s) for s in stamps]
    return SourceBatch(TP("acme-telemetry", partition), records)


def test_oldest_and_newest_over_every_partition_of_the_fetch() -> None:
    batches = [_batch(0, [1_000, 1_500, 1_200]), _batch(3, [900, 2_000])]
    assert produced_range(batches) == (900, 2_000)


def test_records_without_a_timestamp_are_ignored() -> None:
    assert produced_range([_batch(0, [None, -1, 1_700])]) == (1_700, 1_700)
    assert produced_range([_batch(0, [None, -1])]) == (0, 0)
