"""plan_cluster: budgets, priorities, SLO risk, training sizing, node plans — by hand.

Each service's own decision is set through flat demand: demand 10 n with capacity 10 and
current replicas n means "wants n" with no rate limit in the way.
"""

from __future__ import annotations

import pytest
from core_cases import NOW, flat, forecast, obs, spec

from aiscaler.core.allocator import plan_cluster
from aiscaler.core.types import (
    ClusterPlan,
    Mode,
    PoolSpec,
    Reason,
    ScaleMemory,
    ServiceObservation,
    ServiceSpec,
    TrainingMode,
    TrainingObservation,
    TrainingSpec,
)

POOL = PoolSpec(name="gpu", gpus_per_node=8, max_nodes=1, provisioning_s=300.0)


def wants(name: str, n: int, **changes: object) -> tuple[ServiceSpec, ServiceObservation]:
    ready = changes.pop("ready", None)
    s = spec(name=name, pool="gpu", **changes)
    return s, obs(n, 10.0 * n, flat(10.0 * n), ready_replicas=ready)


def training(
    current: int, last_resize: float | None = None, **changes: object
) -> tuple[TrainingSpec, TrainingObservation]:
    fields: dict[str, object] = {
        "name": "train",
        "max_workers": 8,
        "pool": "gpu",
        "allowed_sizes": (1, 2, 4, 8),
    }
    fields.update(changes)
    return TrainingSpec(**fields), TrainingObservation(current, last_resize)  # type: ignore[arg-type]


def plan(services=(), trainings=(), pools=(POOL,), budget=None, memories=None) -> ClusterPlan:  # type: ignore[no-untyped-def]
    return plan_cluster(
        list(services), list(trainings), list(pools), memories or {}, NOW, global_budget=budget
    )


def replicas(p: ClusterPlan) -> dict[str, tuple[int, Reason]]:
    return {d.name: (d.replicas, d.reason) for d in p.services}


def test_higher_priority_first_lower_capped_with_budget_limited() -> None:
    p = plan([wants("low", 5, priority=0), wants("high", 6, priority=1)])
    assert replicas(p) == {"low": (2, Reason.BUDGET_LIMITED), "high": (6, Reason.FORECAST_PEAK)}
    low = p.services[0]
    assert low.limited == Reason.BUDGET_LIMITED and "budget allows 2 of 5" in low.message


def test_equal_priority_most_at_risk_first() -> None:
    p = plan(
        [wants("a", 4, ready=4), wants("b", 4, ready=0)],
        pools=[PoolSpec(name="gpu", gpus_per_node=8, max_nodes=1, budget=6)],
    )
    assert replicas(p) == {"a": (2, Reason.BUDGET_LIMITED), "b": (4, Reason.FORECAST_PEAK)}


def test_global_budget_spans_pools() -> None:
    pools = [
        PoolSpec(name="gpu", gpus_per_node=8, max_nodes=1),
        PoolSpec(name="other", gpus_per_node=8, max_nodes=1),
    ]
    other = spec(name="b", pool="other")
    p = plan([wants("a", 6), (other, obs(6, 60.0, flat(60.0)))], pools=pools, budget=10)
    assert replicas(p) == {"a": (6, Reason.FORECAST_PEAK), "b": (4, Reason.BUDGET_LIMITED)}


def test_budget_counts_gpus_per_replica() -> None:
    p = plan(
        [wants("a", 5, gpus_per_replica=2)],
        pools=[PoolSpec(name="gpu", gpus_per_node=8, max_nodes=1, budget=7)],
    )
    assert replicas(p) == {"a": (3, Reason.BUDGET_LIMITED)}


def test_budget_wins_over_min_replicas() -> None:
    p = plan([wants("a", 2, min_replicas=2)], budget=0)
    assert replicas(p) == {"a": (0, Reason.BUDGET_LIMITED)}


def test_unpooled_service_has_only_the_global_budget() -> None:
    p = plan([(spec(name="free"), obs(30, 300.0, flat(300.0)))], pools=[], budget=None)
    assert replicas(p) == {"free": (20, Reason.TOO_MANY_REPLICAS)}


def test_budget_cap_is_remembered_as_the_applied_change() -> None:
    capped = wants("a", 6, request_s=600.0)
    p = plan([capped], pools=[PoolSpec(name="gpu", gpus_per_node=8, max_nodes=1, budget=5)])
    assert [e.change for e in p.services[0].memory.events] == [-1]
    assert [r.replicas for r in p.services[0].memory.recommendations] == [6]
    # The demand samples a long request is sized on survive the cap (core.inflight).
    assert [s.rate for s in p.services[0].memory.demand] == [60.0]


def test_recommend_mode_counts_what_it_holds() -> None:
    rec_spec, rec_obs = wants("rec", 3, mode=Mode.RECOMMEND)
    rec_obs = obs(3, 60.0, flat(60.0))  # would want 6, holds 3
    p = plan([(rec_spec, rec_obs), wants("a", 6)])
    assert replicas(p) == {"rec": (6, Reason.FORECAST_PEAK), "a": (5, Reason.BUDGET_LIMITED)}
    assert not p.services[0].apply


def test_training_takes_leftover_in_allowed_sizes() -> None:
    p = plan([wants("s", 3)], [training(2)])
    t = p.trainings[0]
    assert (t.workers, t.reason) == (4, Reason.LEFTOVER_GPUS)


def test_training_growth_waits_for_the_cooldown() -> None:
    p = plan([wants("s", 3)], [training(2, last_resize=NOW - 100)])
    assert (p.trainings[0].workers, p.trainings[0].reason) == (2, Reason.RESIZE_COOLDOWN)


PEAK = forecast([30.0, 30.0, 30.0, 70.0] + [30.0] * 16)  # 7 replicas in (180 s, 240 s]


@pytest.mark.parametrize(
    ("lead_time_s", "last_resize", "workers", "reason"),
    [
        # horizon 120 + 30 + 60 = 210 s reaches the peak: 8 - 7 = 1 GPU left
        (60.0, None, 1, Reason.INFERENCE_PEAK_AHEAD),
        (60.0, NOW - 100, 1, Reason.INFERENCE_PEAK_AHEAD),  # a shrink ignores the cooldown
        # horizon 150 s does not: keep 4 (and do not grow into the peak)
        (0.0, None, 4, Reason.LEFTOVER_GPUS),
    ],
)
def test_training_shrinks_ahead_of_a_forecast_peak(
    lead_time_s: float, last_resize: float | None, workers: int, reason: Reason
) -> None:
    service = (spec(name="s", pool="gpu"), obs(3, 30.0, PEAK))
    p = plan([service], [training(4, last_resize, lead_time_s=lead_time_s)])
    assert p.services[0].replicas == 3
    assert (p.trainings[0].workers, p.trainings[0].reason) == (workers, reason)


def test_training_shrinks_when_inference_needs_the_gpus_now() -> None:
    p = plan([wants("s", 6)], [training(4)])
    assert (p.trainings[0].workers, p.trainings[0].reason) == (2, Reason.BUDGET_LIMITED)


def test_training_pauses_when_its_minimum_does_not_fit() -> None:
    p = plan([wants("s", 6)], [training(4, min_workers=4, allowed_sizes=())])
    assert p.trainings[0].workers == 0


def test_trainings_by_priority() -> None:
    low = training(0, name="low", allowed_sizes=(), max_workers=4)
    high = training(0, name="high", allowed_sizes=(), max_workers=4, priority=1)
    p = plan([wants("s", 2)], [low, high])
    assert {t.name: t.workers for t in p.trainings} == {"low": 2, "high": 4}


def test_recommend_mode_training_is_reported_not_counted_twice() -> None:
    rec = training(2, mode=TrainingMode.RECOMMEND)
    p = plan([wants("s", 3)], [rec])
    assert (p.trainings[0].workers, p.trainings[0].apply) == (4, False)


def test_pool_plan_keeps_balloons_for_demand_within_provisioning_time() -> None:
    pool = PoolSpec(name="gpu", gpus_per_node=4, max_nodes=4, provisioning_s=300.0)
    rising = forecast([30.0] * 5 + [120.0] * 15)  # 12 replicas from 300 s on
    p = plan([(spec(name="s", pool="gpu"), obs(3, 30.0, rising))], pools=[pool])
    assert p.services[0].replicas == 3  # not yet: beyond its own lead time
    (pp,) = p.pools
    assert (pp.nodes_now, pp.nodes_at_lead, pp.balloon_pods, pp.balloon_gpus) == (1, 3, 2, 4)
    assert pp.reason == Reason.HEADROOM and pp.gpus_planned == 3


def test_balloons_ask_for_a_node_a_cold_start_before_the_replicas_do() -> None:
    # Provisioning 300 s, cold start 120 s: a need from 420-480 s on is the balloons' (the node
    # must be there when the replica is scaled, 120 s before), not yet the Deployment's.
    pool = PoolSpec(name="gpu", gpus_per_node=4, max_nodes=4, provisioning_s=300.0)
    later = forecast([30.0] * 7 + [120.0] * 13)
    p = plan([(spec(name="s", pool="gpu"), obs(3, 30.0, later))], pools=[pool])
    assert p.services[0].replicas == 3
    (pp,) = p.pools
    assert (pp.nodes_now, pp.balloon_pods) == (1, 2)
    beyond = forecast([30.0] * 8 + [120.0] * 12)  # from 480 s on: beyond every lead
    p = plan([(spec(name="s", pool="gpu"), obs(3, 30.0, beyond))], pools=[pool])
    assert p.pools[0].balloon_pods == 0


def test_memories_are_used_per_service() -> None:
    s, o = wants("a", 6)
    calm = obs(6, 10.0, flat(10.0))
    stabilised = plan([(s, calm)], memories={"a": p_memory(s, o)})
    fresh = plan([(s, calm)])
    assert stabilised.services[0].replicas == 6
    assert fresh.services[0].replicas == 1


def p_memory(s: ServiceSpec, o: ServiceObservation) -> ScaleMemory:
    earlier = plan_cluster([(s, o)], [], [POOL], {}, NOW - 60)
    return earlier.services[0].memory


def test_negative_global_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="global budget"):
        plan_cluster([], [], [POOL], {}, NOW, global_budget=-1)


@pytest.mark.parametrize(
    ("services", "trainings", "pools", "message"),
    [
        ([wants("a", 1)], [], [], "unknown pool"),
        ([wants("a", 1, gpus_per_replica=16)], [], [POOL], "exceed pool gpu"),
        ([wants("a", 1), wants("a", 2)], [], [POOL], "unique"),
        ([], [training(1, allowed_sizes=(9,))], [POOL], "allowed sizes"),
        ([], [training(1, min_workers=0)], [POOL], "min <= max workers"),
        ([], [training(1, gpus_per_worker=0)], [POOL], "gpus_per_worker"),
        ([], [training(-1)], [POOL], "current workers"),
        ([], [training(1, cooldown_s=-1.0)], [POOL], "cooldown_s"),
        ([], [], [PoolSpec(name="x", gpus_per_node=8, max_nodes=1, budget=-1)], "budget"),
        ([], [], [POOL, POOL], "pool names"),
        ([], [], [PoolSpec(name="x", gpus_per_node=0, max_nodes=1)], "gpus_per_node"),
        ([wants("a", 1, max_replicas=0, min_replicas=0)], [], [POOL], "max_replicas"),
    ],
)
def test_inconsistent_input_is_a_clear_error(services, trainings, pools, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        plan_cluster(services, trainings, pools, {}, NOW)


def test_zero_pool_budget_allows_nothing() -> None:
    zero = PoolSpec(name="gpu", gpus_per_node=8, max_nodes=1, budget=0)
    p = plan([wants("a", 2)], [training(0)], pools=[zero])
    assert replicas(p) == {"a": (0, Reason.BUDGET_LIMITED)}
    assert p.trainings[0].workers == 0


def test_cooldown_does_not_hold_a_size_the_spec_no_longer_allows() -> None:
    p = plan(
        [wants("s", 2)], [training(1, last_resize=NOW - 10, min_workers=2, allowed_sizes=(2, 4))]
    )
    assert p.trainings[0].workers == 4
