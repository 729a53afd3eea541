"""Global allocator: every service and training job shares GPU pools under budgets.

`plan_cluster` plans the whole cluster at one tick:
1. each service through `plan_service` (its own limits, no budget), the planned demand of all
   their forecasts computed at once (`planned_values_of`) and reused by the steps below;
2. inference first, by priority, then SLO risk (the share of its desired replicas not ready),
   then name: each gets its decision, capped by what its pool budget and the global budget
   have left (reason BudgetLimited) — budgets win over min replicas;
3. training jobs, by priority then name, get what inference leaves, in their allowed sizes.
   Inference's share counts the replicas it will need within its lead time plus the job's own
   lead time (the time a shrink takes), so a job is shrunk ahead of a forecast inference peak.
   A job grows only onto GPUs inference will not need before the resize cooldown ends, and not
   within the cooldown; a shrink is never delayed;
4. a node plan per pool (`aiscaler.core.nodes`).
Items in recommend mode are reported like the others but count with what they hold now.
Budget never exceeded: applied replicas/workers plus what recommend-mode items hold stay within
every pool budget (default max_nodes * gpus_per_node) and the global budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from aiscaler.core.nodes import plan_pool
from aiscaler.core.planner import (
    FloatArray,
    plan_service,
    planned_values_of,
    replicas_needed_within,
)
from aiscaler.core.scaling import remember
from aiscaler.core.types import (
    ClusterPlan,
    PlannerConfig,
    PoolPlan,
    PoolSpec,
    Reason,
    ScaleMemory,
    ServiceDecision,
    ServiceObservation,
    ServiceSpec,
    TrainingDecision,
    TrainingMode,
    TrainingObservation,
    TrainingSpec,
)


class _Budgets:
    """GPUs left per pool and globally while the allocation proceeds (local to one call)."""

    def __init__(self, pools: Sequence[PoolSpec], global_budget: int | None) -> None:
        self.pool_left: dict[str, float] = {
            p.name: float(
                min(p.max_nodes * p.gpus_per_node, math.inf if p.budget is None else p.budget)
            )
            for p in pools
        }
        self.global_left = math.inf if global_budget is None else float(global_budget)

    def available(self, pool: str | None) -> float:
        left = self.global_left
        return min(left, self.pool_left[pool]) if pool is not None else left

    def take(self, pool: str | None, gpus: int) -> None:
        self.global_left -= gpus
        if pool is not None:
            self.pool_left[pool] -= gpus


def _validate(
    services: Sequence[tuple[ServiceSpec, ServiceObservation]],
    trainings: Sequence[tuple[TrainingSpec, TrainingObservation]],
    pools: Sequence[PoolSpec],
    global_budget: int | None,
) -> None:
    """Raise ValueError naming the first inconsistency across items (each service's own spec
    is checked by `plan_service`)."""
    pool_by_name = {p.name: p for p in pools}
    if len(pool_by_name) != len(pools):
        raise ValueError("pool names must be unique")
    for p in pools:
        if p.gpus_per_node < 1 or p.max_nodes < p.min_nodes or p.min_nodes < 0:
            raise ValueError(f"pool {p.name}: need gpus_per_node >= 1, 0 <= min <= max nodes")
        if p.budget is not None and p.budget < 0:
            raise ValueError(f"pool {p.name}: budget must be >= 0")
    if global_budget is not None and global_budget < 0:
        raise ValueError("global budget must be >= 0")
    names = [s.name for s, _ in services] + [t.name for t, _ in trainings]
    if len(set(names)) != len(names):
        raise ValueError("service and training job names must be unique")
    items = [(s.name, s.pool, s.gpus_per_replica) for s, _ in services]
    items += [(t.name, t.pool, t.gpus_per_worker) for t, _ in trainings]
    for name, pool, gpus in items:
        if pool is not None:
            if pool not in pool_by_name:
                raise ValueError(f"{name}: unknown pool {pool!r}")
            if gpus > pool_by_name[pool].gpus_per_node:
                raise ValueError(
                    f"{name}: {gpus} GPUs per pod exceed pool {pool}'s "
                    f"{pool_by_name[pool].gpus_per_node} GPUs per node"
                )
    for t, o in trainings:
        if not 1 <= t.min_workers <= t.max_workers:
            raise ValueError(f"{t.name}: need 1 <= min <= max workers")
        if t.gpus_per_worker < 1 or o.current_workers < 0:
            raise ValueError(f"{t.name}: need gpus_per_worker >= 1 and current workers >= 0")
        if not (t.cooldown_s >= 0 and t.lead_time_s >= 0):
            raise ValueError(f"{t.name}: cooldown_s and lead_time_s must be >= 0")
        if any(not t.min_workers <= n <= t.max_workers for n in t.allowed_sizes):
            raise ValueError(f"{t.name}: allowed sizes must lie within [min, max] workers")


@dataclass(frozen=True)
class _Service:
    spec: ServiceSpec
    obs: ServiceObservation
    decision: ServiceDecision
    planned: FloatArray | None  # its forecast's planned values, margin aside (planned_values_of)


def _slo_risk(item: _Service) -> float:
    """Share of the desired replicas not ready now (0 = none at risk)."""
    desired = item.decision.replicas
    if desired <= 0:
        return 0.0
    ready = item.obs.ready_replicas
    ready = item.obs.current_replicas if ready is None else ready
    return max(0.0, (desired - ready) / desired)


def _cap_service(item: _Service, allowed: int, prior: ScaleMemory, now: float) -> ServiceDecision:
    d, spec = item.decision, item.spec
    memory = remember(
        prior,
        now,
        None if d.degraded is not None else d.recommendation,
        allowed - item.obs.current_replicas if d.apply else 0,
        spec.scale_up,
        spec.scale_down,
        d.memory.margin,
        d.memory.demand,
    )
    return replace(
        d,
        replicas=allowed,
        reason=Reason.BUDGET_LIMITED,
        limited=Reason.BUDGET_LIMITED,
        message=f"{d.message}; GPU budget allows {allowed} of {d.replicas}",
        memory=memory,
    )


def _sizes(spec: TrainingSpec) -> list[int]:
    if spec.allowed_sizes:
        return sorted(spec.allowed_sizes)
    return list(range(spec.min_workers, spec.max_workers + 1))


def _largest_size(spec: TrainingSpec, workers: int) -> int:
    """Largest allowed size not above `workers`; 0 (paused) when none is."""
    return max((n for n in _sizes(spec) if n <= workers), default=0)


def _inference_gpus(
    services: Sequence[_Service], now: float, ahead_s: float, config: PlannerConfig
) -> tuple[dict[str | None, int], int]:
    """GPUs inference holds or will need within its lead time + tick + `ahead_s`: per pool and
    in total. Applied services count the larger of their decision and that need (within their
    max replicas); recommend-mode ones what they hold now."""
    per_pool: dict[str | None, int] = {}
    for item in services:
        d, spec = item.decision, item.spec
        if d.apply:
            need = _need_within(item, now, d.lead_time_s + config.tick_s + ahead_s, config)
            replicas = max(d.replicas, min(need, spec.max_replicas))
        else:
            replicas = item.obs.current_replicas
        per_pool[spec.pool] = per_pool.get(spec.pool, 0) + replicas * spec.gpus_per_replica
    return per_pool, sum(per_pool.values())


def _need_within(item: _Service, now: float, horizon_s: float, config: PlannerConfig) -> int:
    """`replicas_needed_within` as the service's decision planned: from the observed demand
    alone when it left the forecast out (its `basis`)."""
    d = item.decision
    margin = d.memory.margin.factor
    need = replicas_needed_within(
        item.spec, item.obs, now, horizon_s, config, margin, item.planned, d.basis
    )
    return need or 0


def _allocated_gpus(services: Sequence[_Service]) -> tuple[dict[str | None, int], int]:
    """GPUs inference was given, per pool and in total, as taken from the budgets."""
    per_pool: dict[str | None, int] = {}
    for item in services:
        d, spec = item.decision, item.spec
        replicas = d.replicas if d.apply else item.obs.current_replicas
        per_pool[spec.pool] = per_pool.get(spec.pool, 0) + replicas * spec.gpus_per_replica
    return per_pool, sum(per_pool.values())


def _training_room(
    spec: TrainingSpec,
    budgets: _Budgets,
    inference: tuple[dict[str | None, int], int],
    allocated: tuple[dict[str | None, int], int],
) -> int:
    """Workers of `spec` that fit what the budgets have left, less what inference will need
    beyond its allocation (`inference` minus `allocated`)."""
    room = budgets.global_left - (inference[1] - allocated[1])
    if spec.pool is not None:
        extra = inference[0].get(spec.pool, 0) - allocated[0].get(spec.pool, 0)
        room = min(room, budgets.pool_left[spec.pool] - extra)
    if room >= spec.max_workers * spec.gpus_per_worker:  # also when no budget applies (inf)
        return spec.max_workers
    return max(0, math.floor(room / spec.gpus_per_worker))


def _plan_training(
    spec: TrainingSpec,
    obs: TrainingObservation,
    now: float,
    room_now: int,
    room_ahead: int,
    room_cooldown: int,
) -> TrainingDecision:
    """Workers for one job from the room left now, at its lead time and over its cooldown."""
    current = obs.current_workers
    apply = spec.mode is TrainingMode.ACTIVE
    shrink_to = _largest_size(spec, min(room_ahead, spec.max_workers))
    if current > shrink_to:
        if current <= min(room_now, spec.max_workers):
            reason = Reason.INFERENCE_PEAK_AHEAD
            why = f"forecast inference needs the GPUs within this job's {spec.lead_time_s:.0f}s"
        elif current > spec.max_workers:
            reason, why = Reason.LEFTOVER_GPUS, f"above max workers {spec.max_workers}"
        else:
            reason, why = Reason.BUDGET_LIMITED, "the GPU budget left after inference is smaller"
        return TrainingDecision(
            spec.name, shrink_to, reason, f"shrink {current} -> {shrink_to}: {why}", apply
        )
    grow_to = _largest_size(spec, min(room_cooldown, spec.max_workers))
    if grow_to > current:
        since = None if obs.last_resize_time is None else now - obs.last_resize_time
        # The cooldown holds a valid size; an invalid one (spec changed) is corrected now.
        if since is not None and since < spec.cooldown_s and current in _sizes(spec):
            message = (
                f"{grow_to} workers fit, holding {current}: resized {since:.0f}s ago "
                f"(cooldown {spec.cooldown_s:.0f}s)"
            )
            return TrainingDecision(spec.name, current, Reason.RESIZE_COOLDOWN, message, apply)
        message = f"grow {current} -> {grow_to}: GPUs free of inference through the cooldown"
        return TrainingDecision(spec.name, grow_to, Reason.LEFTOVER_GPUS, message, apply)
    workers = _largest_size(spec, current)
    message = f"{workers} workers fit the GPUs inference leaves"
    if workers != current:
        message = f"{current} is not an allowed size: {workers}"
    return TrainingDecision(spec.name, workers, Reason.LEFTOVER_GPUS, message, apply)


def plan_cluster(
    services: Sequence[tuple[ServiceSpec, ServiceObservation]],
    trainings: Sequence[tuple[TrainingSpec, TrainingObservation]],
    pools: Sequence[PoolSpec],
    memories: Mapping[str, ScaleMemory],
    now: float,
    global_budget: int | None = None,
    config: PlannerConfig = PlannerConfig(),  # noqa: B008 - frozen, shared safely
) -> ClusterPlan:
    """Plan replicas, training workers and nodes for the whole cluster at `now`.

    `memories[name]` is the previous tick's `ServiceDecision.memory` (missing: empty). Each
    service's `obs.free_gpus` should be its pool's free GPUs (balloon pods count as free).
    Raises ValueError for inconsistent input (unknown pool, pod larger than a node, ...).
    """
    _validate(services, trainings, pools, global_budget)
    pool_by_name = {p.name: p for p in pools}
    budgets = _Budgets(pools, global_budget)

    levels = planned_values_of(services, now, config)
    planned: list[_Service] = []
    for spec, obs in services:
        given = levels.get(spec.name)
        provisioning_s = pool_by_name[spec.pool].provisioning_s if spec.pool is not None else 0.0
        memory = memories.get(spec.name, ScaleMemory())
        decision = plan_service(spec, obs, memory, now, config, provisioning_s, given)
        planned.append(_Service(spec, obs, decision, given))
    # What recommend-mode items really hold is taken first: their decisions are not applied.
    for item in planned:
        if not item.decision.apply:
            budgets.take(item.spec.pool, item.obs.current_replicas * item.spec.gpus_per_replica)
    for tspec, tobs in trainings:
        if tspec.mode is TrainingMode.RECOMMEND:
            budgets.take(tspec.pool, tobs.current_workers * tspec.gpus_per_worker)

    inference = _allocate_inference(planned, budgets, memories, now)
    training = _allocate_training(trainings, inference, budgets, now, config)
    return ClusterPlan(
        services=tuple(item.decision for item in inference),
        trainings=training,
        pools=tuple(
            _plan_nodes(pool, inference, trainings, training, now, config) for pool in pools
        ),
    )


def _allocate_inference(
    planned: Sequence[_Service], budgets: _Budgets, memories: Mapping[str, ScaleMemory], now: float
) -> list[_Service]:
    """Cap each service's decision by the budgets, most important first; same order back."""
    ordered = sorted(planned, key=lambda s: (-s.spec.priority, -_slo_risk(s), s.spec.name))
    final: dict[str, _Service] = {}
    for item in ordered:
        spec, d = item.spec, item.decision
        own = 0 if d.apply else item.obs.current_replicas * spec.gpus_per_replica
        room = budgets.available(spec.pool) + own
        if d.replicas * spec.gpus_per_replica > room:
            allowed = max(0, math.floor(room / spec.gpus_per_replica))
            d = _cap_service(item, allowed, memories.get(spec.name, ScaleMemory()), now)
        if d.apply:
            budgets.take(spec.pool, d.replicas * spec.gpus_per_replica)
        final[spec.name] = replace(item, decision=d)
    return [final[item.spec.name] for item in planned]


def _allocate_training(
    trainings: Sequence[tuple[TrainingSpec, TrainingObservation]],
    inference: Sequence[_Service],
    budgets: _Budgets,
    now: float,
    config: PlannerConfig,
) -> tuple[TrainingDecision, ...]:
    """Size each job from what inference leaves, by priority; same order back."""
    allocated = _allocated_gpus(inference)
    decisions: dict[str, TrainingDecision] = {}
    for spec, obs in sorted(trainings, key=lambda t: (-t[0].priority, t[0].name)):
        own = 0 if spec.mode is TrainingMode.ACTIVE else obs.current_workers
        ahead = _inference_gpus(inference, now, spec.lead_time_s, config)
        cooldown = _inference_gpus(inference, now, max(spec.lead_time_s, spec.cooldown_s), config)
        decision = _plan_training(
            spec,
            obs,
            now,
            room_now=_training_room(spec, budgets, allocated, allocated) + own,
            room_ahead=_training_room(spec, budgets, ahead, allocated) + own,
            room_cooldown=_training_room(spec, budgets, cooldown, allocated) + own,
        )
        if decision.apply:
            budgets.take(spec.pool, decision.workers * spec.gpus_per_worker)
        decisions[spec.name] = decision
    return tuple(decisions[spec.name] for spec, _ in trainings)


def _plan_nodes(
    pool: PoolSpec,
    inference: Sequence[_Service],
    trainings: Sequence[tuple[TrainingSpec, TrainingObservation]],
    training: Sequence[TrainingDecision],
    now: float,
    config: PlannerConfig,
) -> PoolPlan:
    """The pool's pods now (as planned; recommend-mode items as they are) and within its
    provisioning time plus each service's cold start (services at their forecast need),
    bin-packed: a balloon asks for the node a provisioning time before a replica, scaled a cold
    start ahead of its need, preempts it (the balloon's GPUs count as free for that replica)."""
    now_pods: list[int] = []
    lead_pods: list[int] = []
    for item in inference:
        if item.spec.pool != pool.name:
            continue
        d, spec = item.decision, item.spec
        replicas = d.replicas if d.apply else item.obs.current_replicas
        need = _need_within(
            item, now, pool.provisioning_s + spec.cold_start_s + config.tick_s, config
        )
        now_pods += [spec.gpus_per_replica] * replicas
        lead_pods += [spec.gpus_per_replica] * max(replicas, min(need, spec.max_replicas))
    for (tspec, tobs), td in zip(trainings, training, strict=True):
        if tspec.pool != pool.name:
            continue
        workers = td.workers if td.apply else tobs.current_workers
        now_pods += [tspec.gpus_per_worker] * workers
        lead_pods += [tspec.gpus_per_worker] * workers
    return plan_pool(pool, now_pods, lead_pods)
