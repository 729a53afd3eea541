"""The SLO signal the planner's margin learns from: latency at the SLO quantile vs its target."""

from __future__ import annotations

import pytest

from aiscaler.handlers.tick import slo_met
from aiscaler.metrics.errors import Empty
from aiscaler.metrics.source import Reading, Sample


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        (Sample(1.5, 100.0), True),
        (Sample(2.0, 100.0), True),  # at the target still meets it
        (Sample(2.5, 100.0), False),
        (Sample(float("nan"), 100.0), None),  # no request finished in the window
        (Empty("no series"), None),
        (None, None),  # the preset has no latency metric
    ],
)
def test_slo_met(latency: Reading | None, expected: bool | None) -> None:
    assert slo_met(latency, 2.0) is expected
