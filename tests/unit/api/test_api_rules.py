"""The validation rules at their edges, checked on both sides: the pydantic models and the CRD
schema with its CEL rules (as the API server evaluates them). The two must accept the same
objects and blame the same fields."""

from __future__ import annotations

import copy
import re
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kube_schema import RULES_NOT_CHECKED, crd_schema, validate

from aiscaler.api import InferenceService, TrainingJob, field_errors

MODELS: dict[str, type[InferenceService] | type[TrainingJob]] = {
    "InferenceService": InferenceService,
    "TrainingJob": TrainingJob,
}
DELETE = object()  # in a patch: remove this key

BASE: dict[str, dict[str, Any]] = {
    "InferenceService": {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "chat", "namespace": "inference"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"},
            "replicas": {"min": 1, "max": 4},
        },
    },
    "TrainingJob": {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "pretrain", "namespace": "training"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "trainer", "image": "trainer:1"}]}},
            "workers": {"min": 2, "max": 8},
        },
    },
}
TEMPLATE = BASE["TrainingJob"]["spec"]["template"]
TARGET = BASE["InferenceService"]["spec"]["scaleTargetRef"]


def patched(kind: str, spec_patch: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE[kind])
    merge(doc["spec"], spec_patch)
    return doc


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is DELETE:
            target.pop(key, None)
        elif isinstance(value, dict):
            merge(target.setdefault(key, {}), value)
        else:
            target[key] = copy.deepcopy(value)


def model_errors(doc: dict[str, Any]) -> list[str]:
    try:
        MODELS[doc["kind"]].model_validate(doc)
    except pydantic.ValidationError as error:
        return field_errors(error)
    return []


def error_paths(errors: list[str]) -> set[str]:
    """The field of each error, list indexes dropped (`a.b[2]` and `a.b.2` are both `a.b`)."""
    return {re.sub(r"(\[\d+\]|\.\d+)", "", error.split(": ", 1)[0]) for error in errors}


IS, TJ = "InferenceService", "TrainingJob"

# (kind, spec patch, field blamed or None when valid). Each expectation follows API.md.
EDGES: list[tuple[str, dict[str, Any], str | None]] = [
    # replicas: 0 <= min <= max, max >= 1; min 0 is scale to zero
    (IS, {"replicas": {"min": 0, "max": 1}}, None),
    (IS, {"replicas": {"min": 4, "max": 4}}, None),
    (IS, {"replicas": {"min": 5, "max": 4}}, "spec.replicas.min"),
    (IS, {"replicas": {"min": 0, "max": 0}}, "spec.replicas.max"),
    (IS, {"replicas": {"min": -1, "max": 4}}, "spec.replicas.min"),
    (IS, {"replicas": {"min": DELETE, "max": 1}}, None),  # min defaults to 1
    (IS, {"replicas": {"min": DELETE, "max": 0}}, "spec.replicas.max"),
    (IS, {"replicas": DELETE}, "spec.replicas"),
    # exactly one of scaleTargetRef / template
    (IS, {"scaleTargetRef": DELETE}, "spec"),
    (IS, {"template": TEMPLATE}, "spec"),
    (IS, {"scaleTargetRef": DELETE, "template": TEMPLATE}, None),
    (IS, {"scaleTargetRef": {"name": ""}}, "spec.scaleTargetRef.name"),
    (IS, {"scaleTargetRef": {"kind": DELETE}}, "spec.scaleTargetRef.kind"),
    (IS, {"scaleTargetRef": {"apiVersion": DELETE}}, None),  # defaults to apps/v1
    # positive capacities and GPU counts
    (IS, {"capacity": {"perReplica": 0}}, "spec.capacity.perReplica"),
    (IS, {"capacity": {"perReplica": -2.5}}, "spec.capacity.perReplica"),
    (IS, {"capacity": {"perReplica": 0.001}}, None),
    (IS, {"capacity": {"requestSeconds": 0}}, "spec.capacity.requestSeconds"),
    (IS, {"capacity": {"requestSeconds": 600}}, None),
    (IS, {"resources": {"gpusPerReplica": 0}}, "spec.resources.gpusPerReplica"),
    (IS, {"resources": {"gpusPerReplica": 8}}, None),
    (IS, {"resources": {"gpuResourceName": "gpu"}}, "spec.resources.gpuResourceName"),
    (IS, {"resources": {"gpuResourceName": "amd.com/gpu"}}, None),
    # quantile and attainment in the open interval (0, 1)
    (IS, {"slo": {"attainment": 0}}, "spec.slo.attainment"),
    (IS, {"slo": {"attainment": 1}}, "spec.slo.attainment"),
    (IS, {"slo": {"attainment": 0.5}}, None),
    (IS, {"slo": {"latency": {"quantile": 1.0}}}, "spec.slo.latency.quantile"),
    (IS, {"slo": {"latency": {"quantile": 0.0}}}, "spec.slo.latency.quantile"),
    (IS, {"slo": {"latency": {"quantile": 0.5, "metric": "itl"}}}, "spec.slo.latency.metric"),
    (IS, {"slo": {"latency": {"targetSeconds": 0}}}, "spec.slo.latency.targetSeconds"),
    # cold start may be 0 (a warm pool) but not negative
    (IS, {"coldStart": {"seconds": 0}}, None),
    (IS, {"coldStart": {"seconds": -1}}, "spec.coldStart.seconds"),
    # query only with preset custom, and then required; selector only with presets
    (IS, {"demand": {"preset": "custom", "query": "sum(rate(x[1m]))"}}, None),
    (IS, {"demand": {"preset": "custom"}}, "spec.demand.query"),
    (IS, {"demand": {"preset": "custom", "query": ""}}, "spec.demand.query"),
    (IS, {"demand": {"query": "sum(rate(x[1m]))"}}, "spec.demand.query"),  # preset vllm
    (IS, {"demand": {"preset": "sglang", "selector": {"matchLabels": {"a": "b"}}}}, None),
    (
        IS,
        {"demand": {"preset": "custom", "query": "x", "selector": {"matchLabels": {"a": "b"}}}},
        "spec.demand.selector",
    ),
    (IS, {"demand": {"preset": "onnx"}}, "spec.demand.preset"),
    (IS, {"demand": {"unit": "tokensPerSecond"}}, None),
    # policy
    (IS, {"policy": {"mode": "recommend", "priority": -5}}, None),
    (IS, {"policy": {"mode": "aggressive"}}, "spec.policy.mode"),
    (IS, {"policy": {"scaleUp": {"periodSeconds": 0}}}, "spec.policy.scaleUp.periodSeconds"),
    (IS, {"policy": {"scaleDown": {"maxReplicas": 0}}}, "spec.policy.scaleDown.maxReplicas"),
    (
        IS,
        {"policy": {"scaleDown": {"stabilizationWindowSeconds": -1}}},
        "spec.policy.scaleDown.stabilizationWindowSeconds",
    ),
    # workers: 1 <= min <= max; allowedSizes within [min, max], no repeats, not empty
    (TJ, {"workers": {"min": 8, "max": 8}}, None),
    (TJ, {"workers": {"min": 9, "max": 8}}, "spec.workers.min"),
    (TJ, {"workers": {"min": 0, "max": 8}}, "spec.workers.min"),
    (TJ, {"workers": {"allowedSizes": [2, 8]}}, None),  # both ends are within
    (TJ, {"workers": {"allowedSizes": [1, 4]}}, "spec.workers.allowedSizes"),
    (TJ, {"workers": {"allowedSizes": [4, 9]}}, "spec.workers.allowedSizes"),
    (TJ, {"workers": {"allowedSizes": [4, 4]}}, "spec.workers.allowedSizes"),
    (TJ, {"workers": {"allowedSizes": []}}, "spec.workers.allowedSizes"),
    (TJ, {"workers": {"allowedSizes": list(range(2, 67))}}, "spec.workers.allowedSizes"),
    (TJ, {"template": DELETE}, "spec"),
    (TJ, {"scaleTargetRef": TARGET}, "spec"),
    (TJ, {"template": DELETE, "scaleTargetRef": TARGET}, None),
    (TJ, {"resources": {"gpusPerWorker": 0}}, "spec.resources.gpusPerWorker"),
    (TJ, {"resize": {"cooldownSeconds": -1}}, "spec.resize.cooldownSeconds"),
    (TJ, {"throughput": {"query": ""}}, "spec.throughput.query"),
    (TJ, {"mode": "predictive"}, "spec.mode"),
    (TJ, {"mode": "recommend", "priority": 3}, None),
]


@pytest.mark.parametrize(("kind", "patch", "blamed"), EDGES)
def test_edge_is_judged_the_same_by_models_and_schema(
    kind: str, patch: dict[str, Any], blamed: str | None
) -> None:
    doc = patched(kind, patch)
    from_models = model_errors(doc)
    from_schema = validate(crd_schema(kind), doc)
    if blamed is None:
        assert from_models == []
        assert from_schema == []
    else:
        assert blamed in error_paths(from_models), from_models
        assert blamed in error_paths(from_schema), from_schema


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(DELETE), strategy)


small = st.integers(min_value=-1, max_value=6)

inference_patches = st.fixed_dictionaries(
    {
        "scaleTargetRef": maybe(st.just(TARGET)),
        "template": maybe(st.just(TEMPLATE)),
        "replicas": maybe(st.fixed_dictionaries({"min": maybe(small), "max": maybe(small)})),
        "demand": st.fixed_dictionaries(
            {
                "preset": maybe(st.sampled_from(["vllm", "custom"])),
                "query": maybe(st.just("sum(rate(requests_total[1m]))")),
                "selector": maybe(st.just({"matchLabels": {"app": "chat"}})),
            }
        ),
        "slo": st.fixed_dictionaries({"attainment": maybe(st.sampled_from([0, 0.9, 1, 2]))}),
    }
)

training_patches = st.fixed_dictionaries(
    {
        "scaleTargetRef": maybe(st.just(TARGET)),
        "template": maybe(st.just(TEMPLATE)),
        "workers": st.fixed_dictionaries(
            {
                "min": maybe(small),
                "max": maybe(small),
                "allowedSizes": maybe(st.lists(small, max_size=4)),
            }
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.tuples(st.just(IS), inference_patches), st.tuples(st.just(TJ), training_patches))
)
def test_models_and_schema_agree_on_any_combination(case: tuple[str, dict[str, Any]]) -> None:
    kind, patch = case
    doc = patched(kind, patch)
    from_models = model_errors(doc)
    from_schema = validate(crd_schema(kind), doc)
    assert (from_models == []) == (from_schema == []), (from_models, from_schema)
    if RULES_NOT_CHECKED not in from_schema:
        # The models stop at the first broken rule of an object, the API server reports all.
        assert error_paths(from_models) <= error_paths(from_schema), (from_models, from_schema)
