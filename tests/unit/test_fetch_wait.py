"""FETCH_MAX_WAIT_MS reaches both consumers the worker creates (the embedded Tansu's answers
depend on it: bench/README.md, "The fetch wait")."""

from __future__ import annotations

import asyncio

from app.engine.batching import StreamPulseApp
from app.settings import Settings


def consumer_waits(**kwargs: int) -> tuple[int, int]:
    async def build() -> tuple[int, int]:
        app = StreamPulseApp(
            "unit-fetch-wait", broker="kafka://127.0.0.1:1", store="memory://", **kwargs
        )
        thread = app.consumer._thread
        worker = thread._create_worker_consumer(app.transport)
        probe = thread._create_probe_consumer()
        try:
            return worker._fetch_max_wait_ms, probe._fetch_max_wait_ms
        finally:
            await worker.stop()
            await probe.stop()

    return asyncio.run(build())


def test_the_configured_fetch_wait_reaches_the_worker_and_probe_consumers() -> None:
    assert consumer_waits(fetch_max_wait_ms=77) == (77, 77)


def test_the_default_fetch_wait_is_the_settings_default_not_faust_s() -> None:
    assert consumer_waits() == (Settings.fetch_max_wait_ms,) * 2
    assert Settings.fetch_max_wait_ms != 1500  # Faust's hard-coded wait
