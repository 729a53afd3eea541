"""The serving kernels against queueing theory and against each other."""

from __future__ import annotations

import numpy as np
import pytest
from simkit import outcome, run_static

from aiscaler.core.queueing import wait_exceeds
from aiscaler.sim.serving import fluid_step
from aiscaler.sim.state import SimConfig


@pytest.mark.parametrize("utilisation", [0.5, 0.8, 0.95])
def test_one_slot_per_replica_is_m_m_c_and_meets_erlang_c(utilisation: float) -> None:
    """BENCHMARK.md's check: K = 1, CV = 1, constant rate: attainment = 1 - C(c, a) e^-(c mu -
    lambda) t within 0.01 (the exact kernel; three seeds of 2 x 10^5 s)."""
    replicas, delay = 10, 0.5
    config = SimConfig(capacity=1.0, slots=1, service_cv=1.0, slo_delay_s=delay, max_replicas=20)
    rate = utilisation * replicas
    rates = np.full(200_000, rate)
    measured = [
        outcome(run_static(rates, config, replicas, "exact", seed)).slo_attainment
        for seed in range(3)
    ]
    expected = 1 - wait_exceeds(replicas, rate, 1.0, 1.0, delay)
    assert np.mean(measured) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("utilisation", [0.9, 0.97, 0.99])
def test_the_per_step_kernel_meets_erlang_c_with_many_slots(utilisation: float) -> None:
    """Heavy traffic, 4 replicas x 256 slots, CV 1: the per-step kernel within 0.01."""
    replicas, capacity, delay = 4, 50.0, 2.0
    config = SimConfig(capacity=capacity, slo_delay_s=delay, max_replicas=8)
    rate = utilisation * replicas * capacity
    rates = np.full(100_000, rate)
    measured = [
        outcome(run_static(rates, config, replicas, "approx", seed)).slo_attainment
        for seed in range(3)
    ]
    mu = capacity / config.slots
    expected = 1 - wait_exceeds(replicas * config.slots, rate / mu, mu, 1.0, delay)
    assert np.mean(measured) == pytest.approx(expected, abs=0.01)


def test_the_two_kernels_agree_on_a_varying_demand() -> None:
    """A day of demand swinging +-50% around 60/s every two hours, with a burst; 3 replicas of
    64 slots at 30/s each: both kernels see the same seeded arrivals; their service randomness
    differs, so the means over three seeds are compared."""
    t = np.arange(86_400)
    rates = 60.0 * (1 + 0.5 * np.sin(2 * np.pi * t / 7200.0))
    rates[40_000:40_600] *= 1.6
    config = SimConfig(capacity=30.0, slots=64, slo_delay_s=2.0, max_replicas=8)
    exact = [outcome(run_static(rates, config, 3, "exact", seed)) for seed in range(3)]
    approx = [outcome(run_static(rates, config, 3, "approx", seed)) for seed in range(3)]
    exact_attainment = np.mean([o.slo_attainment for o in exact])
    assert 0.7 < exact_attainment < 0.99  # the peaks overload 3 replicas: a real test
    assert np.mean([o.slo_attainment for o in approx]) == pytest.approx(exact_attainment, abs=0.01)
    assert approx[0].gpu_hours == pytest.approx(exact[0].gpu_hours)


def test_the_fluid_queue_has_no_delay_below_capacity_and_a_backlog_above() -> None:
    config = SimConfig(capacity=10.0, slots=10, queue="fluid", max_replicas=4)
    under = outcome(run_static(np.full(3600, 19.0), config, 2, "approx"))
    assert under.slo_attainment == 1.0 and under.p99_delay_s == 0.0
    # 25/s on 20/s of capacity: the backlog grows 5/s, a request waits backlog / 20 s; the
    # ones arriving after 8 s wait more than 2 s: all but the first 8 s of the hour.
    over = outcome(run_static(np.full(3600, 25.0), config, 2, "approx"))
    assert over.slo_attainment == pytest.approx(8 / 3600, abs=0.002)


@pytest.mark.parametrize(
    ("q", "rate", "c", "expected_q"),
    [
        (0.0, 10.0, 100.0, 10.0 * (1 - np.exp(-1.0))),  # fills towards rate / mu = 10
        (50.0, 0.0, 100.0, 50.0 * np.exp(-1.0)),  # drains exponentially
        (120.0, 100.0, 100.0, 120.0),  # saturated: 100 in, mu c = 100 out
        (120.0, 110.0, 100.0, 130.0),  # saturated: grows 10/s
        (105.0, 0.0, 100.0, 100.0 * np.exp(-(1 - 0.05))),  # drains to c in 0.05 s, then decays
    ],
)
def test_fluid_step_solves_the_queue_exactly(
    q: float, rate: float, c: float, expected_q: float
) -> None:
    end, busy, waiting = fluid_step(q, rate, 1.0, c, 1.0)
    assert end == pytest.approx(expected_q, rel=1e-9)
    assert 0.0 <= busy <= c and waiting >= 0.0


def test_every_request_is_counted_once_started_or_never() -> None:
    config = SimConfig(capacity=10.0, slots=10, max_replicas=4)
    rates = np.full(1000, 30.0)  # one replica, overloaded 3x: most never start
    for kernel in ("exact", "approx"):
        run = run_static(rates, config, 1, kernel)
        arrived = run.cum_arrivals[-1]
        assert run.delays.sum() == pytest.approx(arrived, rel=1e-9)
        assert run.delays[:, -1].sum() > 0.5 * arrived  # never started: the last bin
