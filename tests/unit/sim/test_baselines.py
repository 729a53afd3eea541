"""The reactive baselines against hand-computed cases of their real algorithms."""

from __future__ import annotations

import numpy as np
import pytest

from aiscaler.sim.baselines import (
    HPA_TOLERANCE,
    HpaController,
    Keda,
    Kpa,
    KpaState,
    Static,
    hpa_external_average_value_replicas,
    hpa_pods_metric_replicas,
    kpa_desired,
)
from aiscaler.sim.engine import Demand, SimConfig, evaluate, run_policy


@pytest.mark.parametrize(
    ("demand", "ready", "starting", "expected"),
    [
        (100.0, 4, 0, 4),  # ratio 1.00: on target
        (108.0, 4, 0, 4),  # ratio 1.08: inside the 0.1 tolerance band
        (92.0, 4, 0, 4),  # ratio 0.92: inside the band
        (112.0, 4, 0, 5),  # ratio 1.12: ceil(1.12 * 4) = 5
        (60.0, 4, 0, 3),  # ratio 0.60: ceil(0.6 * 4) = 3
        (200.0, 2, 2, 8),  # unready pods count as 0 on scale-up: ratio 200/100 = 2 -> 8
        (60.0, 2, 2, 4),  # ratio 1.2 on ready pods, 0.6 with unready at 0: direction flips, hold
        (25.0, 2, 2, 1),  # scale-down is computed on the ready pods: ceil(0.5 * 2) = 1
        (50.0, 0, 3, None),  # no pod has a metric: the HPA cannot compute
    ],
)
def test_hpa_pods_metric_replica_calculator(
    demand: float, ready: int, starting: int, expected: int | None
) -> None:
    assert hpa_pods_metric_replicas(demand, ready, starting, 25.0, HPA_TOLERANCE) == expected


@pytest.mark.parametrize(
    ("total", "current", "expected"),
    [(100.0, 4, 4), (109.0, 4, 4), (200.0, 4, 8), (30.0, 4, 2), (0.0, 3, 0), (10.0, 0, 1)],
)
def test_hpa_external_average_value_ignores_readiness(
    total: float, current: int, expected: int
) -> None:
    assert hpa_external_average_value_replicas(total, current, 25.0, HPA_TOLERANCE) == expected


def test_hpa_scale_up_rate_is_max_of_4_pods_and_100_percent_per_15s() -> None:
    ctrl = HpaController(min_replicas=1, max_replicas=100)
    assert ctrl.normalize(0.0, 1, 40) == 5  # max(1 + 4, 1 * 2)
    assert ctrl.normalize(10.0, 5, 40) == 5  # same period: start was 1, limit still 5
    assert ctrl.normalize(15.0, 5, 40) == 10  # new period: max(5 + 4, 5 * 2)
    assert ctrl.normalize(30.0, 10, 40) == 20  # max(14, 20)
    assert ctrl.normalize(45.0, 20, 200) == 40
    assert HpaController(1, 30).normalize(0.0, 20, 200) == 30  # maxReplicas caps


def test_hpa_scale_down_waits_for_the_300s_stabilisation_window() -> None:
    ctrl = HpaController(min_replicas=1, max_replicas=100)
    assert ctrl.normalize(0.0, 10, 10) == 10
    assert ctrl.normalize(100.0, 10, 4) == 10  # 10 was recommended within 300 s
    assert ctrl.normalize(299.0, 10, 4) == 10
    assert ctrl.normalize(301.0, 10, 4) == 4  # the 10 at t=0 left the window
    assert ctrl.normalize(600.0, 4, 0) == 4  # 4 recommended at 301: still in the window
    assert ctrl.normalize(902.0, 4, 0) == 1  # then down, but never below minReplicas


def test_kpa_stable_mode_and_the_scale_down_rate() -> None:
    state = KpaState()
    assert kpa_desired(35.0, 35.0, 4, 10.0, 0.0, state) == 4  # ceil(35 / 10)
    assert kpa_desired(5.0, 5.0, 10, 10.0, 2.0, state) == 5  # at most halve: floor(10 / 2)
    assert kpa_desired(5.0, 5.0, 0, 10.0, 4.0, state) == 1  # from zero: ready counts as 1
    assert state.panic_since is None


def test_kpa_panics_at_200_percent_and_holds_the_panic_peak_for_a_stable_window() -> None:
    state = KpaState()
    assert kpa_desired(40.0, 100.0, 4, 10.0, 0.0, state) == 10  # 10 / 4 = 2.5 >= 2: panic
    assert state.panic_since == 0.0
    assert kpa_desired(40.0, 30.0, 4, 10.0, 2.0, state) == 10  # panic never scales down
    assert kpa_desired(40.0, 30.0, 4, 10.0, 60.0, state) == 10  # still within 60 s
    assert kpa_desired(40.0, 30.0, 4, 10.0, 62.0, state) == 4  # panic over: stable count
    assert state.panic_since is None and state.max_panic_pods == 0


def test_kpa_scales_to_zero_after_the_grace_period() -> None:
    # 1/s for a minute, then nothing: the stable window empties at 120 s, 30 s grace -> 150 s.
    demand = Demand(np.array([1.0, 0.0, 0.0, 0.0, 0.0]), bin_s=60)
    config = SimConfig(capacity=1.0, cold_start_s=0.0)
    out = evaluate(run_policy(Kpa(), demand, config), demand, config)
    assert out.ready_replicas[14] >= 1 and out.ready_replicas[15] == 0


def test_keda_deactivates_after_the_cooldown_and_reactivates_at_a_polling() -> None:
    # 1/s in minute 0 and minute 10, nothing between. The trigger is last active at the poll at
    # 90 s (the 1-minute rate still sees demand); cooldown 300 s -> zero at the poll at 390 s.
    rate = np.zeros(12)
    rate[[0, 10]] = 1.0
    demand = Demand(rate, bin_s=60)
    config = SimConfig(capacity=1.0, cold_start_s=20.0)
    out = evaluate(run_policy(Keda(), demand, config), demand, config)
    ready = out.ready_replicas
    assert ready[38] >= 1 and ready[39] == 0
    # demand returns at 600 s; the poll at 630 s sees it, the pod is ready 20 s later
    assert ready[64] == 0 and ready[65] == 1


@pytest.mark.parametrize(("quantile", "expected"), [(1.0, 10), (0.5, 2)])
def test_static_sizes_for_the_peak_or_a_quantile(quantile: float, expected: int) -> None:
    demand = Demand(np.array([1.0, 2.0, 2.0, 10.0]), bin_s=10)
    assert Static(quantile).start(demand, SimConfig(capacity=1.0)) == expected
