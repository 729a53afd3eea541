"""One cluster-wide planning tick: observe, measure and forecast, plan, act and report.

`run_tick` is the whole loop body: the kopf layer calls it every `tick_seconds` on the leader
with the bodies from its indices, and the integration tests call it directly with real clients.
It is level-triggered: every tick reconciles every object, so a missed tick or a restart loses
nothing. Writes happen only where a value changes (scale, status, events). Each step is a module
of its own: `observe`, `measure` (and forecast), the core's `plan_cluster`, `act`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from aiscaler.core.allocator import plan_cluster
from aiscaler.core.margin import MAX_MARGIN, MIN_MARGIN
from aiscaler.core.types import ClusterPlan, ScaleMemory, SloMargin, TrainingDecision
from aiscaler.handlers.act import (
    act_in_parallel,
    act_on_pools,
    act_on_service,
    act_on_training,
    mark_invalid,
)
from aiscaler.handlers.measure import measure_and_forecast
from aiscaler.handlers.observe import observe_services, observe_trainings, training_observation
from aiscaler.handlers.state import ObservedTraining, Operator, TickReport

# What the rest of the operator imports from here.
__all__ = ["Operator", "TickReport", "mark_invalid", "restored", "run_tick"]

log = logging.getLogger("aiscaler")


def run_tick(
    op: Operator,
    service_bodies: Sequence[Mapping[str, Any]],
    training_bodies: Sequence[Mapping[str, Any]],
    now: float,
) -> TickReport:
    """Plan and act for the whole cluster at `now` (unix seconds)."""
    report = TickReport()
    pools = op.pool_specs()
    with report.stage("observe"):
        service_bodies, training_bodies = op.latest(service_bodies, training_bodies)
        services = observe_services(op, service_bodies, pools, now, report)
        trainings = observe_trainings(op, training_bodies, pools, now, report)
    observations = measure_and_forecast(op, services, trainings, pools, now, report)
    try:
        with report.stage("plan"):
            plan = plan_cluster(
                [(s.spec, observations[s.spec.name]) for s in services],
                [(t.spec, training_observation(t)) for t in trainings],
                pools,
                {s.spec.name: op.memories.get(s.spec.name) or restored(s.body) for s in services},
                now,
                op.settings.gpu_budget,
                op.config,
            )
    except ValueError as exc:  # inconsistent input: act on nothing, say why
        op.telemetry.errors.labels("plan").inc()
        report.errors.append(f"plan: {exc}")
        log.error("planning failed, nothing changed: %s", exc)
        return report
    report.plan = plan
    decisions = {d.name: d for d in plan.services}
    writes: list[Callable[[TickReport], None]] = [
        partial(act_on_service, op, s, decisions[s.spec.name], observations[s.spec.name], now)
        for s in services
    ]
    writes += [
        partial(act_on_training, op, t, d, now)
        for t, d in zip(trainings, _training_decisions(plan, trainings), strict=True)
    ]
    with report.stage("act"):
        act_in_parallel(op, writes, report)
        act_on_pools(op, plan.pools, report)
    op.last_tick = now
    return report


def restored(body: Mapping[str, Any]) -> ScaleMemory:
    """The memory a service starts with when this process has none for it (a new leader, a
    restart): the SLO margin its status recorded, if that is a usable one. Stabilisation windows
    and rate-limit periods start empty, which can only delay a scale-down by one window."""
    recorded = (body.get("status") or {}).get("sloMargin")
    if not isinstance(recorded, int | float) or not MIN_MARGIN <= recorded <= MAX_MARGIN:
        return ScaleMemory()
    return ScaleMemory(margin=SloMargin(factor=float(recorded)))


def _training_decisions(
    plan: ClusterPlan, trainings: Sequence[ObservedTraining]
) -> list[TrainingDecision]:
    by_name = {d.name: d for d in plan.trainings}
    return [by_name[t.spec.name] for t in trainings]
