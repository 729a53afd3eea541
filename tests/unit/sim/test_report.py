"""Tuning sweeps and the savings ratio, on stand-in outcomes whose values are set by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aiscaler.sim.engine import Outcome
from aiscaler.sim.report import (
    TUNE_TARGETS,
    PolicyResult,
    pick_tuned,
    savings,
    sweep_targets,
)


def outcome(gpu_hours: float, attainment: float) -> Outcome:
    return Outcome(gpu_hours, attainment, 0.0, attainment, 0, 0, np.zeros(1))


class FakeRuns:
    """Attainment 0.995 up to target `limit`, 0.98 above; cost 1 / target."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.targets: list[float] = []

    def make(self, target: float) -> float:  # stands in for building a policy
        return target

    def run(self, target: float) -> Outcome:
        self.targets.append(target)
        return outcome(1 / target, 0.995 if target <= self.limit + 1e-9 else 0.98)


@pytest.mark.parametrize("limit", [0.2, 0.45, 0.6, 0.95])
def test_bisection_finds_the_highest_target_reaching_the_goal(limit: float) -> None:
    fake = FakeRuns(limit)
    default = PolicyResult("hpa", "default", {"target_utilization": 0.8}, fake.run(0.8))
    sweep = sweep_targets(fake.run, fake.make, "hpa", default, 0.99)  # type: ignore[arg-type]
    tuned = pick_tuned(sweep, 0.99)
    assert tuned.params["target_utilization"] == pytest.approx(limit)
    assert tuned.params["goal_met"] is True and tuned.variant == "tuned"
    assert len(fake.targets) <= 1 + 5  # the default, then log2(16) + 1 runs at most


def test_when_no_target_reaches_the_goal_the_most_generous_is_reported() -> None:
    fake = FakeRuns(0.1)  # below the whole grid
    default = PolicyResult("kpa", "default", {"target_utilization": 0.7}, fake.run(0.7))
    sweep = sweep_targets(fake.run, fake.make, "kpa", default, 0.99)  # type: ignore[arg-type]
    tuned = pick_tuned(sweep, 0.99)
    assert tuned.params["target_utilization"] == TUNE_TARGETS[0]
    assert tuned.params["goal_met"] is False


@pytest.mark.parametrize(
    ("gpu_hours", "attainment", "expected"),
    [
        (80.0, 0.995, 0.2),  # cheaper at equal attainment: 20% saved
        (80.0, 0.9901, 0.2),  # within half a point below: still "equal"
        (80.0, 0.98, None),  # a point lower: no saving is claimed
        (120.0, 0.999, -0.2),  # dearer: a negative saving
    ],
)
def test_savings_only_at_equal_or_better_attainment(
    gpu_hours: float, attainment: float, expected: float | None
) -> None:
    best = PolicyResult("hpa", "tuned", {}, outcome(100.0, 0.995))
    mine = PolicyResult("aiscaler", "default", {}, outcome(gpu_hours, attainment))
    result = savings(mine, best)
    assert result == (pytest.approx(expected) if expected is not None else None)
