"""True end offsets of partitions, for changelog recovery on brokers that report them short.

Faust recovers a table partition up to the end offset ``ListOffsets(latest)`` reports, then
pauses the partition; the consistency check compares the persisted offset with it. The
embedded Tansu broker answers ``ListOffsets(latest)`` with the base offset of the partition's
last record batch + 1 (lessons.md), short of the true end whenever that batch holds several
records: recovery then stops inside the last batch and silently drops the rest of it (its
records arrive after the pause and are discarded), and the check fails on every restart of a
worker whose persisted offset is in that batch.

:func:`true_end_offsets` reads the last batch instead: a short-lived consumer without a group
fetches from ``reported - 1`` (the last batch's base on Tansu, the last record on Apache
Kafka), and the end is one past the last record it returns, never less than what the broker
reported. On a correct broker it costs one fetch per partition at recovery and changes
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["true_end_offsets"]

log = logging.getLogger(__name__)

#: How long the probe waits for the last batch of every partition before it gives up on the
#: ones left (they keep the reported end, with a warning).
PROBE_TIMEOUT_S = 15.0


async def true_end_offsets(
    make_consumer: Callable[[], Any],
    reported: Mapping[Any, int],
    timeout_s: float = PROBE_TIMEOUT_S,
) -> dict[Any, int]:
    """``reported`` (partition -> end offset from ListOffsets) raised to one past the last
    record each partition really holds. ``make_consumer`` builds an unstarted aiokafka
    consumer without a group (``BatchingConsumerThread._create_probe_consumer``)."""
    ends = dict(reported)
    probe = [tp for tp, end in reported.items() if end and end > 0]
    if not probe:
        return ends
    consumer = make_consumer()
    await consumer.start()
    loop = asyncio.get_running_loop()
    try:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, reported[tp] - 1)
        pending = set(probe)
        deadline = loop.time() + timeout_s
        while pending and loop.time() < deadline:
            fetched = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in fetched.items():
                if records:
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue  # no fetch response for it yet
                if await consumer.position(tp) >= highwater:
                    ends[tp] = max(ends[tp], highwater)
                    pending.discard(tp)
        if pending:
            log.warning(
                "end offsets: no last batch read within %.0f s for %s; keeping the reported"
                " ends", timeout_s, sorted(f"{tp.topic}[{tp.partition}]" for tp in pending),
            )  # fmt: skip
    finally:
        await consumer.stop()
    raised = {tp: (reported[tp], end) for tp, end in ends.items() if end != reported[tp]}
    if raised:
        log.info(
            "end offsets: %d partitions end past the broker's ListOffsets answer (%s)",
            len(raised),
            ", ".join(f"{tp.topic}[{tp.partition}] {a}->{b}" for tp, (a, b) in raised.items()),
        )
    return ends
