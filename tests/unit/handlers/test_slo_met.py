"""The SLO signal the planner's margin learns from: latency at the SLO quantile vs its target,
and whether requests waited (a miss without a queue is not a capacity problem)."""

from __future__ import annotations

import pytest

from aiscaler.handlers.tick import slo_met
from aiscaler.metrics.errors import Empty
from aiscaler.metrics.source import Reading, Sample

WAITING = Sample(3.0, 100.0)
NONE_WAITING = Sample(0.0, 100.0)


@pytest.mark.parametrize(
    ("latency", "queue", "expected"),
    [
        (Sample(1.5, 100.0), WAITING, True),
        (Sample(2.0, 100.0), WAITING, True),  # at the target still meets it
        (Sample(1.5, 100.0), NONE_WAITING, True),
        (Sample(2.5, 100.0), WAITING, False),  # slow because requests queue: a capacity miss
        (Sample(2.5, 100.0), None, False),  # the preset has no queue metric: the miss counts
        (Sample(2.5, 100.0), Empty("no series"), False),  # nor does a failed queue query
        (Sample(2.5, 100.0), NONE_WAITING, None),  # slow with nothing waiting: not capacity
        (Sample(float("nan"), 100.0), WAITING, None),  # no request finished in the window
        (Empty("no series"), WAITING, None),
        (None, WAITING, None),  # the preset has no latency metric
    ],
)
def test_slo_met(latency: Reading | None, queue: Reading | None, expected: bool | None) -> None:
    assert slo_met(latency, queue, 2.0) is expected
