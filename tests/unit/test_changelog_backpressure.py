"""wait_for_changelog_room: a batch table writer waits for Faust's producer buffer to ebb."""

import asyncio
from types import SimpleNamespace

from app.engine.batching import wait_for_changelog_room


class FakeBuffer:
    """Faust's ProducerBuffer as far as the wait uses it: a ``size`` drained by a sender."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sizes_seen_while_draining: list[int] = []

    async def drain(self, per_step: int, stop_at: int = 0) -> None:
        while self.size > stop_at:
            await asyncio.sleep(0)
            self.size = max(stop_at, self.size - per_step)
            self.sizes_seen_while_draining.append(self.size)


def test_returns_at_once_when_the_buffer_is_small() -> None:
    app = SimpleNamespace(producer=SimpleNamespace(buffer=FakeBuffer(size=10)))

    async def run() -> None:
        await asyncio.wait_for(wait_for_changelog_room(app, limit=10), timeout=0.5)

    asyncio.run(run())
    assert app.producer.buffer.size == 10  # nothing had to drain


def test_waits_until_the_buffer_is_at_most_the_limit() -> None:
    buffer = FakeBuffer(size=5000)
    app = SimpleNamespace(producer=SimpleNamespace(buffer=buffer))

    async def run() -> int:
        # The sender stops at the limit: a wait for an empty buffer would time out here.
        drainer = asyncio.ensure_future(buffer.drain(per_step=100, stop_at=2000))
        await asyncio.wait_for(wait_for_changelog_room(app, limit=2000), timeout=2)
        size_when_released = buffer.size
        await drainer
        return size_when_released

    released_at = asyncio.run(run())
    assert released_at == 2000
    # It really waited: the sender had to take the buffer from 5,000 down past the limit.
    assert any(size > 2000 for size in buffer.sizes_seen_while_draining)
