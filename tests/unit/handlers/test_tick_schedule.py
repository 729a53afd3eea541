"""The planning loop starts ticks on a fixed schedule: a tick's duration never shifts the ones
after it, and an overrun skips to the next scheduled time."""

from __future__ import annotations

import pytest

from aiscaler.handlers.operator import next_tick


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (100.0, 130.0),  # the tick took no time
        (101.7, 130.0),  # an ordinary tick: the next one starts on time, not 30 s after this end
        (129.999, 130.0),
        (130.0, 130.0),  # ended exactly at the next start
        (130.5, 160.0),  # overran by half a second: the 130 tick is skipped
        (195.0, 220.0),  # overran by several periods
    ],
)
def test_next_tick_is_the_next_scheduled_time_not_yet_past(now: float, expected: float) -> None:
    assert next_tick(100.0, 30.0, now) == expected


def test_a_schedule_of_many_ticks_does_not_drift_whatever_each_tick_takes() -> None:
    scheduled, starts = 0.0, []
    for i in range(3600):  # 30 hours of 30 s ticks, each taking 0.1-29.9 s
        starts.append(scheduled)
        scheduled = next_tick(scheduled, 30.0, scheduled + 0.1 + (i * 7.3) % 29.8)
    assert starts == [30.0 * i for i in range(3600)]
