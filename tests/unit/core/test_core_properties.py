"""Properties of the decision core over random inputs (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiscaler.core.allocator import plan_cluster
from aiscaler.core.planner import plan_service
from aiscaler.core.types import (
    Forecast,
    Mode,
    PoolSpec,
    Recommendation,
    ScaleEvent,
    ScaleMemory,
    ScalingRules,
    ServiceObservation,
    ServiceSpec,
    TrainingMode,
    TrainingObservation,
    TrainingSpec,
)

NOW = 50_000.0
QUANTILES = (0.5, 0.9, 0.99)
FEW = settings(max_examples=150, deadline=None)

rules = st.builds(
    ScalingRules,
    stabilization_window_s=st.sampled_from([0.0, 60.0, 300.0]),
    max_replicas=st.one_of(st.none(), st.integers(0, 5)),
    max_percent=st.sampled_from([0.0, 50.0, 100.0, 200.0]),
    period_s=st.sampled_from([15.0, 60.0]),
)


@st.composite
def service_specs(draw: st.DrawFn, pools: tuple[str | None, ...] = (None,)) -> ServiceSpec:
    max_replicas = draw(st.integers(1, 20))
    return ServiceSpec(
        name=draw(st.text("abcdefgh", min_size=1, max_size=6)),
        max_replicas=max_replicas,
        min_replicas=draw(st.integers(0, max_replicas)),
        gpus_per_replica=draw(st.integers(1, 4)),
        pool=draw(st.sampled_from(pools)),
        capacity_per_replica=draw(st.floats(1.0, 50.0)),
        cold_start_s=draw(st.sampled_from([0.0, 60.0, 120.0, 300.0])),
        attainment=draw(st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999])),
        mode=draw(st.sampled_from(list(Mode))),
        priority=draw(st.integers(0, 2)),
        scale_up=draw(rules),
        scale_down=draw(rules),
    )


@st.composite
def forecasts(draw: st.DrawFn) -> Forecast:
    horizon = draw(st.integers(1, 16))
    rows = draw(
        st.lists(
            st.lists(st.floats(0.0, 500.0), min_size=3, max_size=3),
            min_size=horizon,
            max_size=horizon,
        )
    )
    values = np.sort(np.array(rows, dtype=np.float64), axis=1)  # quantiles non-decreasing
    return Forecast(step_s=60.0, quantiles=QUANTILES, values=values, source="test")


@st.composite
def observations(draw: st.DrawFn, valid: bool = False) -> ServiceObservation:
    demand = st.floats(0.0, 500.0)
    if not valid:
        demand = st.one_of(demand, st.none(), st.sampled_from([math.nan, math.inf, -1.0]))
    fc = draw(forecasts() if valid else st.one_of(forecasts(), st.none()))
    return ServiceObservation(
        current_replicas=draw(st.integers(0, 25)),
        demand=draw(demand),
        demand_time=NOW - draw(st.sampled_from([0.0, 30.0] if valid else [0.0, 30.0, 600.0])),
        forecast=fc,
        forecast_origin=None if fc is None else NOW - draw(st.sampled_from([0.0, 60.0, 1000.0])),
        ready_replicas=draw(st.one_of(st.none(), st.integers(0, 25))),
        free_gpus=draw(st.one_of(st.none(), st.integers(0, 8))),
    )


memories = st.builds(
    ScaleMemory,
    recommendations=st.lists(
        st.builds(Recommendation, time=st.floats(NOW - 600, NOW), replicas=st.integers(0, 25)),
        max_size=6,
    ).map(tuple),
    events=st.lists(
        st.builds(ScaleEvent, time=st.floats(NOW - 90, NOW), change=st.integers(-10, 10)),
        max_size=4,
    ).map(tuple),
)


@FEW
@given(service_specs(), observations(), memories)
def test_min_and_max_always_held(
    spec: ServiceSpec, obs: ServiceObservation, memory: ScaleMemory
) -> None:
    d = plan_service(spec, obs, memory, NOW, node_provisioning_s=300.0)
    assert spec.min_replicas <= d.replicas <= spec.max_replicas


@FEW
@given(service_specs(), observations(), memories)
def test_no_scale_down_on_missing_or_bad_data(
    spec: ServiceSpec, obs: ServiceObservation, memory: ScaleMemory
) -> None:
    d = plan_service(spec, obs, memory, NOW)
    if d.degraded is not None:
        assert d.replicas >= min(obs.current_replicas, spec.max_replicas)


@FEW
@given(service_specs(), observations(), memories)
def test_missing_demand_always_degrades(
    spec: ServiceSpec, obs: ServiceObservation, memory: ScaleMemory
) -> None:
    d = plan_service(spec, replace(obs, demand=None), memory, NOW)
    assert d.degraded is not None
    assert d.replicas >= min(obs.current_replicas, spec.max_replicas)


@FEW
@given(service_specs(), observations(valid=True), memories, st.floats(1.0, 5.0))
def test_monotone_in_demand(
    spec: ServiceSpec, obs: ServiceObservation, memory: ScaleMemory, factor: float
) -> None:
    assert obs.forecast is not None and obs.demand is not None
    more = replace(
        obs,
        demand=obs.demand * factor,
        forecast=replace(obs.forecast, values=obs.forecast.values * factor),
    )
    low = plan_service(spec, obs, memory, NOW, node_provisioning_s=300.0)
    high = plan_service(spec, more, memory, NOW, node_provisioning_s=300.0)
    assert high.replicas >= low.replicas


@FEW
@given(service_specs(), observations(), memories)
def test_idempotent_with_returned_memory(
    spec: ServiceSpec, obs: ServiceObservation, memory: ScaleMemory
) -> None:
    first = plan_service(spec, obs, memory, NOW)
    again = plan_service(spec, obs, first.memory, NOW)
    assert again == first


@st.composite
def clusters(
    draw: st.DrawFn,
) -> tuple[
    list[tuple[ServiceSpec, ServiceObservation]],
    list[tuple[TrainingSpec, TrainingObservation]],
    list[PoolSpec],
    int | None,
]:
    pools = [
        PoolSpec(
            name=name,
            gpus_per_node=draw(st.sampled_from([4, 8])),
            max_nodes=draw(st.integers(0, 4)),
            budget=draw(st.one_of(st.none(), st.integers(0, 24))),
        )
        for name in ("a", "b")
    ]
    pool_names: tuple[str | None, ...] = ("a", "b", None)
    specs = draw(st.lists(service_specs(pool_names), max_size=5, unique_by=lambda s: s.name))
    services = [(s, draw(observations())) for s in specs]
    trainings = []
    for i in range(draw(st.integers(0, 3))):
        max_workers = draw(st.integers(1, 8))
        min_workers = draw(st.integers(1, max_workers))
        sizes = draw(st.lists(st.integers(min_workers, max_workers), unique=True, max_size=3))
        t = TrainingSpec(
            name=f"train{i}",
            max_workers=max_workers,
            min_workers=min_workers,
            allowed_sizes=tuple(sizes),
            gpus_per_worker=draw(st.integers(1, 4)),
            pool=draw(st.sampled_from(pool_names)),
            priority=draw(st.integers(0, 2)),
            lead_time_s=draw(st.sampled_from([0.0, 60.0, 300.0])),
            mode=draw(st.sampled_from(list(TrainingMode))),
        )
        last = draw(st.one_of(st.none(), st.floats(NOW - 1000, NOW)))
        trainings.append((t, TrainingObservation(draw(st.integers(0, 8)), last)))
    # Pods larger than a node are rejected by validation (tested elsewhere); keep what fits.
    gpn = {p.name: p.gpus_per_node for p in pools}
    services = [(s, o) for s, o in services if s.pool is None or s.gpus_per_replica <= gpn[s.pool]]
    trainings = [(t, o) for t, o in trainings if t.pool is None or t.gpus_per_worker <= gpn[t.pool]]
    return services, trainings, pools, draw(st.one_of(st.none(), st.integers(0, 40)))


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_budget_never_exceeded(cluster) -> None:  # type: ignore[no-untyped-def]
    services, trainings, pools, budget = cluster
    plan = plan_cluster(services, trainings, pools, {}, NOW, global_budget=budget)

    # What applied decisions plan, plus what recommend-mode items hold now (not ours to change):
    # within every budget unless recommend-mode items alone already exceed it.
    applied: dict[str | None, int] = {}
    held: dict[str | None, int] = {}
    for (s, o), d in zip(services, plan.services, strict=True):
        target = applied if d.apply else held
        replicas = d.replicas if d.apply else o.current_replicas
        target[s.pool] = target.get(s.pool, 0) + replicas * s.gpus_per_replica
    for (t, o), td in zip(trainings, plan.trainings, strict=True):
        target = applied if td.apply else held
        workers = td.workers if td.apply else o.current_workers
        target[t.pool] = target.get(t.pool, 0) + workers * t.gpus_per_worker
        assert td.workers == 0 or (
            t.min_workers <= td.workers <= t.max_workers
            and (not t.allowed_sizes or td.workers in t.allowed_sizes)
        )
    for p in pools:
        cap = min(p.max_nodes * p.gpus_per_node, p.budget if p.budget is not None else math.inf)
        in_pool = applied.get(p.name, 0) + held.get(p.name, 0)
        assert in_pool <= max(cap, held.get(p.name, 0))
    if budget is not None:
        total_held = sum(held.values())
        assert sum(applied.values()) + total_held <= max(budget, total_held)


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_cluster_plan_idempotent_with_returned_memories(cluster) -> None:  # type: ignore[no-untyped-def]
    services, trainings, pools, budget = cluster
    first = plan_cluster(services, trainings, pools, {}, NOW, global_budget=budget)
    memories = {d.name: d.memory for d in first.services}
    again = plan_cluster(services, trainings, pools, memories, NOW, global_budget=budget)
    assert again == first
