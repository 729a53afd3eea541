"""TrainingJob: an elastic training job that gets the GPUs inference does not need."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from aiscaler.api.base import (
    API_VERSION,
    ApiModel,
    Condition,
    GpuPlacement,
    LastDecision,
    ObjectMeta,
    Rule,
    WorkloadSpec,
    conditions_field,
)

TrainingPhase = Literal["Pending", "Running", "Resizing", "Succeeded", "Failed"]

# Bounds the cost of the allowedSizes rule for the API server's CEL budget.
MAX_ALLOWED_SIZES = 64


class Workers(ApiModel):
    """Bounds on the worker count (torchrun --nnodes=min:max)."""

    min: int = Field(default=1, ge=1, description="Fewest workers the job runs with.")
    max: int = Field(ge=1, description="Most workers.")
    allowed_sizes: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ALLOWED_SIZES,
        description="Worker counts the job may run with (e.g. powers of two for the data "
        "parallel layout), each within [min, max], no repeats; any count when omitted.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.min <= self.max",
            message="min must be less than or equal to max",
            holds=lambda w: w.min <= w.max,
            field_path=".min",
        ),
        Rule(
            cel="!has(self.allowedSizes) || self.allowedSizes.all(s, s >= self.min && "
            "s <= self.max)",
            message="every allowedSizes entry must be within [min, max]",
            holds=lambda w: (
                w.allowed_sizes is None or all(w.min <= size <= w.max for size in w.allowed_sizes)
            ),
            field_path=".allowedSizes",
        ),
    )

    @field_validator("allowed_sizes")
    @classmethod
    def _sizes_do_not_repeat(cls, sizes: list[int] | None) -> list[int] | None:
        # The CRD says the same with x-kubernetes-list-type: set.
        if sizes is not None and len(set(sizes)) != len(sizes):
            repeated = sorted({size for size in sizes if sizes.count(size) > 1})
            raise ValueError(f"allowedSizes must not repeat a size (repeated: {repeated})")
        return sizes


class TrainingResources(GpuPlacement):
    """GPUs of one worker."""

    gpus_per_worker: int = Field(default=1, ge=1, description="GPUs one worker uses.")


class Resize(ApiModel):
    """How often the job may be resized."""

    cooldown_seconds: int = Field(
        default=600,
        ge=0,
        description="Fewest seconds between two resizes (each restarts the workers).",
    )


class Throughput(ApiModel):
    """Training throughput, to learn how well the job scales."""

    query: str | None = Field(
        default=None,
        min_length=1,
        description="PromQL query of the job's throughput (e.g. samples/s).",
    )


class TrainingJobSpec(WorkloadSpec):
    """Desired behaviour of a TrainingJob."""

    workers: Workers = Field(description="Worker bounds.")
    resources: TrainingResources = Field(
        default_factory=TrainingResources, description="GPUs of one worker."
    )
    priority: int = Field(
        default=0, description="Higher priority gets GPUs first among training jobs."
    )
    resize: Resize = Field(default_factory=Resize, description="Resize limits.")
    throughput: Throughput = Field(default_factory=Throughput, description="Throughput signal.")
    mode: Literal["active", "recommend"] = Field(
        default="active",
        description="active: resize the workers; recommend: decide and report in status only.",
    )


class ResizeEvent(ApiModel):
    """One resize of the job."""

    time: datetime | None = Field(default=None, description="When the resize was made.")
    from_: int | None = Field(default=None, alias="from", description="Workers before.")
    to: int | None = Field(default=None, description="Workers after.")
    reason: str | None = Field(default=None, description="Why, CamelCase.")


# Status keeps the latest resizes only, so it stays small.
RESIZE_HISTORY_LENGTH = 10


class TrainingJobStatus(ApiModel):
    """Observed state of a TrainingJob, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation last acted on."
    )
    phase: TrainingPhase | None = Field(
        default=None, description="Pending, Running, Resizing, Succeeded or Failed."
    )
    workers: int | None = Field(default=None, description="Current workers.")
    desired_workers: int | None = Field(default=None, description="Workers aiscaler decided.")
    gpu_hours: float | None = Field(default=None, description="GPU-hours used so far.")
    resize_history: list[ResizeEvent] = Field(
        default_factory=list,
        max_length=RESIZE_HISTORY_LENGTH,
        description=f"The last {RESIZE_HISTORY_LENGTH} resizes, oldest first.",
    )
    last_decision: LastDecision | None = Field(default=None, description="Latest decision.")
    conditions: list[Condition] = conditions_field()


class TrainingJob(ApiModel):
    """An elastic training job whose workers aiscaler resizes to use the GPUs inference does
    not need, shrinking it ahead of a forecast inference peak."""

    plural: ClassVar[str] = "trainingjobs"
    short_names: ClassVar[tuple[str, ...]] = ("atj",)

    api_version: Literal["aiscaler.dev/v1alpha1"] = API_VERSION
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
