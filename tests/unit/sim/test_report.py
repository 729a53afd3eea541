"""Tuning sweeps and the savings ratio, on stand-in outcomes whose values are set by hand; the
aiscaler goal sweep on a simulated trace."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from aiscaler.forecast.baselines import SeasonalNaiveForecaster
from aiscaler.sim.engine import Demand, Outcome, SimConfig, evaluate, run_policy
from aiscaler.sim.predictive import Aiscaler
from aiscaler.sim.report import (
    GOAL_STEP,
    TUNE_TARGETS,
    PolicyResult,
    aiscaler_at_attainment,
    bisect_settings,
    pick_tuned,
    savings,
    sweep_targets,
)
from aiscaler.sim.trace import Trace


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


GOALS = [round(0.99 - 0.01 * i, 2) for i in range(50)]  # 0.99 down to 0.50


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0.97, 0.99),  # only the most generous goal reaches it
        (0.90, 0.92),
        (0.48, 0.50),  # the cheapest setting of all
        (0.99, None),  # not even the most generous reaches it
    ],
)
def test_bisect_settings_finds_the_cheapest_setting_reaching_the_level(
    level: float, expected: float | None
) -> None:
    runs: list[float] = []

    def run_goal(goal: float) -> PolicyResult:  # attainment 2 points below the goal
        runs.append(goal)
        return PolicyResult("aiscaler", "sweep", {"goal": goal}, outcome(goal, goal - 0.02))

    known = {0.99: run_goal(0.99)}
    done = bisect_settings(GOALS, run_goal, level - 1e-9, known)
    reaching = [g for g, r in done.items() if r.outcome.slo_attainment >= level - 1e-9]
    assert (min(reaching) if reaching else None) == expected
    assert len(runs) == len(set(runs)) <= 1 + 7  # the known run, then log2(50) + 1 at most
    if expected is not None and expected > GOALS[-1]:  # the next cheaper one was tried, and fell
        assert done[round(expected - 0.01, 2)].outcome.slo_attainment < level


def noisy_daily_trace() -> Trace:
    """Three days per minute: a daily wave from 2/s to 8/s times lognormal noise (seeded), so
    that the attainment the aiscaler policy reaches falls with its goal."""
    minutes = np.arange(3 * 1440)
    wave = 5.0 - 3.0 * np.cos(2 * np.pi * minutes / 1440)
    noise = np.random.default_rng(7).lognormal(0.0, 0.5, minutes.size)
    return Trace("noisy", "requests", "arrivals", 60.0, 0.0, wave * noise)


TRACE = noisy_daily_trace()
CONFIG = SimConfig(capacity=2.0, cold_start_s=120.0, slo_attainment=0.99)


def aiscaler_run(goal: float) -> Outcome:
    at_goal = replace(CONFIG, slo_attainment=goal)
    demand = Demand(TRACE.rate, TRACE.bin_s)
    schedule = run_policy(Aiscaler(SeasonalNaiveForecaster(), TRACE.bin_s), demand, at_goal)
    return evaluate(schedule, demand, at_goal)


def test_aiscaler_at_a_lower_attainment_level_runs_a_lower_goal_for_fewer_gpu_hours() -> None:
    shipped = aiscaler_run(0.99)
    level = 0.95
    assert shipped.slo_attainment > level + 0.03
    equal = aiscaler_at_attainment(TRACE, CONFIG, SeasonalNaiveForecaster(), shipped, level)
    assert equal is not None and equal.variant == "equal-attainment"
    assert equal.params["level"] == level
    assert equal.params["goal"] < 0.99 and equal.outcome.slo_attainment >= level
    assert equal.outcome.gpu_hours < shipped.gpu_hours
    again = aiscaler_run(equal.params["goal"])  # the run it reports
    found = equal.outcome
    assert (again.gpu_hours, again.slo_attainment) == (found.gpu_hours, found.slo_attainment)
    assert aiscaler_run(round(equal.params["goal"] - GOAL_STEP, 6)).slo_attainment < level


def test_aiscaler_at_a_level_no_goal_reaches_is_none() -> None:
    shipped = aiscaler_run(0.99)
    level = shipped.slo_attainment + 0.001  # the shipped goal is the most generous on offer
    assert aiscaler_at_attainment(TRACE, CONFIG, SeasonalNaiveForecaster(), shipped, level) is None
