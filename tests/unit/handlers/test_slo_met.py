"""The SLO signal the planner's margin learns from: latency at the SLO quantile vs its target,
and whether requests waited (a miss without a queue is not a capacity problem)."""

from __future__ import annotations

import pytest

from aiscaler.handlers.measure import slo_met
from aiscaler.handlers.tick import restored
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


@pytest.mark.parametrize(
    ("status", "factor"),
    [
        ({"sloMargin": 1.37}, 1.37),  # a restarted operator resumes from the recorded margin
        ({"sloMargin": 4}, 4.0),
        ({}, 1.0),  # never recorded: a new service
        ({"sloMargin": 0.5}, 1.0),  # outside [1, 4]: not one this code wrote; start afresh
        ({"sloMargin": "1.3"}, 1.0),
        ({"sloMargin": float("nan")}, 1.0),
    ],
)
def test_a_service_without_memory_resumes_from_its_status(status: dict, factor: float) -> None:
    assert restored({"status": status}).margin.factor == factor
    assert restored({}).margin.factor == 1.0
