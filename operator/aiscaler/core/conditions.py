"""Kubernetes-style status conditions from decisions (pure).

InferenceService: Ready (ready replicas reach the decision), Degraded (a data problem made the
planner hold), ScalingLimited (a limit bound the value). TrainingJob: ScalingLimited. A
condition keeps its lastTransitionTime while its status does not change. The `Invalid`
condition comes from spec validation in the operator, not from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiscaler.core.types import Condition, Reason, ServiceDecision, TrainingDecision

_TRAINING_LIMITS = frozenset(
    {Reason.BUDGET_LIMITED, Reason.RESIZE_COOLDOWN, Reason.INFERENCE_PEAK_AHEAD}
)


def condition(
    previous: Sequence[Condition],
    type_: str,
    status: bool,
    reason: Reason,
    message: str,
    now: float,
) -> Condition:
    """A condition, its transition time carried over from `previous` when the status holds."""
    text = "True" if status else "False"
    since = now
    for old in previous:
        if old.type == type_ and old.status == text:
            since = old.last_transition_time
    return Condition(type_, text, reason.value, message, since)


def service_conditions(
    decision: ServiceDecision,
    ready_replicas: int,
    previous: Sequence[Condition],
    now: float,
) -> tuple[Condition, ...]:
    """Ready, Degraded and ScalingLimited for one service's decision."""
    ready = ready_replicas >= decision.replicas
    return (
        condition(
            previous,
            "Ready",
            ready,
            Reason.REPLICAS_READY if ready else Reason.REPLICAS_NOT_READY,
            f"{ready_replicas} of {decision.replicas} replicas ready",
            now,
        ),
        condition(
            previous,
            "Degraded",
            decision.degraded is not None,
            decision.degraded or Reason.METRICS_AVAILABLE,
            decision.message if decision.degraded else "demand and forecast are usable",
            now,
        ),
        condition(
            previous,
            "ScalingLimited",
            decision.limited is not None,
            decision.limited or Reason.DESIRED_WITHIN_RANGE,
            decision.message,
            now,
        ),
    )


def training_conditions(
    decision: TrainingDecision, previous: Sequence[Condition], now: float
) -> tuple[Condition, ...]:
    """ScalingLimited for one training job's decision."""
    limited = decision.reason in _TRAINING_LIMITS
    return (
        condition(
            previous,
            "ScalingLimited",
            limited,
            decision.reason if limited else Reason.DESIRED_WITHIN_RANGE,
            decision.message,
            now,
        ),
    )
