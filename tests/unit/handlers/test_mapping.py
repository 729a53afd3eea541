import pytest

from aiscaler.core.types import Mode, PoolSpec, ScalingRules, TrainingMode
from aiscaler.handlers.mapping import (
    parse_service,
    parse_training,
    service_spec,
    service_target,
    training_spec,
    training_target,
)
from aiscaler.kube.client import TargetRef

POOLS = [PoolSpec(name="h100", gpus_per_node=8, max_nodes=4)]
TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "i"}]}}


def service_body(**spec):
    return {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "llm", "namespace": "ml", "uid": "u", "generation": 2},
        "spec": {"replicas": {"max": 8}, "template": TEMPLATE, **spec},
        # the status is ours: whatever it holds does not make the spec invalid
        "status": {"somethingOld": True},
    }


def training_body(**spec):
    return {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "pre", "namespace": "ml", "uid": "t"},
        "spec": {"workers": {"min": 2, "max": 8}, "template": TEMPLATE, **spec},
    }


def test_service_spec_maps_every_planning_field():
    model = parse_service(
        service_body(
            replicas={"min": 0, "max": 8},
            resources={"gpusPerReplica": 4, "pool": "h100"},
            capacity={"perReplica": 2.5, "requestSeconds": 600},
            slo={"attainment": 0.95},
            coldStart={"seconds": 300},
            policy={
                "mode": "recommend",
                "priority": 7,
                "scaleUp": {"maxReplicas": 2, "periodSeconds": 60},
                "scaleDown": {"stabilizationWindowSeconds": 600, "maxPercent": 50},
            },
        ),
        POOLS,
    )
    spec = service_spec("ml/llm", model)
    assert (spec.name, spec.min_replicas, spec.max_replicas) == ("ml/llm", 0, 8)
    assert (spec.gpus_per_replica, spec.pool, spec.capacity_per_replica) == (4, "h100", 2.5)
    assert spec.request_s == 600
    assert (spec.cold_start_s, spec.attainment, spec.mode, spec.priority) == (
        300,
        0.95,
        Mode.RECOMMEND,
        7,
    )
    assert spec.scale_up == ScalingRules(0, 2, 100, 60)
    assert spec.scale_down == ScalingRules(600, None, 50, 15)


def test_training_spec_maps_sizes_sorted():
    model = parse_training(
        training_body(
            workers={"min": 1, "max": 8, "allowedSizes": [8, 2, 4]},
            resources={"gpusPerWorker": 8},
            priority=-1,
            resize={"cooldownSeconds": 120},
            mode="recommend",
        ),
        POOLS,
    )
    spec = training_spec("ml/pre", model)
    assert spec.allowed_sizes == (2, 4, 8)
    assert (spec.gpus_per_worker, spec.priority, spec.cooldown_s, spec.mode) == (
        8,
        -1,
        120,
        TrainingMode.RECOMMEND,
    )


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"replicas": {"min": 5, "max": 2}}, "spec.replicas.min"),
        ({"resources": {"pool": "a100"}}, "unknown GPU pool 'a100'"),
        ({"resources": {"pool": "h100", "gpusPerReplica": 16}}, "do not fit pool h100"),
        ({"scaleTargetRef": {"kind": "Deployment", "name": "x"}}, "exactly one of"),
        ({"demand": {"preset": "custom"}}, "spec.demand.query"),
    ],
)
def test_invalid_service_specs_name_the_field(spec, problem):
    problems = parse_service(service_body(**spec), POOLS)
    assert isinstance(problems, list)
    assert any(problem in p for p in problems), problems


def test_invalid_training_spec():
    problems = parse_training(
        training_body(workers={"min": 2, "max": 4, "allowedSizes": [1, 2]}), POOLS
    )
    assert isinstance(problems, list) and "allowedSizes" in problems[0]


def test_targets():
    owned = parse_service(service_body(), POOLS)
    assert service_target(owned) == TargetRef("apps/v1", "Deployment", "llm")
    ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "vllm"}
    spec = service_body(scaleTargetRef=ref)
    del spec["spec"]["template"]
    assert service_target(parse_service(spec, POOLS)) == TargetRef("apps/v1", "StatefulSet", "vllm")
    assert training_target(parse_training(training_body(), POOLS)) == TargetRef(
        "batch/v1", "Job", "pre"
    )
