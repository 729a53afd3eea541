"""Simulator accounting on tiny synthetic demands, each expected value worked out by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from aiscaler.sim.engine import (
    SAMPLES_PER_STEP,
    Demand,
    Pod,
    Schedule,
    SimConfig,
    evaluate,
    ready_per_step,
    run_policy,
    step_for_bin,
)


@dataclass
class Script:
    """A policy that asks for `plan[t]` replicas from time t on (and records what it saw)."""

    plan: dict[float, int]
    initial: int = 1
    period_s: float = 10.0

    def start(self, demand: Demand, config: SimConfig) -> int:
        self.seen: list[tuple[float, int, int, int]] = []
        self.current = self.initial
        return self.initial

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int:
        self.seen.append((now, replicas, ready, free_gpus))
        self.current = self.plan.get(now, self.current)
        return self.current


@pytest.mark.parametrize(("bin_s", "step"), [(10, 10), (60, 10), (600, 10), (5, 5), (15, 7.5)])
def test_step_is_at_most_10s_and_divides_the_bin(bin_s: float, step: float) -> None:
    assert step_for_bin(bin_s) == step


def test_demand_window_means_see_only_the_past() -> None:
    d = Demand(np.array([1.0, 3.0]), bin_s=60)  # 6 steps of 1/s then 6 of 3/s
    assert d.n == 12
    assert d.mean_rate(60.0, 60.0) == pytest.approx(1.0)  # the future 3/s is not seen
    assert d.mean_rate(90.0, 60.0) == pytest.approx(2.0)  # half a minute of each
    assert d.mean_rate(65.0, 10.0) == pytest.approx(2.0)  # 5 s at 1/s, 5 s at 3/s
    assert d.mean_rate(0.0, 60.0) == pytest.approx(1.0)  # no past yet: the current rate


def test_ready_capacity_is_exact_for_pods_ready_mid_step() -> None:
    pods = [Pod(-5.0, 5.0, 100.0, 100.0), Pod(0.0, 20.0, 25.0, 25.0)]
    np.testing.assert_allclose(ready_per_step(pods, 10.0, 4), [0.5, 1.0, 1.5, 1.0])


def test_queueing_delay_grows_while_demand_exceeds_capacity() -> None:
    # 2 units/s for 20 s against one replica serving 1/s: the unit arriving at t leaves at 2t
    # (FIFO, departures at 1/s from time 0), so its delay is t. Delays are sampled at
    # SAMPLES_PER_STEP instants per step; within 2 s only the sample at t = 1.25 s.
    demand = Demand(np.array([2.0, 2.0, 0.0, 0.0, 0.0]), bin_s=10)
    config = SimConfig(capacity=1.0, cold_start_s=0.0, slo_delay_s=2.0)
    out = evaluate(Schedule([Pod(0.0, 0.0, 50.0, 50.0)], 0), demand, config)
    assert SAMPLES_PER_STEP == 4
    assert out.slo_attainment == pytest.approx(1 / 8)
    assert out.p99_delay_s == pytest.approx(18.75)  # the latest sample, t = 18.75 s
    assert out.worst_5min_attainment == pytest.approx(1 / 8)
    assert out.gpu_hours == pytest.approx(50 / 3600)


def test_enough_capacity_meets_the_slo_and_work_never_served_is_late() -> None:
    demand = Demand(np.array([3.0, 3.0, 3.0]), bin_s=10)
    config = SimConfig(capacity=1.0)
    served = evaluate(Schedule([Pod(-120.0, 0.0, 30.0, 30.0)] * 3, 0), demand, config)
    assert served.slo_attainment == 1.0 and served.p99_delay_s == 0.0
    assert served.gpu_hours == pytest.approx(3 * 150 / 3600)  # warm-up from -120 s is paid
    starved = evaluate(Schedule([], 0), demand, config)
    assert starved.slo_attainment == 0.0
    assert starved.p99_delay_s == pytest.approx(30.0)  # capped at the trace duration


@pytest.mark.parametrize(
    ("since_s", "attainment", "worst", "gpu_seconds", "cold_starts"),
    [
        # The whole run: of the 40 units of the first 20 s (2 units/s on one replica), the one
        # arriving at t waits t (FIFO at 1/s): 1 of their 8 samples is within 2 s; the 20 units
        # after 40 s are on time, and all of it is one 5-minute window.
        (-math.inf, 25 / 60, 25 / 60, 90 + 50 + 15, 2),
        # From 40 s the backlog is gone and every unit is on time; only the GPU time billed from
        # 40 s and the pod requested after it count.
        (40.0, 1.0, 1.0, 20 + 20 + 15, 1),
        # Nothing arrives after the end: nothing to miss, nothing billed.
        (60.0, 1.0, 1.0, 0, 0),
    ],
)
def test_measuring_from_a_time_counts_only_what_happens_from_then_on(
    since_s, attainment, worst, gpu_seconds, cold_starts
) -> None:
    demand = Demand(np.array([2.0, 2.0, 0.0, 0.0, 1.0, 1.0]), bin_s=10)
    config = SimConfig(capacity=1.0, slo_delay_s=2.0)
    pods = [Pod(-30.0, 0.0, 60.0, 60.0), Pod(10.0, 40.0, 60.0, 60.0), Pod(45.0, 60.0, 60.0, 60.0)]
    out = evaluate(Schedule(pods, 2), demand, config, since_s=since_s)
    assert out.slo_attainment == pytest.approx(attainment)
    assert out.worst_5min_attainment == pytest.approx(worst)
    assert out.gpu_hours == pytest.approx(gpu_seconds / 3600)
    assert out.cold_starts == cold_starts
    assert out.scale_events == 2  # always the whole run's


def test_scale_up_waits_the_cold_start_and_is_billed_from_the_request() -> None:
    demand = Demand(np.zeros(10), bin_s=10)  # 100 s
    config = SimConfig(capacity=1.0, cold_start_s=30.0)
    policy = Script({20.0: 3})
    schedule = run_policy(policy, demand, config)
    out = evaluate(schedule, demand, config)
    # initial pod: requested at -30, runs to 100 -> 130 s; two pods requested at 20 -> 80 s each
    assert out.gpu_hours == pytest.approx((130 + 2 * 80) / 3600)
    assert out.cold_starts == 2 and out.scale_events == 1
    np.testing.assert_allclose(out.ready_replicas, [1, 1, 1, 1, 1, 3, 3, 3, 3, 3])
    # the policy saw the new pods starting, then ready
    assert (40.0, 3, 1, 0) in policy.seen and (50.0, 3, 3, 0) in policy.seen


def test_scale_down_removes_starting_pods_first_and_stops_their_bill() -> None:
    demand = Demand(np.zeros(10), bin_s=10)
    config = SimConfig(capacity=1.0, cold_start_s=60.0)
    schedule = run_policy(Script({0.0: 2, 30.0: 1}), demand, config)
    out = evaluate(schedule, demand, config)
    # the new pod (requested at 0) is removed at 30 before it was ready: 30 s billed, no capacity
    assert out.gpu_hours == pytest.approx((160 + 30) / 3600)
    np.testing.assert_allclose(out.ready_replicas, np.ones(10))
    assert out.scale_events == 2


def test_removing_a_ready_pod_drains_for_the_configured_time() -> None:
    demand = Demand(np.zeros(10), bin_s=10)
    config = SimConfig(capacity=1.0, cold_start_s=0.0, drain_s=15.0)
    out = evaluate(run_policy(Script({50.0: 1}, initial=2), demand, config), demand, config)
    assert out.gpu_hours == pytest.approx((100 + 50 + 15) / 3600)
    np.testing.assert_allclose(out.ready_replicas, [2] * 5 + [1] * 5)


def test_no_free_gpu_adds_node_provisioning_to_the_cold_start() -> None:
    demand = Demand(np.zeros(20), bin_s=10)  # 200 s
    config = SimConfig(capacity=1.0, cold_start_s=30.0, node_provision_s=50.0, free_gpus=1)
    policy = Script({0.0: 3})
    out = evaluate(run_policy(policy, demand, config), demand, config)
    # one new pod fits the free GPU (ready at 30), the other waits for a node (ready at 80)
    expected = [1] * 3 + [2] * 5 + [3] * 12
    np.testing.assert_allclose(out.ready_replicas, expected)
    assert policy.seen[0] == (0.0, 1, 1, 1)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SimConfig(capacity=0.0)
    with pytest.raises(ValueError, match="attainment"):
        SimConfig(capacity=1.0, slo_attainment=1.0)
