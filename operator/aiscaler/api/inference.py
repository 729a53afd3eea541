"""InferenceService: a GPU inference service that aiscaler scales ahead of its demand."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

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

ScalingMode = Literal["predictive", "reactive", "recommend"]
DemandPreset = Literal["vllm", "sglang", "tgi", "triton", "custom"]


class Replicas(ApiModel):
    """Bounds on the replica count; every decision stays within them."""

    min: int = Field(
        default=1,
        ge=0,
        description="Fewest replicas. 0 allows scale to zero with predictive wake-up.",
    )
    max: int = Field(ge=1, description="Most replicas.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.min <= self.max",
            message="min must be less than or equal to max",
            holds=lambda r: r.min <= r.max,
            field_path=".min",
        ),
    )


class InferenceResources(GpuPlacement):
    """GPUs of one replica."""

    gpus_per_replica: int = Field(default=1, ge=1, description="GPUs one replica uses.")


class LabelSelector(ApiModel):
    """Label matchers added to every preset query (e.g. to pick this service's pods)."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Label name to exact value."
    )


class Demand(ApiModel):
    """Where the demand signal comes from."""

    preset: DemandPreset = Field(
        default="vllm",
        description="Serving engine whose metrics measure demand (vllm, sglang, tgi, triton), "
        "or custom to give the PromQL query yourself.",
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        description="PromQL query of the demand rate; required when preset is custom and "
        "allowed only then.",
    )
    unit: Literal["requestsPerSecond", "tokensPerSecond"] = Field(
        default="requestsPerSecond",
        description="Unit of the demand rate, and of capacity.perReplica.",
    )
    selector: LabelSelector | None = Field(
        default=None, description="Label matchers added to the preset queries."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.preset != 'custom' || has(self.query)",
            message="query is required when preset is custom",
            holds=lambda d: d.preset != "custom" or d.query is not None,
            field_path=".query",
        ),
        Rule(
            cel="self.preset == 'custom' || !has(self.query)",
            message="query is allowed only when preset is custom; presets build their own query",
            holds=lambda d: d.preset == "custom" or d.query is None,
            field_path=".query",
        ),
        Rule(
            cel="self.preset != 'custom' || !has(self.selector)",
            message="selector applies to preset queries only; with preset custom put the label "
            "matchers into query",
            holds=lambda d: d.preset != "custom" or d.selector is None,
            field_path=".selector",
        ),
    )


class Capacity(ApiModel):
    """Demand one replica serves within the SLO."""

    per_replica: float | None = Field(
        default=None,
        gt=0,
        description="Demand (in demand.unit) one replica serves within the SLO, measured with a "
        "load test (docs/capacity.md). Required to scale: without it replicas are held with "
        "Degraded CapacityUnknown (it is not learned online yet).",
    )
    request_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Mean seconds a request holds a replica (vLLM: the mean of "
        "vllm:e2e_request_latency_seconds). When it is longer than the demand's rate window, "
        "replicas are sized on the demand that arrived within the last requestSeconds (the "
        "requests in flight), not on the peak rate of one window: a burst of long requests is "
        "not planned for as if it lasted. Unset: the rate is sized as it comes.",
    )


class LatencySlo(ApiModel):
    """The latency objective."""

    metric: Literal["ttft", "e2e", "queue"] = Field(
        default="ttft",
        description="Latency measured: ttft (time to first token), e2e (whole request) or "
        "queue (time waiting before service).",
    )
    quantile: float = Field(default=0.95, gt=0, lt=1, description="Latency quantile, in (0, 1).")
    target_seconds: float = Field(
        default=2.0, gt=0, description="The quantile of the latency must stay below this."
    )


class Slo(ApiModel):
    """Service level objective the replica count is planned for."""

    latency: LatencySlo = Field(default_factory=LatencySlo, description="Latency objective.")
    attainment: float = Field(
        default=0.99,
        gt=0,
        lt=1,
        description="Fraction of time the objective must hold, in (0, 1). Demand is planned so "
        "that the expected unserved share is 1 - attainment, and a margin is learned until the "
        "latency objective misses in at most that share of ticks.",
    )


class ColdStart(ApiModel):
    """Time from scale-up to a ready replica."""

    seconds: float = Field(
        default=120,
        ge=0,
        description="Expected seconds from scale-up to a ready replica (image pull, weight "
        "load, warm-up): replicas are started this long (plus node provisioning when no GPU is "
        "free) before the forecast needs them.",
    )


class ScalingRules(ApiModel):
    """Rate limit of one direction, as in HPA behavior: within any periodSeconds, a change of
    at most max(maxReplicas, maxPercent% of the current replicas)."""

    stabilization_window_seconds: int = Field(
        default=0,
        ge=0,
        le=3600,
        description="Seconds a lower (scale-down) or higher (scale-up) target must persist "
        "before it is applied.",
    )
    max_replicas: int | None = Field(
        default=4, ge=1, description="Most replicas changed per period; omit for no limit."
    )
    max_percent: int = Field(
        default=100,
        ge=1,
        description="Most replicas changed per period, in percent of the current replicas.",
    )
    period_seconds: int = Field(
        default=15, ge=1, le=1800, description="Length of the rate-limit period."
    )


class ScaleDownRules(ScalingRules):
    """Rate limit of scale-down: waits 300 s and has no replica limit by default."""

    stabilization_window_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="Seconds the lower target must persist before replicas are removed.",
    )
    max_replicas: int | None = Field(
        default=None, ge=1, description="Most replicas removed per period; omit for no limit."
    )


class Policy(ApiModel):
    """How aiscaler acts on its decisions."""

    mode: ScalingMode = Field(
        default="predictive",
        description="predictive: scale ahead of the forecast; reactive: scale on observed "
        "demand only; recommend: decide and report in status, never scale.",
    )
    priority: int = Field(
        default=0, description="Higher priority is served first when the GPU budget is short."
    )
    scale_up: ScalingRules = Field(default_factory=ScalingRules, description="Scale-up limits.")
    scale_down: ScaleDownRules = Field(
        default_factory=ScaleDownRules, description="Scale-down limits."
    )


class InferenceServiceSpec(WorkloadSpec):
    """Desired behaviour of an InferenceService."""

    replicas: Replicas = Field(description="Replica bounds.")
    resources: InferenceResources = Field(
        default_factory=InferenceResources, description="GPUs of one replica."
    )
    demand: Demand = Field(default_factory=Demand, description="Demand signal.")
    capacity: Capacity = Field(default_factory=Capacity, description="Capacity of one replica.")
    slo: Slo = Field(default_factory=Slo, description="Service level objective.")
    cold_start: ColdStart = Field(default_factory=ColdStart, description="Cold start time.")
    policy: Policy = Field(default_factory=Policy, description="Scaling policy.")


class ForecastStatus(ApiModel):
    """Forecast demand at the lead time."""

    lead_time_seconds: float | None = Field(default=None, description="Lead time planned for.")
    quantile: float | None = Field(default=None, description="Quantile of value (slo.attainment).")
    value: float | None = Field(default=None, description="Demand forecast at that quantile.")
    p50: float | None = Field(default=None, description="Median demand forecast.")
    source: str | None = Field(
        default=None, description="Forecaster used, e.g. model, holt_winters, seasonal_naive."
    )


class CapacityStatus(ApiModel):
    """Capacity of one replica in use."""

    per_replica: float | None = Field(default=None, description="Demand one replica serves.")
    learned: bool | None = Field(default=None, description="True when learned online.")


class ColdStartStatus(ApiModel):
    """Cold start in use."""

    seconds: float | None = Field(default=None, description="Seconds from scale-up to ready.")
    measured: bool | None = Field(default=None, description="True when measured online.")


class PlanStatus(ApiModel):
    """What the replicas are planned from."""

    basis: Literal["forecast", "floor"] | None = Field(
        default=None,
        description="forecast: the forecast's plan, with the reactive floor under it; floor: the "
        "reactive floor alone (reactive mode, or the floor alone would have met slo.attainment "
        "over the last day).",
    )
    floor_attainment: float | None = Field(
        default=None,
        description="Share of demand the reactive floor alone would have served, from the "
        "service's own replay (a day's memory, to 3 decimals); absent until scored.",
    )


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation last acted on."
    )
    replicas: int | None = Field(default=None, description="Current replicas of the workload.")
    ready_replicas: int | None = Field(default=None, description="Ready replicas of the workload.")
    desired_replicas: int | None = Field(default=None, description="Replicas aiscaler decided.")
    mode: ScalingMode | None = Field(default=None, description="Mode in effect.")
    forecast: ForecastStatus | None = Field(default=None, description="Forecast at the lead time.")
    capacity: CapacityStatus | None = Field(
        default=None, description="Capacity of one replica in use."
    )
    cold_start: ColdStartStatus | None = Field(default=None, description="Cold start in use.")
    plan: PlanStatus | None = Field(default=None, description="What the replicas are planned from.")
    slo_margin: float | None = Field(
        default=None,
        description="SLO margin in use: the factor (>= 1) on planned demand, learned from whether "
        "the latency objective held; a restarted operator resumes from it.",
    )
    last_decision: LastDecision | None = Field(default=None, description="Latest decision.")
    conditions: list[Condition] = conditions_field()


class InferenceService(ApiModel):
    """A GPU inference service that aiscaler scales ahead of its demand. Conditions: Ready,
    Degraded (metrics missing or stale), ScalingLimited, Invalid."""

    plural: ClassVar[str] = "inferenceservices"
    short_names: ClassVar[tuple[str, ...]] = ("ais",)

    api_version: Literal["aiscaler.dev/v1alpha1"] = API_VERSION
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None
