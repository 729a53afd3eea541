"""The pydantic models: the defaults of API.md, camelCase in YAML and snake_case in Python,
status round trips, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from aiscaler.api import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    InferenceService,
    InferenceServiceStatus,
    TrainingJob,
    TrainingJobStatus,
    field_errors,
)


def minimal_service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": "chat", "namespace": "inference"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "chat"}, "replicas": {"max": 3}}
        | spec,
    }


def minimal_job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {"name": "pretrain"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "trainer"}, "workers": {"max": 4}}
        | spec,
    }


def attribute(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


# The defaults API.md promises, one row per field (attribute path, value).
SERVICE_DEFAULTS = [
    ("replicas.min", 1),
    ("scale_target_ref.api_version", "apps/v1"),
    ("resources.gpus_per_replica", 1),
    ("resources.gpu_type", None),
    ("resources.gpu_resource_name", "nvidia.com/gpu"),
    ("resources.pool", None),
    ("demand.preset", "vllm"),
    ("demand.query", None),
    ("demand.unit", "requestsPerSecond"),
    ("demand.selector", None),
    ("capacity.per_replica", None),
    ("slo.latency.metric", "ttft"),
    ("slo.latency.quantile", 0.95),
    ("slo.latency.target_seconds", 2.0),
    ("slo.attainment", 0.99),
    ("cold_start.seconds", 120),
    ("policy.mode", "predictive"),
    ("policy.priority", 0),
    ("policy.scale_up.stabilization_window_seconds", 0),
    ("policy.scale_up.max_replicas", 4),
    ("policy.scale_up.max_percent", 100),
    ("policy.scale_up.period_seconds", 15),
    ("policy.scale_down.stabilization_window_seconds", 300),
    ("policy.scale_down.max_replicas", None),  # no limit
    ("policy.scale_down.max_percent", 100),
    ("policy.scale_down.period_seconds", 15),
    ("template", None),
]

JOB_DEFAULTS = [
    ("workers.min", 1),
    ("workers.allowed_sizes", None),
    ("resources.gpus_per_worker", 1),
    ("resources.gpu_resource_name", "nvidia.com/gpu"),
    ("priority", 0),
    ("resize.cooldown_seconds", 600),
    ("throughput.query", None),
    ("mode", "active"),
]


@pytest.mark.parametrize(("dotted", "value"), SERVICE_DEFAULTS)
def test_inference_service_default(dotted: str, value: Any) -> None:
    spec = InferenceService.model_validate(minimal_service()).spec
    assert attribute(spec, dotted) == value


@pytest.mark.parametrize(("dotted", "value"), JOB_DEFAULTS)
def test_training_job_default(dotted: str, value: Any) -> None:
    spec = TrainingJob.model_validate(minimal_job()).spec
    assert attribute(spec, dotted) == value


def test_a_partly_given_scale_down_keeps_its_own_defaults() -> None:
    # scaleDown and scaleUp share the fields but not the defaults.
    spec = InferenceService.model_validate(
        minimal_service(policy={"scaleDown": {"periodSeconds": 60}})
    ).spec
    assert spec.policy.scale_down.period_seconds == 60
    assert spec.policy.scale_down.stabilization_window_seconds == 300
    assert spec.policy.scale_down.max_replicas is None
    assert spec.policy.scale_up.stabilization_window_seconds == 0


def test_python_names_are_accepted_as_well_as_yaml_names() -> None:
    by_yaml = InferenceService.model_validate(minimal_service(coldStart={"seconds": 45}))
    by_python = InferenceService.model_validate(minimal_service(cold_start={"seconds": 45}))
    assert by_yaml == by_python
    assert by_python.spec.cold_start.seconds == 45


def test_dump_uses_yaml_names_and_round_trips() -> None:
    service = InferenceService.model_validate(
        minimal_service(capacity={"perReplica": 7.5}, demand={"unit": "tokensPerSecond"})
    )
    dumped = service.model_dump(mode="json", exclude_none=True)
    assert dumped["apiVersion"] == "aiscaler.dev/v1alpha1"
    assert dumped["spec"]["capacity"] == {"perReplica": 7.5}
    assert dumped["spec"]["policy"]["scaleUp"]["maxReplicas"] == 4
    assert InferenceService.model_validate(dumped) == service


def test_metadata_keeps_the_fields_aiscaler_does_not_read() -> None:
    doc = minimal_service()
    doc["metadata"] |= {"generation": 3, "ownerReferences": [{"kind": "X"}], "labels": {"a": "b"}}
    service = InferenceService.model_validate(doc)
    assert service.metadata.generation == 3
    assert service.metadata.labels == {"a": "b"}
    assert service.model_dump(mode="json")["metadata"]["ownerReferences"] == [{"kind": "X"}]


def test_api_version_is_group_and_version() -> None:
    assert API_VERSION == f"{GROUP}/{VERSION}" == "aiscaler.dev/v1alpha1"


def test_wrong_kind_or_api_version_is_rejected() -> None:
    for key, value in (("kind", "TrainingJob"), ("apiVersion", "aiscaler.dev/v1")):
        doc = minimal_service() | {key: value}
        with pytest.raises(pydantic.ValidationError) as raised:
            InferenceService.model_validate(doc)
        assert [error.split(":")[0] for error in field_errors(raised.value)] == [key]


def test_inference_status_as_the_operator_writes_it() -> None:
    status = InferenceServiceStatus.model_validate(
        {
            "observedGeneration": 2,
            "replicas": 3,
            "readyReplicas": 2,
            "desiredReplicas": 5,
            "mode": "predictive",
            "forecast": {
                "leadTimeSeconds": 300,
                "quantile": 0.99,
                "value": 41.5,
                "p50": 30.0,
                "source": "model",
            },
            "capacity": {"perReplica": 8.0, "learned": True},
            "coldStart": {"seconds": 240, "measured": True},
            "lastDecision": {
                "time": "2026-11-28T15:00:00Z",
                "replicas": 5,
                "reason": "ForecastPeak",
                "message": "q0.99 demand 41.5 rps in 300 s needs 5 replicas of 8 rps",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Scaled",
                    "lastTransitionTime": "2026-11-28T14:00:00Z",
                }
            ],
        }
    )
    assert status.last_decision is not None
    assert status.last_decision.time == datetime(2026, 11, 28, 15, tzinfo=UTC)
    assert status.conditions[0].type == "Ready"
    assert status.model_dump(mode="json", exclude_none=True)["lastDecision"]["time"] == (
        "2026-11-28T15:00:00Z"
    )


def test_condition_status_is_true_false_or_unknown() -> None:
    with pytest.raises(pydantic.ValidationError):
        Condition.model_validate({"type": "Ready", "status": "yes"})


def test_training_status_resize_history_uses_from_and_keeps_ten() -> None:
    event = {"time": "2026-11-28T15:00:00Z", "from": 4, "to": 2, "reason": "InferencePeak"}
    status = TrainingJobStatus.model_validate({"phase": "Resizing", "resizeHistory": [event]})
    assert status.resize_history[0].from_ == 4
    assert status.model_dump(mode="json", exclude_none=True)["resizeHistory"] == [event]
    with pytest.raises(pydantic.ValidationError) as raised:
        TrainingJobStatus.model_validate({"resizeHistory": [event] * 11})
    assert field_errors(raised.value)[0].startswith("resizeHistory:")


def test_field_errors_give_the_yaml_path_of_every_problem() -> None:
    doc = minimal_service(replicas={"min": 5, "max": 2}, demand={"preset": "custom"})
    with pytest.raises(pydantic.ValidationError) as raised:
        InferenceService.model_validate(doc)
    assert sorted(field_errors(raised.value)) == [
        "spec.demand.query: query is required when preset is custom",
        "spec.replicas.min: min must be less than or equal to max",
    ]
