"""Protocol v2 properties on whole runs: tuning sees only the tune window, and the oracle is a
lower bound on every shared trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiscaler.forecast import load_default_forecaster
from aiscaler.forecast.baselines import SeasonalNaiveForecaster
from aiscaler.sim.report import POLICIES, simulate
from aiscaler.sim.runs import Scenario
from aiscaler.sim.state import SimConfig, default_slots, step_rates
from aiscaler.sim.trace import as_requests, default_capacity, load_trace

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "traces"


def two_days() -> np.ndarray:
    """Requests/s per minute: a daily wave around 40/s with a noon peak, two days."""
    minutes = np.arange(2 * 1440)
    rates = 40 + 25 * np.sin(2 * np.pi * minutes / 1440.0)
    rates[(minutes % 1440 >= 700) & (minutes % 1440 < 760)] *= 1.8
    return rates


def tuned_params(rates: np.ndarray) -> dict[str, dict]:  # type: ignore[type-arg]
    config = SimConfig(capacity=10.0, slots=32, max_replicas=40)
    scenario = Scenario("two-days", step_rates(rates, 60.0), config, (0,), 86_400.0, 60.0,
                        SeasonalNaiveForecaster())  # fmt: skip
    report = simulate(scenario, ("aiscaler", "hpa", "kpa"), tune=True, budget=6, jobs=1)
    return {r.policy: r.params for r in report.results if r.variant == "tuned"}


def test_the_selected_configuration_ignores_the_evaluation_window() -> None:
    rates = two_days()
    altered = rates.copy()
    altered[1440:] *= 1.7  # the second day, the evaluation window, changes a lot
    assert tuned_params(rates) == tuned_params(altered)


def shared_traces() -> list[Path]:
    paths = sorted(TRACES.glob("*.csv"))
    assert paths, f"the shared traces are missing: {TRACES}"
    return paths


@pytest.mark.parametrize("path", shared_traces(), ids=lambda p: p.stem)
def test_the_oracle_is_below_every_policy_that_meets_the_goal(path: Path) -> None:
    """Each policy at its defaults, one seed, protocol defaults: whoever reaches the goal pays
    at least the oracle's GPU-hours."""
    column = "value" if "value" in path.open().readline() else "requests"
    trace = load_trace(path, column)
    requests = as_requests(trace, default_capacity(trace.rate), path)
    config = SimConfig(capacity=requests.capacity, slots=default_slots(requests.capacity))
    scenario = Scenario(path.name, step_rates(requests.rate, trace.bin_s), config, (0,), 0.0,
                        trace.bin_s, load_default_forecaster()[0])  # fmt: skip
    report = simulate(scenario, POLICIES)
    oracle = report.find("oracle")
    assert oracle is not None and oracle.summary.slo_attainment >= config.slo_attainment
    for r in report.results:
        if r.summary.slo_attainment >= config.slo_attainment:
            assert r.summary.gpu_hours >= oracle.summary.gpu_hours, (r.policy, r.variant)
