"""Requests in flight (core.inflight): a long request is sized on the demand of its duration.

Fixture (core_cases): capacity 10/s per replica, forecast step 60 s, the 0.5/0.9/0.99 quantiles
of a row 0.8/0.9/1.0 times the number given; the planner's demand window is 120 s.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from core_cases import NOW, flat, obs, spec

from aiscaler.core.inflight import in_flight_forecast, steps_in_flight
from aiscaler.core.planner import plan_service, replicas_needed_within
from aiscaler.core.types import Mode, PlannerConfig, Reason, ScaleMemory

CONFIG = PlannerConfig(demand_window_s=120.0)


@pytest.mark.parametrize(
    ("request_s", "step_s", "steps"),
    [
        (None, 60.0, 1),  # unknown: the rate is sized as it comes
        (30.0, 60.0, 1),  # shorter than a step: the step's rate counts them
        (60.0, 60.0, 1),
        (90.0, 60.0, 2),
        (764.6, 60.0, 13),
        (764.6, 600.0, 1),
    ],
)
def test_steps_a_request_spans(request_s, step_s, steps):
    assert steps_in_flight(request_s, step_s) == steps


def test_one_step_leaves_the_forecast_as_it_is():
    fc = flat(10.0)
    assert in_flight_forecast(fc, fc.values[:, 0], 1, 8.0) is fc


@pytest.mark.parametrize(
    ("known", "row", "expected"),
    [
        # Rows (8, 9, 10): median 8, spreads 0, 1, 2. Four steps in flight, the three before
        # the origin known at `known` (no spread): row 0 has one uncertain step of four.
        (8.0, 0, (8.0, 8.25, 8.5)),
        (8.0, 1, (8.0, 8.0 + 2**0.5 / 4, 8.0 + 2 * 2**0.5 / 4)),
        # Four uncertain steps: the spread of their mean is half a step's (independent steps).
        (8.0, 3, (8.0, 8.5, 9.0)),
        (8.0, 10, (8.0, 8.5, 9.0)),
        # The known rate weighs in for the steps before the origin.
        (4.0, 0, (5.0, 5.25, 5.5)),
        (4.0, 3, (8.0, 8.5, 9.0)),
    ],
)
def test_the_forecast_of_the_requests_in_flight(known, row, expected):
    fc = flat(10.0)
    got = in_flight_forecast(fc, fc.values[:, 0], 4, known)
    assert got.values[row] == pytest.approx(expected)
    assert (got.step_s, got.quantiles, got.horizon) == (fc.step_s, fc.quantiles, fc.horizon)


def test_a_quantile_below_the_median_stays_below_it():
    fc = replace(flat(10.0), quantiles=(0.1, 0.5, 0.99))  # rows (8, 9, 10) around median 9
    got = in_flight_forecast(fc, fc.values[:, 1], 4, 9.0)
    assert got.values[5] == pytest.approx((8.5, 9.0, 9.5))


def test_steady_demand_needs_the_same_replicas_with_or_without_the_request_time():
    # Little's law: at a steady rate, the requests in flight over S arrive at that same rate.
    certain = replace(flat(55.0), values=np.full((20, 3), 55.0))
    for request_s in (None, 600.0):
        decision = plan_service(
            spec(request_s=request_s), obs(3, 55.0, certain), ScaleMemory(), NOW, CONFIG
        )
        assert decision.replicas == 6


def test_a_burst_of_long_requests_is_not_planned_for_every_minute_at_once():
    # Sparse bursts: idle at the median, 20/s at the 0.9 quantile, 200/s at 0.99, every minute
    # alike; requests last 10 minutes and none are in flight now.
    bursty = replace(flat(1.0), values=np.tile([0.0, 20.0, 200.0], (20, 1)))
    per_minute = plan_service(spec(), obs(1, 0.0, bursty), ScaleMemory(), NOW, CONFIG)
    in_flight = plan_service(spec(request_s=600.0), obs(1, 0.0, bursty), ScaleMemory(), NOW, CONFIG)
    assert per_minute.forecast_value == 200.0
    assert per_minute.recommendation == 33  # planned 320.7/s: 1% of a small mean is far out
    # The lead-time window [120 s, 150 s] is row 2: three uncertain minutes of the ten in
    # flight, so the 0.99 quantile of their mean is 200 sqrt(3) / 10.
    assert in_flight.forecast_value == pytest.approx(200.0 * 3**0.5 / 10)
    assert in_flight.recommendation == 6  # planned 55.5/s
    reserved = replicas_needed_within(spec(request_s=600.0), obs(1, 0.0, bursty), NOW, 600.0)
    assert reserved is not None and reserved < per_minute.recommendation


def test_the_floor_counts_the_requests_still_in_flight_after_a_burst():
    reactive = spec(request_s=600.0, mode=Mode.REACTIVE, min_replicas=0)
    memory = ScaleMemory()
    seen = []
    for t, demand in ((0, 50.0), (300, 0.0), (600, 0.0), (900, 0.0)):
        d = plan_service(reactive, obs(5, demand, None, now=NOW + t), memory, NOW + t, CONFIG)
        memory = d.memory
        seen.append((d.recommendation, len(memory.demand)))
    # The burst's 50/s of 10-minute requests: mean over the last 600 s (samples in (t-600, t]).
    assert seen == [(5, 1), (3, 2), (0, 2), (0, 2)]
    assert "in flight: mean over the last 600s" in d.message
    # Without the request time the floor follows the one-window rate straight down.
    plain = plan_service(
        spec(mode=Mode.REACTIVE, min_replicas=0), obs(5, 0.0, None), ScaleMemory(), NOW, CONFIG
    )
    assert (plain.recommendation, plain.memory.demand) == (0, ())


def test_a_request_within_the_demand_window_keeps_no_samples():
    d = plan_service(spec(request_s=120.0), obs(3, 25.0, flat(10.0)), ScaleMemory(), NOW, CONFIG)
    assert d.memory.demand == ()
    assert "in flight" not in d.message


def test_a_missing_sample_adds_nothing_and_never_scales_down():
    long = spec(request_s=600.0)
    first = plan_service(long, obs(5, 50.0, flat(10.0)), ScaleMemory(), NOW, CONFIG)
    later = plan_service(
        long, obs(5, None, flat(10.0), now=NOW + 60), first.memory, NOW + 60, CONFIG
    )
    assert later.degraded is Reason.METRICS_MISSING
    assert later.replicas == 5
    assert later.memory.demand == first.memory.demand
