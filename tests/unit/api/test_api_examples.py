"""Every example a user may apply is accepted by both the CRD schema (as the API server checks
it) and the pydantic models; every invalid one is rejected by both, naming the wrong field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml
from kube_schema import REPO, apply_defaults, crd_schema, validate

from aiscaler.api import API_VERSION, InferenceService, TrainingJob, field_errors

MODELS: dict[str, type[InferenceService] | type[TrainingJob]] = {
    "InferenceService": InferenceService,
    "TrainingJob": TrainingJob,
}
# The workload the operator makes from a `template`, to check the template as Kubernetes would.
OWNED_WORKLOAD = {"InferenceService": ("apps/v1", "Deployment"), "TrainingJob": ("batch/v1", "Job")}
KUBERNETES_VERSION = "1.37"

EXAMPLES = REPO / "examples"
VALID_FILES = sorted(EXAMPLES.glob("*.yaml"))
INVALID_FILES = sorted((EXAMPLES / "invalid").glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def custom_resources(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in documents(path) if doc["apiVersion"] == API_VERSION]


def names_field(error: str, path: str) -> bool:
    """The error line is about `path` itself or one of its list items."""
    return error.startswith((f"{path}:", f"{path}["))


def test_there_are_examples_of_both_kinds() -> None:
    kinds = {doc["kind"] for path in VALID_FILES for doc in custom_resources(path)}
    assert kinds == set(MODELS)
    assert len(INVALID_FILES) >= 5


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_valid_example_is_accepted_by_schema_and_models(path: Path) -> None:
    resources = custom_resources(path)
    assert resources, f"{path.name} holds no aiscaler resource"
    for doc in resources:
        assert validate(crd_schema(doc["kind"]), doc) == []
        MODELS[doc["kind"]].model_validate(doc)


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_schema_defaults_equal_model_defaults(path: Path) -> None:
    # The API server stores the object with the schema's defaults filled in; the operator must
    # read the same values from it as the models give the object as the user wrote it.
    for doc in custom_resources(path):
        model = MODELS[doc["kind"]]
        defaulted = apply_defaults(crd_schema(doc["kind"]), yaml.safe_load(yaml.safe_dump(doc)))
        assert model.model_validate(defaulted) == model.model_validate(doc)
        assert (
            defaulted["spec"]
            == model.model_validate(doc).model_dump(mode="json", exclude_none=True)["spec"]
        )


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_other_kubernetes_objects_and_templates_are_valid(path: Path) -> None:
    for doc in documents(path):
        if doc["apiVersion"] == API_VERSION:
            template = doc["spec"].get("template")
            if template is None:
                continue
            api_version, kind = OWNED_WORKLOAD[doc["kind"]]
            doc = {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": doc["metadata"]["name"]},
                "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}
                if kind == "Deployment"
                else {"template": template},
            }
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def expected_error_path(path: Path) -> str:
    match = re.search(r"^# expect-error: (\S+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name} does not say which field is wrong (# expect-error: <path>)"
    return match.group(1)


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.name)
def test_invalid_example_is_rejected_by_schema_naming_the_field(path: Path) -> None:
    expected = expected_error_path(path)
    (doc,) = custom_resources(path)
    errors = validate(crd_schema(doc["kind"]), doc)
    assert any(names_field(error, expected) for error in errors), errors


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.name)
def test_invalid_example_is_rejected_by_models_naming_the_field(path: Path) -> None:
    expected = expected_error_path(path)
    (doc,) = custom_resources(path)
    with pytest.raises(pydantic.ValidationError) as raised:
        MODELS[doc["kind"]].model_validate(doc)
    errors = field_errors(raised.value)
    assert any(names_field(error, expected) for error in errors), errors


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_an_example_that_scales_to_zero_reads_demand_from_outside_the_engine(path: Path) -> None:
    # With zero replicas an engine exports nothing, so a preset reads no demand and the service
    # never wakes up (docs/metrics.md): scale to zero needs a custom query.
    for doc in custom_resources(path):
        if doc["kind"] == "InferenceService" and doc["spec"]["replicas"].get("min", 1) == 0:
            assert doc["spec"]["demand"]["preset"] == "custom", path.name
