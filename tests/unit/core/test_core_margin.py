"""The SLO margin: adaptive-conformal updates from whether the SLO held, and how the planner
applies the factor (core_cases: capacity 10/s per replica; planned level = K x the 0.99 value)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from core_cases import NOW, flat, obs, spec

from aiscaler.core.margin import MAX_MARGIN, MIN_MARGIN, STEP, update_margin
from aiscaler.core.planner import plan_service, replicas_needed_within
from aiscaler.core.types import Mode, PlannerConfig, ScaleMemory, SloMargin

K = 0.88737  # test_core_planner: planned level / the 0.99 value of core_cases' forecast
A = 0.99


@pytest.mark.parametrize(
    ("start", "slo_met", "expected"),
    [
        (1.0, False, math.exp(STEP * A)),  # a missed tick raises it by ~STEP
        (1.5, True, 1.5 * math.exp(-STEP * (1 - A))),  # a met tick lowers it by STEP (1 - a)
        (1.3, None, 1.3),  # not measured: unchanged
        (MAX_MARGIN, False, MAX_MARGIN),  # bounded above
        (MIN_MARGIN, True, MIN_MARGIN),  # bounded below
    ],
)
def test_one_update(start: float, slo_met: bool | None, expected: float) -> None:
    after = update_margin(SloMargin(factor=start), slo_met, A, NOW)
    assert after.factor == pytest.approx(expected)
    assert (after.time, after.before) == (NOW, start)


def test_misses_at_the_allowed_rate_leave_the_margin_where_it_is() -> None:
    margin = SloMargin(factor=1.5)
    for tick in range(1000):  # one miss in every 100 ticks = 1 - a
        margin = update_margin(margin, tick % 100 != 0, A, NOW + 30 * tick)
    assert margin.factor == pytest.approx(1.5)


def test_more_misses_raise_it_and_fewer_lower_it() -> None:
    often = rarely = SloMargin(factor=1.5)
    for tick in range(1000):
        now = NOW + 30 * tick
        often = update_margin(often, tick % 50 != 0, A, now)  # 2% of ticks miss
        rarely = update_margin(rarely, tick % 200 != 0, A, now)  # 0.5%
    assert often.factor > 1.5 > rarely.factor


def test_updating_the_same_tick_again_changes_nothing() -> None:
    once = update_margin(SloMargin(factor=1.2), False, A, NOW)
    assert update_margin(once, False, A, NOW) == once
    assert update_margin(once, True, A, NOW).factor < 1.2  # a re-plan replaces, not adds


def test_the_planner_scales_forecast_and_floor_and_remembers_the_margin() -> None:
    memory = ScaleMemory(margin=SloMargin(factor=1.5, time=NOW - 30))
    plain = plan_service(spec(), obs(5, 20.0, flat(50.0)), ScaleMemory(), NOW)
    wide = plan_service(spec(), obs(5, 20.0, flat(50.0)), memory, NOW)
    assert plain.replicas == 5  # 50 K = 44.4 -> 5
    assert wide.replicas == 7  # 1.5 x 44.4 = 66.6 -> 7
    assert wide.memory.margin == SloMargin(factor=1.5, time=NOW, before=1.5)
    assert "SLO margin x1.5" in wide.message
    # Reactive mode: the floor carries the margin too (20/s x 1.5 = 30/s -> 3).
    reactive = plan_service(spec(mode=Mode.REACTIVE), obs(2, 20.0, None), memory, NOW)
    assert reactive.replicas == 3


def test_the_margin_never_drops_below_one() -> None:
    margin = SloMargin()
    for tick in range(100):  # the SLO always held
        margin = update_margin(margin, True, A, NOW + 30 * tick)
    assert margin.factor == MIN_MARGIN == 1.0


def test_a_missed_slo_this_tick_is_applied_this_tick() -> None:
    memory = ScaleMemory(margin=SloMargin(factor=1.1, time=NOW - 30))
    decision = plan_service(spec(), obs(5, 20.0, flat(50.0), slo_met=False), memory, NOW)
    assert decision.memory.margin.factor == pytest.approx(1.1 * math.exp(STEP * A))
    assert decision.replicas == math.ceil(50 * K * decision.memory.margin.factor / 10)


def test_reservations_use_the_same_margin() -> None:
    service, observed = spec(), obs(1, 20.0, flat(50.0))
    assert replicas_needed_within(service, observed, NOW, 600.0) == 5
    assert replicas_needed_within(service, observed, NOW, 600.0, margin=1.5) == 7
    reactive = replace(service, mode=Mode.REACTIVE)
    assert replicas_needed_within(reactive, observed, NOW, 600.0, margin=1.5) == 3  # 1.5 x 20/s


def test_overlapping_slo_windows_count_once() -> None:
    """Measured over 120 s at a 30 s tick, four ticks see the same slow minute: together they
    move the margin as far as one tick whose window is the tick."""
    overlapping = PlannerConfig(tick_s=30.0, slo_window_s=120.0)
    margin = ScaleMemory()
    for tick in range(4):
        now = NOW + 30 * tick
        observed = obs(5, 20.0, flat(50.0), now=now, slo_met=False)
        margin = plan_service(spec(), observed, margin, now, overlapping).memory
    assert margin.margin.factor == pytest.approx(math.exp(STEP * A))
