"""The backtest of the reactive floor alone (core.floorcheck), and how the planner uses it
(core_cases: capacity 10/s per replica, cold start 120 s, 1..20 replicas, attainment 0.99)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pytest
from core_cases import NOW, flat, obs, spec

from aiscaler.core.allocator import plan_cluster
from aiscaler.core.floorcheck import MEMORY_S, floor_attainment, floor_suffices, record_floor
from aiscaler.core.planner import plan_service, replicas_for
from aiscaler.core.types import (
    FloorRecord,
    Mode,
    PlanBasis,
    PoolSpec,
    Reason,
    ScaleMemory,
    ServiceSpec,
)

TICK_S = 30.0
CAPACITY = 10.0


def replay(
    demands: Sequence[float], service: ServiceSpec | None = None, start: float = NOW
) -> FloorRecord:
    """The record after one tick per demand, each deciding the floor for that demand."""
    service = service or spec()
    record = FloorRecord()
    for i, demand in enumerate(demands):
        floor = replicas_for(demand, CAPACITY)
        record = record_floor(record, service, start + i * TICK_S, floor, demand, CAPACITY, TICK_S)
    return record


@pytest.mark.parametrize(
    ("demands", "served", "why"),
    [
        ([25.0] * 10, 1.0, "steady demand: the floor was ready"),
        # From tick 5, 35/s needs 4; the floor alone has 3 ready until 120 s (4 ticks) later:
        # ticks 5-8 leave 5/s each unserved, of the scored ticks' (4-9) 25 + 35 x 5 = 200/s.
        ([25.0] * 5 + [35.0] * 5, 1 - 4 * 5 / 200, "a rise waits one cold start"),
        # A dip shorter than the scale-down window keeps 3 replicas: nothing is missed after it.
        ([25.0] * 5 + [5.0] * 3 + [25.0] * 3, 1.0, "a dip within the window is held"),
        # 1/s then 8/s: the minimum replica serves up to 10/s.
        ([1.0] * 5 + [8.0] * 5, 1.0, "the minimum replica covers what it can"),
        # Idle ticks are not scored; from idle (the minimum, 1 replica), 25/s waits a cold
        # start for 3: ticks 6-9 leave 15/s each unserved, of 6 x 25/s.
        ([0.0] * 6 + [25.0] * 6, 1 - 4 * 15 / (6 * 25), "idle ticks are not scored"),
    ],
)
def test_the_share_the_floor_alone_would_have_served(
    demands: list[float], served: float, why: str
) -> None:
    assert floor_attainment(replay(demands)) == pytest.approx(served, rel=1e-3), why  # faded


def test_nothing_is_scored_until_a_decision_is_a_cold_start_old() -> None:
    record = replay([25.0] * 4)  # ticks 0-90 s: none is 120 s before another
    assert floor_attainment(record) is None
    assert record.scored == 0
    assert replay([25.0] * 5).scored == 1  # tick 4 scores against tick 0


def test_the_highest_floor_of_the_window_is_held_within_the_replica_bounds() -> None:
    record = replay([25.0, 5.0, 5.0], spec(max_replicas=2))
    assert [t.held for t in record.ticks] == [2, 2, 2]  # 3 capped at 2, then held through 5/s
    window = spec().scale_down.stabilization_window_s
    later = record_floor(record, spec(), NOW + window + 60, 1, 5.0, CAPACITY, TICK_S)
    assert later.ticks[-1].held == 1  # the 3-replica tick left the window


def test_it_suffices_only_on_enough_scored_ticks_at_the_goal() -> None:
    # 1 / (1 - 0.99) = 100 scored ticks; the first 4 ticks score nothing.
    assert not floor_suffices(replay([25.0] * 103), 0.99)
    assert replay([25.0] * 104).scored < 100  # 100 ticks, each faded a little
    assert floor_suffices(replay([25.0] * 110), 0.99)
    missing = replay([25.0] * 5 + [35.0] * 200)  # one rise: 20/s of 7,035/s missed
    assert floor_attainment(missing) == pytest.approx(1 - 20 / (25 + 35 * 200), rel=1e-3)
    assert floor_suffices(missing, 0.99)
    assert not floor_suffices(missing, 0.999)  # needs 1,000 scored ticks, and misses 0.28%


def test_the_record_fades_over_a_day() -> None:
    record = replay([25.0] * 10)
    later = record_floor(record, spec(), record.time + MEMORY_S, 3, 25.0, CAPACITY, TICK_S)
    assert later.scored == pytest.approx(record.scored / math.e + 1)  # the new tick adds one
    assert later.demand == pytest.approx(record.demand / math.e + 25.0)


def test_recording_the_same_tick_again_replaces_it() -> None:
    record = replay([25.0] * 6)
    again = record_floor(record, spec(), record.time, 4, 35.0, CAPACITY, TICK_S)
    assert again == replay([25.0] * 5 + [35.0])
    assert record_floor(again, spec(), record.time, 3, 25.0, CAPACITY, TICK_S) == record


def suffices() -> ScaleMemory:
    """A memory whose floor alone served a steady 25/s (3 replicas) for 2 hours."""
    record = replay([25.0] * 240, start=NOW - 240 * TICK_S)
    return ScaleMemory(floor=record)


def test_the_planner_leaves_the_forecast_out_while_the_floor_suffices() -> None:
    observation = obs(3, 25.0, flat(60.0))  # the forecast asks for 6
    with_forecast = plan_service(spec(), observation, ScaleMemory(), NOW)
    assert with_forecast.basis is PlanBasis.FORECAST
    assert with_forecast.replicas == 6
    assert with_forecast.floor_attainment is None

    floor_alone = plan_service(spec(), observation, suffices(), NOW)
    assert floor_alone.basis is PlanBasis.FLOOR
    assert (floor_alone.replicas, floor_alone.reason) == (3, Reason.OBSERVED_DEMAND)
    assert floor_alone.floor_attainment == pytest.approx(1.0)
    assert "the floor alone would have served 100.00% of demand" in floor_alone.message
    assert "the forecast's 6 not added" in floor_alone.message
    assert floor_alone.forecast_value is not None  # still reported
    assert floor_alone.memory.floor.time == NOW  # this tick recorded


def test_a_floor_that_missed_keeps_the_forecast() -> None:
    rising = [25.0 + 10.0 * (i // 20) for i in range(240)]  # +10/s every 10 minutes
    memory = ScaleMemory(floor=replay(rising, start=NOW - 240 * TICK_S))
    served = floor_attainment(memory.floor)
    assert served is not None and served < 0.99
    decision = plan_service(spec(), obs(3, 25.0, flat(60.0)), memory, NOW)
    assert (decision.basis, decision.replicas) == (PlanBasis.FORECAST, 6)
    assert decision.floor_attainment == pytest.approx(served, abs=1e-3)


def test_reactive_mode_plans_from_the_floor() -> None:
    decision = plan_service(spec(mode=Mode.REACTIVE), obs(3, 25.0, None), ScaleMemory(), NOW)
    assert (decision.basis, decision.replicas) == (PlanBasis.FLOOR, 3)


def test_holding_on_bad_data_ignores_the_forecast_the_floor_made_redundant() -> None:
    stale = obs(3, None, flat(60.0), demand_error="query failed")
    held = plan_service(spec(), stale, suffices(), NOW)
    assert (held.replicas, held.degraded) == (3, Reason.METRICS_MISSING)
    assert held.memory.floor == suffices().floor  # nothing scored without demand
    assert plan_service(spec(), stale, ScaleMemory(), NOW).replicas == 6  # the forecast asks


def test_the_cluster_reserves_no_forecast_headroom_for_a_floor_planned_service() -> None:
    service = spec(pool="a100", gpus_per_replica=4)  # 4 GPUs a replica, 8 a node
    pool = PoolSpec(name="a100", gpus_per_node=8, max_nodes=4, provisioning_s=300.0)
    observation = replace(obs(3, 25.0, flat(60.0)), free_gpus=4)
    ahead = plan_cluster([(service, observation)], [], [pool], {}, NOW)
    floor = plan_cluster([(service, observation)], [], [pool], {"svc": suffices()}, NOW)
    assert (ahead.services[0].replicas, floor.services[0].replicas) == (6, 3)
    assert (ahead.pools[0].nodes_at_lead, floor.pools[0].nodes_at_lead) == (3, 2)
