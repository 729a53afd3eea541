"""The reactive baselines against hand-computed cases of their real algorithms, and closed-loop
behaviours the issue names (KPA never scales to zero with requests queued or in flight)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from simkit import outcome

from aiscaler.sim.reactive import (
    external_metric_replicas,
    kpa_desired,
    normalize,
    pods_metric_replicas,
    reactive_policy,
    run_reactive,
)
from aiscaler.sim.state import KERNELS, SCALARS, SimConfig, make_workload, new_run


def empty_run(config: SimConfig | None = None):  # type: ignore[no-untyped-def]
    config = config or SimConfig(capacity=1.0)
    workload = make_workload(np.zeros(60), config, 0, KERNELS["approx"])
    return new_run(config, workload, KERNELS["approx"], 0.0)


@pytest.mark.parametrize(
    ("total", "reporting", "current", "expected"),
    [
        (100.0, 4, 4, 4),  # ratio 1.00: on target
        (108.0, 4, 4, 4),  # ratio 1.08: inside the 0.1 tolerance
        (92.0, 4, 4, 4),  # ratio 0.92: inside
        (112.0, 4, 4, 5),  # ceil(1.12 * 4) = 5
        (60.0, 4, 4, 3),  # ceil(0.6 * 4) = 3
        (200.0, 2, 4, 8),  # pods without a metric count as 0 on a scale-up: 200/4/25 = 2 -> 8
        (60.0, 2, 4, 4),  # 1.2 on the reporting pods, 0.6 with the missing at 0: flips, hold
        (20.0, 2, 4, 3),  # 0.4 on the reporting; missing at target on a scale-down: 0.7 -> 3
        (46.0, 2, 4, 4),  # 0.92 on reporting; with missing at target 0.96: tolerance, hold
    ],
)
def test_hpa_pods_metric_replica_calculator(
    total: float, reporting: int, current: int, expected: int
) -> None:
    assert pods_metric_replicas(total, reporting, current, 25.0) == expected


@pytest.mark.parametrize(
    ("total", "current", "expected"),
    [(100.0, 4, 4), (109.0, 4, 4), (200.0, 4, 8), (30.0, 4, 2), (0.0, 3, 0), (10.0, 0, 1)],
)
def test_external_average_value_ignores_readiness(
    total: float, current: int, expected: int
) -> None:
    assert external_metric_replicas(total, current, 25.0) == expected


def test_hpa_scale_up_rate_is_max_of_4_pods_and_100_percent_per_15s() -> None:
    run, pol = empty_run(), reactive_policy("hpa", max_replicas=100)[0]
    assert normalize(run, pol, 0.0, 1, 40, 1) == 5  # max(1 + 4, 1 * 2)
    assert normalize(run, pol, 10.0, 5, 40, 1) == 5  # same period: start was 1, limit still 5
    assert normalize(run, pol, 15.0, 5, 40, 1) == 10  # new period: max(5 + 4, 5 * 2)
    assert normalize(run, pol, 30.0, 10, 40, 1) == 20  # max(14, 20)
    capped = reactive_policy("hpa", max_replicas=30)[0]
    assert normalize(empty_run(), capped, 0.0, 20, 200, 1) == 30  # maxReplicas caps


@pytest.mark.parametrize("window_s", [300.0, 60.0])
def test_hpa_scale_down_waits_for_the_stabilisation_window(window_s: float) -> None:
    run, pol = empty_run(), reactive_policy("hpa", window_s=window_s)[0]
    assert normalize(run, pol, 0.0, 10, 10, 1) == 10
    assert normalize(run, pol, window_s - 1, 10, 4, 1) == 10  # 10 recommended within the window
    assert normalize(run, pol, window_s + 1, 10, 4, 1) == 4  # the 10 at t=0 has left it
    assert normalize(run, pol, 3 * window_s, 4, 0, 2) == 2  # down, but never below the minimum


def kpa_state() -> np.void:
    state = np.zeros(1, SCALARS)
    state[0]["panic_since"] = math.nan
    return state[0]


def test_kpa_stable_mode_and_the_scale_down_rate() -> None:
    pol, s = reactive_policy("kpa")[0], kpa_state()
    assert kpa_desired(35.0, 35.0, 4, 10.0, pol, 0.0, s) == 4  # ceil(35 / 10)
    assert kpa_desired(5.0, 5.0, 10, 10.0, pol, 2.0, s) == 5  # at most halve: floor(10 / 2)
    assert kpa_desired(5.0, 5.0, 0, 10.0, pol, 4.0, s) == 1  # from zero: ready counts as 1
    assert math.isnan(s["panic_since"])


def test_kpa_panic_takes_the_larger_of_stable_and_panic_and_never_scales_down() -> None:
    pol, s = reactive_policy("kpa")[0], kpa_state()
    assert kpa_desired(40.0, 100.0, 4, 10.0, pol, 0.0, s) == 10  # 10 / 4 >= 2: panic
    assert s["panic_since"] == 0.0
    # Still panicking; the stable count (12) is above the panic count (9): Knative takes the max.
    assert kpa_desired(120.0, 90.0, 10, 10.0, pol, 2.0, s) == 12
    assert kpa_desired(40.0, 30.0, 4, 10.0, pol, 4.0, s) == 12  # never down in panic
    assert kpa_desired(40.0, 30.0, 4, 10.0, pol, 60.0, s) == 12  # within a stable window
    assert kpa_desired(40.0, 30.0, 4, 10.0, pol, 62.0, s) == 4  # panic over: stable count
    assert math.isnan(s["panic_since"]) and s["max_panic_pods"] == 0


def ready_per_window(rates: np.ndarray, policy: str, config: SimConfig, **knobs) -> np.ndarray:  # type: ignore[no-untyped-def]
    workload = make_workload(rates, config, 0, KERNELS["exact"])
    run = new_run(config, workload, KERNELS["exact"], 0.0)
    record = reactive_policy(policy, **knobs)
    record[0]["replicas"] = 1
    run_reactive(run, record, np.zeros(0, dtype=np.int64))
    return run.win_pods[: run.s[0]["closed_windows"]]


def test_kpa_scales_to_zero_after_the_grace_period_once_nothing_is_in_flight() -> None:
    # 1 request/s for a minute of 2 s requests, then nothing. In rps mode the stable rate is 0
    # once the minute leaves the 60 s window (about 135 s with the scrape), plus 30 s of grace.
    rates = np.zeros(600)
    rates[:60] = 1.0
    config = SimConfig(capacity=1.0, slots=2, cold_start_s=0.0, max_replicas=10)
    pods = ready_per_window(rates, "kpa", config, metric="rate")
    assert pods[5] >= 1 and pods[14] == 0  # windows of 15 s: up at 90 s, zero by 225 s


def test_kpa_never_scales_to_zero_while_requests_are_running() -> None:
    # A minute of arrivals, each held for 300 s: the rate is gone after two minutes but the
    # requests still run for five; rps mode would scale to zero, the in-flight check holds.
    rates = np.zeros(900)
    rates[:60] = 1.0
    config = SimConfig(
        capacity=1 / 300, slots=1, service_cv=0.0, cold_start_s=0.0, max_replicas=100
    )
    pods = ready_per_window(rates, "kpa", config, metric="rate")
    assert pods[: 300 // 15].min() >= 1  # every window while requests run keeps a pod
    assert pods[-1] == 0  # and once they are done, zero


def test_keda_deactivates_after_the_cooldown_and_reactivates_at_a_polling() -> None:
    # 1/s in minute 0 and minute 10, nothing between. The trigger is last active at the poll at
    # 90 s (the 1-minute rate still sees demand); cooldown 300 s -> zero at the poll at 390 s.
    rates = np.zeros(720)
    rates[:60] = rates[600:660] = 1.0
    config = SimConfig(capacity=1.0, slots=4, cold_start_s=20.0, max_replicas=10)
    pods = ready_per_window(rates, "keda", config)
    assert pods[24] >= 1 and pods[26] == 0  # windows ending 375 s and 405 s
    assert pods[40] == 0 and pods[42] >= 1  # 615 s: not yet polled; 645 s: activated at 630


def test_unknown_knob_is_rejected_with_its_name() -> None:
    with pytest.raises(ValueError, match="hpa has no knob 'panic'"):
        reactive_policy("hpa", panic=2.0)


def test_tuned_hpa_with_a_floor_serves_a_burst_that_the_default_misses() -> None:
    # Flat 40/s with a 3x burst for 5 minutes; a floor of 8 replicas of 20/s holds it.
    rates = np.full(3600, 40.0)
    rates[1800:2100] = 120.0
    config = SimConfig(capacity=20.0, slots=32, max_replicas=20)
    workload = make_workload(rates, config, 0, KERNELS["exact"])
    results = {}
    for name, knobs in (("default", {}), ("floor", {"min_replicas": 8})):
        run = new_run(config, workload, KERNELS["exact"], 0.0)
        record = reactive_policy("hpa", **knobs)
        record[0]["replicas"] = max(3, knobs.get("min_replicas", 0))
        run_reactive(run, record, np.zeros(0, dtype=np.int64))
        results[name] = outcome(run)
    assert results["floor"].slo_attainment > results["default"].slo_attainment
    assert results["floor"].gpu_hours > results["default"].gpu_hours
