"""Conditions from decisions: status, reason, and transition times kept while status holds."""

from __future__ import annotations

from core_cases import NOW, flat, obs, spec

from aiscaler.core.conditions import service_conditions, training_conditions
from aiscaler.core.planner import plan_service
from aiscaler.core.types import Condition, Reason, ScaleMemory, TrainingDecision


def by_type(conditions: tuple[Condition, ...]) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in conditions}


def test_healthy_decision() -> None:
    d = plan_service(spec(), obs(3, 30.0, flat(30.0)), ScaleMemory(), NOW)
    assert by_type(service_conditions(d, 3, (), NOW)) == {
        "Ready": ("True", "ReplicasReady"),
        "Degraded": ("False", "MetricsAvailable"),
        "ScalingLimited": ("False", "DesiredWithinRange"),
    }


def test_missing_metrics_degrade_and_limits_show() -> None:
    d = plan_service(spec(min_replicas=4), obs(3, None, flat(30.0)), ScaleMemory(), NOW)
    conditions = service_conditions(d, 2, (), NOW)
    assert by_type(conditions) == {
        "Ready": ("False", "ReplicasNotReady"),
        "Degraded": ("True", "MetricsMissing"),
        "ScalingLimited": ("True", "TooFewReplicas"),
    }
    assert "2 of 4" in conditions[0].message


def test_transition_time_kept_while_status_holds_and_reset_when_it_flips() -> None:
    d = plan_service(spec(), obs(3, 30.0, flat(30.0)), ScaleMemory(), NOW)
    first = service_conditions(d, 3, (), NOW)
    later = service_conditions(d, 3, first, NOW + 30)
    assert all(c.last_transition_time == NOW for c in later)
    flipped = service_conditions(d, 1, later, NOW + 60)
    assert {c.type: c.last_transition_time for c in flipped} == {
        "Ready": NOW + 60,
        "Degraded": NOW,
        "ScalingLimited": NOW,
    }


def test_training_limited_by_cooldown_or_inference() -> None:
    for reason, status in [
        (Reason.RESIZE_COOLDOWN, "True"),
        (Reason.INFERENCE_PEAK_AHEAD, "True"),
        (Reason.BUDGET_LIMITED, "True"),
        (Reason.LEFTOVER_GPUS, "False"),
    ]:
        (c,) = training_conditions(TrainingDecision("t", 2, reason, "m", True), (), NOW)
        assert c.status == status
        assert c.reason == (reason.value if status == "True" else "DesiredWithinRange")
