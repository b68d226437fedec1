"""Seeded, realistic event factories for the source topics, shared by the simulator and tests.

Each domain module (``downloads``, ``orders``, ``lens``, ``telemetry``) exposes
``factories(population) -> list[EventFactory]``; every factory has ``topic``, ``schema_file`` and
``make(rng, now_ms) -> (key, value)`` (``population.EventFactory``). Factories draw only from the
``rng`` passed in, so one seed and one call order give the same events.
"""
