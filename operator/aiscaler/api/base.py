"""Pieces shared by both custom resources: the base model, cross-field rules, common types.

A cross-field `Rule` is written once per idea in two languages: a Python predicate that pydantic
checks, and the CEL expression the CRD carries as an `x-kubernetes-validations` entry, with the
same message and field path. tests/unit/api checks that the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

GROUP = "aiscaler.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "aiscaler.dev/v1alpha1"  # GROUP/VERSION, spelled out for Literal types

# YAML names are camelCase, Python attributes snake_case; both are accepted on input.
CAMEL_CASE = ConfigDict(
    alias_generator=to_camel,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
)


@dataclass(frozen=True)
class Rule:
    """A rule over several fields of one object.

    `field_path` ("" or ".name") is the field the error is reported on, relative to the object.
    """

    cel: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str = ""


class RuleViolation(ValueError):
    """Raised by pydantic validation when a `Rule` does not hold; keeps the rule for its path."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule.message)
        self.rule = rule


class ApiModel(BaseModel):
    """Base of every API model: camelCase in YAML, snake_case in Python, unknown fields rejected
    (the API server prunes them anyway; locally they are typos)."""

    model_config = CAMEL_CASE | ConfigDict(extra="forbid")

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in self.rules:
            if not rule.holds(self):
                raise RuleViolation(rule)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if cls.rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [_cel_validation(rule) for rule in cls.rules]
        return json_schema


def _cel_validation(rule: Rule) -> dict[str, str]:
    validation = {"rule": rule.cel, "message": rule.message}
    if rule.field_path:
        validation["fieldPath"] = rule.field_path
    return validation


def field_errors(error: ValidationError) -> list[str]:
    """One line per problem, `path.to.field: message`, the path in the YAML's camelCase names."""
    return [f"{path}: {message}" for path, message in _field_errors(error)]


def _field_errors(error: ValidationError) -> Iterator[tuple[str, str]]:
    for detail in error.errors():
        path = ".".join(_path_part(part) for part in detail["loc"])
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, RuleViolation):
            yield path + cause.rule.field_path, cause.rule.message
        else:
            yield path, detail["msg"]


def _path_part(part: str | int) -> str:
    # A key as the user wrote it; one that is not plain text (a newline, a dot) is quoted.
    text = str(part)
    plain = text.isprintable() and text and "." not in text and '"' not in text
    return text if plain else json.dumps(text)


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata aiscaler reads; the rest is kept as it is."""

    model_config = CAMEL_CASE | ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ScaleTargetRef(ApiModel):
    """An existing workload with a /scale subresource, in the same namespace."""

    api_version: str = Field(
        default="apps/v1", min_length=1, description="API version of the target, e.g. apps/v1."
    )
    kind: str = Field(min_length=1, description="Kind of the target, e.g. Deployment.")
    name: str = Field(min_length=1, description="Name of the target in this namespace.")


# An extended resource name such as nvidia.com/gpu or amd.com/gpu: a DNS subdomain, a slash, a name.
_RESOURCE_NAME_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class GpuPlacement(ApiModel):
    """Which GPUs a replica or worker runs on; the count is named per kind."""

    gpu_type: str | None = Field(
        default=None,
        min_length=1,
        description="GPU model the pods need, e.g. NVIDIA-H100-80GB-HBM3 (the value of the "
        "nvidia.com/gpu.product node label); used to pick the GPU pool.",
    )
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=_RESOURCE_NAME_PATTERN,
        description="Extended resource name the pods request GPUs by.",
    )
    pool: str | None = Field(
        default=None,
        min_length=1,
        description="Name of an operator GPU pool (operator settings) to place the pods in.",
    )


class LastDecision(ApiModel):
    """The latest scaling decision and why it was made."""

    time: datetime | None = Field(default=None, description="When the decision was made.")
    replicas: int | None = Field(default=None, description="Replicas (or workers) decided.")
    reason: str | None = Field(default=None, description="Machine-readable reason, CamelCase.")
    message: str | None = Field(default=None, description="Human-readable explanation.")


class Condition(ApiModel):
    """A standard Kubernetes condition."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, description="Machine-readable reason, CamelCase.")
    message: str | None = Field(default=None, description="Human-readable explanation.")
    last_transition_time: datetime | None = Field(
        default=None, description="When the status last changed."
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the condition was computed from."
    )


def conditions_field() -> Any:
    """The `conditions` field of a status: a list keyed by type, as Kubernetes lists merge."""
    return Field(
        default_factory=list,
        description="Current state, one entry per condition type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class WorkloadSpec(ApiModel):
    """The workload a custom resource scales: an existing one, or one the operator owns."""

    scale_target_ref: ScaleTargetRef | None = Field(
        default=None,
        description="An existing workload to scale. Exactly one of scaleTargetRef and "
        "template is set.",
    )
    template: dict[str, Any] | None = Field(
        default=None,
        description="Pod template (a PodTemplateSpec) of a workload the operator creates and "
        "owns, named like this resource: a Deployment for an InferenceService, a batch/v1 Job "
        "for a TrainingJob. Exactly one of scaleTargetRef and template is set.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.scaleTargetRef) != has(self.template)",
            message="exactly one of scaleTargetRef and template must be set",
            holds=lambda spec: (spec.scale_target_ref is None) != (spec.template is None),
        ),
    )
