"""The oracle: its load, its staffing and its pods, worked out by hand; and a lower bound."""

from __future__ import annotations

import numpy as np
import pytest
from simkit import outcome

from aiscaler.core.queueing import replicas_meeting
from aiscaler.sim.oracle import (
    needed_replicas,
    offered_load,
    oracle_need,
    oracle_pods,
    run_schedule,
)
from aiscaler.sim.runs import PolicyConfig, Scenario, run_config
from aiscaler.sim.state import KERNELS, SimConfig, make_workload, new_run


def test_offered_load_follows_the_rate_with_the_service_time() -> None:
    rates = np.concatenate([np.full(10, 2.0), np.full(100, 6.0)])
    load = offered_load(rates, 5.0)
    assert load[9] == pytest.approx(10.0)  # steady at 2/s x 5 s
    assert load[14] == pytest.approx(30.0 - 20.0 * np.exp(-5 / 5.0))  # relaxes over the service
    assert load[-1] == pytest.approx(30.0, rel=1e-6)


def test_needed_replicas_is_the_least_meeting_the_goal_at_each_load() -> None:
    load = np.array([0.0, 3.0, 50.0, 400.0, 50.0])
    need = needed_replicas(load, 16, 0.1, 1.0, 2.0, 0.99)
    assert need.tolist() == [replicas_meeting(a, 16, 0.1, 1.0, 2.0, 0.99) for a in load]


def test_slots_stay_warm_through_gaps_shorter_than_the_cold_start() -> None:
    # Need per second: 2 for 100 s, 1 for 50 s, 2 for 100 s, 0 for 300 s, 1 for 100 s; D = 60.
    need = np.concatenate([np.full(100, 2), np.full(50, 1), np.full(100, 2), np.zeros(300),
                           np.ones(100)]).astype(np.int64)  # fmt: skip
    requested, stops = oracle_pods(need, 60.0)
    pods = sorted(zip(requested.tolist(), stops.tolist(), strict=True))
    # slot 1: busy 0-250, idle 250-550 (> D: restart), busy 550-650; slot 2: busy 0-100 and
    # 150-250, the 50 s gap kept warm.
    assert pods == [(-60.0, 250.0), (-60.0, 250.0), (490.0, 650.0)]


def test_the_oracle_meets_the_goal_on_its_own_schedule() -> None:
    t = np.arange(20_000)
    rates = 100.0 * (1.2 + np.sin(2 * np.pi * t / 5000.0))
    config = SimConfig(capacity=50.0, slots=64, max_replicas=50)
    workload = make_workload(rates, config, 0, KERNELS["approx"])
    run = new_run(config, workload, KERNELS["approx"], 0.0)
    run_schedule(run, *oracle_pods(oracle_need(rates, config), config.cold_start_s))
    result = outcome(run)
    assert result.slo_attainment >= config.slo_attainment
    # and costs about what its formula says: each slot busy + D per start + warm gaps
    need = oracle_need(rates, config)
    assert result.gpu_hours == pytest.approx(need.sum() / 3600, rel=0.05)


def test_the_oracle_is_capped_at_max_replicas_like_every_policy() -> None:
    """A need beyond max_replicas (a strict SLO on one-slot replicas) runs max_replicas pods and
    misses the goal; it used to write past the pod table."""
    rates = np.full(3_000, 40.0)
    config = SimConfig(capacity=1.0, slots=1, slo_delay_s=1e-6, max_replicas=30)
    assert oracle_need(rates, config).max() > config.max_replicas
    result = run_config(
        Scenario("capped", rates, config, (0,), 0.0, 60.0), PolicyConfig("oracle"), 0
    )
    assert result.evaluate.slo_attainment < config.slo_attainment
    assert result.evaluate.gpu_hours <= config.max_replicas * len(rates) / 3600 + 1e-9
