"""The oracle formula of BENCHMARK.md on small hand-worked series."""

from __future__ import annotations

import numpy as np
import pytest

from aiscaler.sim.engine import Demand, SimConfig, evaluate
from aiscaler.sim.oracle import oracle_gpu_hours, oracle_schedule

# Replicas needed per 10 s step (capacity 1/s): slot 1 is busy in steps [0,2), [5,8), [9,10);
# slot 2 in [6,8).
NEED = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("cold_start", "expected_s"),
    [
        # slot 1: busy 60 + D 20 + gaps min(30, 20) + min(10, 20) = 110; slot 2: 20 + 20 = 40
        (20.0, 150.0),
        # D = 0: only the busy time is paid
        (0.0, 80.0),
        # D = 40: every gap is cheaper warm: slot 1: 60 + 40 + 30 + 10; slot 2: 20 + 40
        (40.0, 200.0),
    ],
)
def test_formula_and_schedule_agree_with_the_hand_computation(
    cold_start: float, expected_s: float
) -> None:
    assert oracle_gpu_hours(NEED, 10.0, 1.0, cold_start, 1) == pytest.approx(expected_s / 3600)
    assert oracle_gpu_hours(NEED, 10.0, 1.0, cold_start, 2) == pytest.approx(expected_s / 1800)
    demand = Demand(NEED, bin_s=10)
    config = SimConfig(capacity=1.0, cold_start_s=cold_start)
    out = evaluate(oracle_schedule(NEED, 10.0, 1.0, cold_start), demand, config)
    assert out.gpu_hours == pytest.approx(expected_s / 3600)
    assert out.slo_attainment == 1.0  # capacity is there whenever demand is


def test_fractional_demand_rounds_up_but_whole_replicas_do_not() -> None:
    rate = np.array([1.5, 2.0000000000001, 0.2])
    # slots: 1 busy all 3 steps, 2 busy steps 0-1 (2.0000000000001 is 2 replicas' worth)
    assert oracle_gpu_hours(rate, 10.0, 1.0, 0.0, 1) == pytest.approx(50 / 3600)


def test_no_demand_costs_nothing() -> None:
    assert oracle_gpu_hours(np.zeros(5), 10.0, 1.0, 120.0, 1) == 0.0
    assert oracle_schedule(np.zeros(5), 10.0, 1.0, 120.0).pods == []
