"""The dead-letter topic: every message we cannot count goes here, untouched, with its reason.

Contract section 2: original key and value bytes, headers ``source.topic``, ``source.partition``,
``source.offset``, ``error.reason`` and ``error.message``. Each dead letter is also counted
(``streampulse_dlq_messages_total{topic,reason}``) and logged with partition and offset.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.catalog import DLQ_TOPIC
from app.engine import metrics

__all__ = ["DeadLetters", "dlq_headers"]

log = logging.getLogger(__name__)


def dlq_headers(
    topic: str, partition: int, offset: int, reason: str, message: str
) -> list[tuple[str, bytes]]:
    """The contract's DLQ headers for one source message."""
    return [
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
        ("error.reason", reason.encode()),
        ("error.message", message.encode()),
    ]


class DeadLetters:
    """Collects a batch's dead letters and sends them together (awaiting delivery)."""

    def __init__(self, producer: Any, topic: str = DLQ_TOPIC) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    def add(self, topic: str, partition: int, record: Any, reason: str, message: str) -> None:
        """Queue ``record`` (an aiokafka ConsumerRecord) as a dead letter."""
        headers = dlq_headers(topic, partition, record.offset, reason, message)
        self._pending.append((record.key, record.value, headers))
        metrics.DLQ_MESSAGES.labels(topic=topic, reason=reason).inc()
        log.warning(
            "dead letter topic=%s partition=%d offset=%d reason=%s: %s",
            topic, partition, record.offset, reason, message,
        )  # fmt: skip

    async def send(self) -> list[Any]:
        """Send what was queued; returns the delivery futures (the batch's offsets may be
        committed only once they resolve)."""
        pending, self._pending = self._pending, []
        return [
            await self._producer.send(self._topic, key, value, None, None, headers)
            for key, value, headers in pending
        ]

    async def flush(self) -> None:
        """Send what was queued and wait until the broker has it."""
        await asyncio.gather(*await self.send())
