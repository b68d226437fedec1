"""PartitionClock: one table partition's watermark, driven with explicit ``now`` values."""

from __future__ import annotations

from app.engine.windowing import PartitionClock

IDLE = 5.0
T0 = 1000.0  # monotonic seconds when the clock is created


def clock(sources: int = 2) -> PartitionClock:
    return PartitionClock(source_partitions=sources, idle_after=IDLE, now=T0)


def test_nothing_heard_is_zero_forever() -> None:
    c = clock()
    assert c.watermark(T0) == 0
    assert c.watermark(T0 + 4.9) == 0
    # Every source idle but none ever heard: no event time to advance from.
    assert c.watermark(T0 + 3600) == 0


def test_an_unheard_source_holds_the_watermark_at_zero_until_idle() -> None:
    c = clock()
    c.observe(0, 10_000, T0 + 1)
    assert c.watermark(T0 + 1) == 0
    assert c.watermark(T0 + 4.999) == 0
    # Source 1 has been silent for idle_after since the clock started: it no longer counts,
    # and source 0 (heard 4 s ago) is still active.
    assert c.watermark(T0 + 5.0) == 10_000
    assert c.watermark(T0 + 5.9) == 10_000


def test_watermark_is_the_minimum_over_active_sources() -> None:
    c = clock(3)
    c.observe(0, 10_000, T0 + 1)
    c.observe(1, 7_000, T0 + 1)
    c.observe(2, 12_000, T0 + 2)
    assert c.watermark(T0 + 2) == 7_000
    c.observe(1, 11_000, T0 + 3)
    assert c.watermark(T0 + 3) == 10_000
    # Source 0 (last heard at T0+1) goes idle at T0+6; the others are still active.
    assert c.watermark(T0 + 6) == 11_000


def test_an_older_event_time_does_not_lower_a_source_but_keeps_it_active() -> None:
    c = clock(2)
    c.observe(0, 10_000, T0 + 1)
    c.observe(1, 20_000, T0 + 1)
    c.observe(0, 4_000, T0 + 4)  # out of order within the source
    assert c.watermark(T0 + 4) == 10_000
    # Source 1 idle at T0+6, source 0 was refreshed at T0+4 and is still active.
    assert c.watermark(T0 + 6) == 10_000


def test_all_idle_advances_with_wall_time_since_the_last_arrival() -> None:
    c = clock(2)
    c.observe(0, 10_000, T0 + 1)
    c.observe(1, 8_000, T0 + 2)
    assert c.watermark(T0 + 2) == 8_000
    assert c.watermark(T0 + 6.5) == 8_000  # source 0 idle, source 1 still active
    # T0+7: both idle. Newest event time 10 000 plus 5 s since the last arrival (T0+2).
    assert c.watermark(T0 + 7) == 15_000
    assert c.watermark(T0 + 10) == 18_000
    assert c.watermark(T0 + 10.25) == 18_250
    # A new arrival with an older event time does not take the watermark back: what the idle
    # advance passed stays passed (that arrival's windows, if closed, are late).
    c.observe(1, 9_000, T0 + 11)
    assert c.watermark(T0 + 11) == 18_250
    # Once idle again, the advance restarts from that arrival, and wins once it is ahead.
    assert c.watermark(T0 + 17) == 18_250  # 10 000 + 6 000 is still behind
    assert c.watermark(T0 + 20) == 10_000 + 9_000


def test_idle_is_measured_per_source_from_its_own_last_arrival() -> None:
    c = clock(2)
    c.observe(0, 10_000, T0 + 1)
    c.observe(1, 30_000, T0 + 1)
    for now in (T0 + 2, T0 + 4, T0 + 5.5):
        c.observe(1, 30_000 + int((now - T0) * 1000), now)
    # Source 0 last heard at T0+1 -> idle from T0+6; source 1 heard at T0+5.5 -> active.
    assert c.watermark(T0 + 5.9) == 10_000
    assert c.watermark(T0 + 6.0) == 35_500


def test_a_source_outside_the_initial_range_is_tracked() -> None:
    c = clock(1)
    c.observe(0, 10_000, T0 + 1)
    c.observe(5, 6_000, T0 + 1)
    assert c.watermark(T0 + 1) == 6_000
    assert c.watermark(T0 + 6) == 10_000 + 5_000  # both idle, 5 s after the last arrival


def test_the_floor_never_lets_the_watermark_go_back() -> None:
    c = clock(2)
    c.observe(0, 10_000, T0 + 1)
    c.observe(1, 8_000, T0 + 2)
    assert c.watermark(T0 + 8) == 16_000  # all idle, 6 s after the last arrival
    c.floor = 16_000  # what WindowedTable does when it closes windows at this watermark
    # A source comes back with an older event time: computed 9 000, but the floor holds.
    c.observe(1, 9_000, T0 + 9)
    assert c.watermark(T0 + 9) == 16_000
    # Once the computed watermark passes the floor, it is used again.
    c.observe(0, 20_000, T0 + 10)
    c.observe(1, 17_000, T0 + 10)
    assert c.watermark(T0 + 10) == 17_000
    # The floor also holds before anything is heard (e.g. restored after a restart).
    fresh = clock(2)
    fresh.floor = 70_000
    assert fresh.watermark(T0) == 70_000
    assert fresh.watermark(T0 + 100) == 70_000
