"""HPA-style stabilisation windows and rate limits over a small immutable memory.

Semantics follow the Kubernetes HPA (pkg/controller/podautoscaler/horizontal.go,
`stabilizeRecommendationWithBehaviors` and `convertDesiredReplicasWithBehaviorRate`):
- stabilisation: the scale-up recommendation is the minimum, the scale-down recommendation the
  maximum, of the desired replicas recorded within the respective window (this tick's included);
  the current replicas move only as far as both allow;
- rate limits: within one period the replicas may grow to max(periodStart + pods,
  ceil(periodStart * (1 + percent/100))) and shrink to min(periodStart - pods,
  floor(periodStart * (1 - percent/100))), where periodStart is the replica count before the
  changes made within the period (calculateScaleUpLimitWithScalingRules and
  calculateScaleDownLimitWithBehaviors, selectPolicy Max). One addition: a period may always add
  one replica, so a percent-only policy can wake a service from zero.
Records at exactly `now` belong to this tick: they are ignored when deciding and replaced when
remembering, so re-running a tick with the returned memory gives the same decision.
"""

from __future__ import annotations

import math

from aiscaler.core.types import (
    DemandSample,
    Reason,
    Recommendation,
    ScaleEvent,
    ScaleMemory,
    ScalingRules,
    SloMargin,
)


def stabilize(
    current: int,
    desired: int,
    memory: ScaleMemory,
    now: float,
    up: ScalingRules,
    down: ScalingRules,
) -> tuple[int, Reason | None]:
    """Stabilised replicas and the reason when the windows held them back from `desired`."""
    up_bound = desired
    down_bound = desired
    for rec in memory.recommendations:
        if rec.time >= now:
            continue
        if rec.time > now - up.stabilization_window_s:
            up_bound = min(up_bound, rec.replicas)
        if rec.time > now - down.stabilization_window_s:
            down_bound = max(down_bound, rec.replicas)
    value = min(max(current, up_bound), down_bound)
    if value < desired:
        return value, Reason.SCALE_UP_STABILIZED
    if value > desired:
        return value, Reason.SCALE_DOWN_STABILIZED
    return value, None


def _period_start(current: int, memory: ScaleMemory, now: float, period_s: float) -> int:
    """Replicas before the changes made within the period (as the HPA: current - added +
    deleted)."""
    return current - sum(e.change for e in memory.events if now - period_s < e.time < now)


def scale_up_limit(current: int, memory: ScaleMemory, now: float, up: ScalingRules) -> int:
    """Most replicas allowed now (never below current). A period may always add one replica,
    so a service at zero can wake even with a percent-only policy."""
    start = _period_start(current, memory, now, up.period_s)
    limit = math.ceil(start * (1 + up.max_percent / 100))
    if up.max_replicas is not None:
        limit = max(limit, start + up.max_replicas)
    return max(limit, start + 1, current)


def scale_down_limit(current: int, memory: ScaleMemory, now: float, down: ScalingRules) -> int:
    """Fewest replicas allowed now (never above current)."""
    start = _period_start(current, memory, now, down.period_s)
    limit = math.floor(start * (1 - down.max_percent / 100))
    if down.max_replicas is not None:
        limit = min(limit, start - down.max_replicas)
    return max(0, min(limit, current))


def rate_limit(
    current: int,
    desired: int,
    memory: ScaleMemory,
    now: float,
    up: ScalingRules,
    down: ScalingRules,
) -> tuple[int, Reason | None]:
    """`desired` bounded by the scale-up/scale-down rate limits, and the reason when bound."""
    if desired > current:
        limit = scale_up_limit(current, memory, now, up)
        if desired > limit:
            return limit, Reason.SCALE_UP_LIMIT
    if desired < current:
        limit = scale_down_limit(current, memory, now, down)
        if desired < limit:
            return limit, Reason.SCALE_DOWN_LIMIT
    return desired, None


def remember(
    memory: ScaleMemory,
    now: float,
    recommendation: int | None,
    change: int,
    up: ScalingRules,
    down: ScalingRules,
    margin: SloMargin | None = None,
    demand: tuple[DemandSample, ...] | None = None,
) -> ScaleMemory:
    """The memory after this tick: its recommendation (None: none, e.g. when holding), its
    scale change, SLO margin and demand samples (None: the memory's) recorded, this tick's
    earlier records replaced, expired ones dropped."""
    keep_recs_s = max(up.stabilization_window_s, down.stabilization_window_s)
    keep_events_s = max(up.period_s, down.period_s)
    recs = tuple(r for r in memory.recommendations if now - keep_recs_s < r.time < now)
    if recommendation is not None:
        recs += (Recommendation(time=now, replicas=recommendation),)
    events = tuple(e for e in memory.events if now - keep_events_s < e.time < now)
    if change != 0:
        events += (ScaleEvent(time=now, change=change),)
    return ScaleMemory(
        recommendations=recs,
        events=events,
        margin=margin or memory.margin,
        demand=memory.demand if demand is None else demand,
    )
