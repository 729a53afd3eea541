"""Value types shared by the decision core and everything that feeds it.

These are the contract between forecasters (aiscaler.forecast), the simulator (aiscaler.sim),
the operator (aiscaler.handlers) and the planner: plain frozen dataclasses, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Forecast:
    """Quantile forecast of one demand series.

    `values[h - 1, j]` is quantile `quantiles[j]` of the mean demand rate (units/s) over the step
    that ends `h * step_s` seconds after the forecast origin (the last observed point).
    """

    step_s: float
    quantiles: tuple[float, ...]
    values: npt.NDArray[np.float64]  # shape (horizon, len(quantiles)), non-decreasing along axis 1
    source: str  # forecaster that produced it, e.g. "model", "holt_winters", "seasonal_naive"
    note: str = ""  # why a fallback was used, empty when none was

    @property
    def horizon(self) -> int:
        return int(self.values.shape[0])


class Reason(StrEnum):
    """Why a decision has its value: a closed set, used as condition and event reasons.

    Like the HPA's condition reasons, each names the rule that set (or bounded) the value.
    """

    # What the value was computed from (planner).
    FORECAST_PEAK = "ForecastPeak"  # peak of the forecast demand over [L, L + tick]
    DEMAND_BEFORE_LEAD_TIME = "DemandBeforeLeadTime"  # kept: needed before a restart could return
    OBSERVED_DEMAND = "ObservedDemand"  # reactive floor: the demand observed now needs more
    PREDICTIVE_WAKE_UP = "PredictiveWakeUp"  # from zero, a lead time before forecast demand
    IDLE = "Idle"  # no demand observed or forecast: scaled to the minimum (zero if allowed)
    # Stabilisation and limits.
    SCALE_UP_STABILIZED = "ScaleUpStabilized"
    SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
    SCALE_UP_LIMIT = "ScaleUpLimit"
    SCALE_DOWN_LIMIT = "ScaleDownLimit"
    TOO_FEW_REPLICAS = "TooFewReplicas"  # raised to the minimum
    TOO_MANY_REPLICAS = "TooManyReplicas"  # capped at the maximum
    BUDGET_LIMITED = "BudgetLimited"  # capped by a GPU budget (pool or global)
    # Data problems: the planner holds (never scales down) and says which.
    METRICS_MISSING = "MetricsMissing"
    METRICS_STALE = "MetricsStale"
    METRICS_INVALID = "MetricsInvalid"  # NaN, infinite or negative
    FORECAST_MISSING = "ForecastMissing"
    FORECAST_STALE = "ForecastStale"
    FORECAST_INVALID = "ForecastInvalid"  # NaN/inf/negative values, or too short a horizon
    CAPACITY_UNKNOWN = "CapacityUnknown"  # no usable capacity per replica
    # Training jobs.
    LEFTOVER_GPUS = "LeftoverGPUs"  # sized to the GPUs inference leaves free
    INFERENCE_PEAK_AHEAD = "InferencePeakAhead"  # shrunk before a forecast inference peak
    RESIZE_COOLDOWN = "ResizeCooldown"  # a change waits for the resize cooldown
    # Node plan.
    HEADROOM = "Headroom"  # balloon pods so nodes exist before the forecast demand
    NO_HEADROOM_NEEDED = "NoHeadroomNeeded"
    MAX_NODES_REACHED = "MaxNodesReached"
    # Condition reasons when all is well.
    DESIRED_WITHIN_RANGE = "DesiredWithinRange"  # ScalingLimited False (as the HPA says)
    METRICS_AVAILABLE = "MetricsAvailable"  # Degraded False
    REPLICAS_READY = "ReplicasReady"  # Ready True
    REPLICAS_NOT_READY = "ReplicasNotReady"  # Ready False


class Mode(StrEnum):
    PREDICTIVE = "predictive"
    REACTIVE = "reactive"
    RECOMMEND = "recommend"  # the predictive decision, reported but not applied


@dataclass(frozen=True)
class ScalingRules:
    """HPA-style behaviour for one direction (policy.scaleUp / policy.scaleDown).

    Within any `period_s`, the change is at most max(`max_replicas`, `max_percent`% of the
    replicas at the start of the period); `max_replicas` None means no pod-count policy.
    """

    stabilization_window_s: float
    max_replicas: int | None
    max_percent: float
    period_s: float


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_s=0.0, max_replicas=4, max_percent=100.0, period_s=15.0
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_s=300.0, max_replicas=None, max_percent=100.0, period_s=15.0
)


@dataclass(frozen=True)
class PlannerConfig:
    """Operator-wide planner settings."""

    tick_s: float = 30.0  # planning interval: the window is [L, L + tick]
    max_demand_age_s: float = 120.0  # an older demand sample is stale
    max_forecast_age_s: float = 300.0  # a forecast whose origin is older is stale
    # The window `ServiceObservation.slo_met` is measured over. Ticks closer than it see
    # overlapping windows, so each counts tick_s / slo_window_s of an update (core.margin).
    slo_window_s: float = 30.0
    # The window `ServiceObservation.demand` is a rate over: a request lasting longer is
    # counted in flight from the samples of its whole duration (core.inflight).
    demand_window_s: float = 120.0


@dataclass(frozen=True)
class ServiceSpec:
    """One InferenceService's planning parameters (mirrors the CR spec; the operator maps it)."""

    name: str  # unique key, e.g. "namespace/name"
    max_replicas: int
    min_replicas: int = 1  # 0 allows scale to zero
    gpus_per_replica: int = 1
    pool: str | None = None  # GPU pool name; None: only the global budget applies
    capacity_per_replica: float | None = None  # units/s one replica serves within the SLO
    # Mean seconds a request holds a replica's slot; None: not known (sized on the rate per step)
    request_s: float | None = None
    cold_start_s: float = 120.0
    attainment: float = 0.99  # the forecast quantile planned for
    mode: Mode = Mode.PREDICTIVE
    priority: int = 0
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclass(frozen=True)
class ServiceObservation:
    """What is known about one service at this tick."""

    current_replicas: int  # replicas the target has now (spec of its /scale)
    demand: float | None  # demand rate observed now (units/s); None when the query failed
    demand_time: float | None = None  # sample time of `demand`; None means "now"
    demand_error: str = ""  # why `demand` is None (from the metrics adapter), for the message
    forecast: Forecast | None = None
    forecast_origin: float | None = None  # time of the forecast's last observed point
    ready_replicas: int | None = None  # for the Ready condition and SLO risk; None: = current
    free_gpus: int | None = None  # free GPUs in its pool now; None: not limited (no node wait)
    # Whether the latency objective held over the last measurement window (the SLO quantile of
    # the latency within its target); None when not measured. Feeds the learned margin.
    slo_met: bool | None = None


@dataclass(frozen=True)
class ScaleEvent:
    time: float
    change: int  # replicas added (> 0) or removed (< 0)


@dataclass(frozen=True)
class Recommendation:
    time: float
    replicas: int  # the unstabilised desired replicas of that tick


@dataclass(frozen=True)
class SloMargin:
    """The learned factor on planned demand (`aiscaler.core.margin`), with the tick of its last
    update and its value before that update (a re-run of the same tick starts from there)."""

    factor: float = 1.0
    time: float | None = None
    before: float = 1.0


@dataclass(frozen=True)
class DemandSample:
    time: float
    rate: float  # the valid demand observed at that tick


@dataclass(frozen=True)
class FloorTick:
    time: float
    floor: int  # the reactive floor decided at that tick
    held: int  # the floor-only policy's replicas then: the window's highest floor, within bounds


@dataclass(frozen=True)
class FloorRecord:
    """The planner's backtest of the reactive floor alone (`aiscaler.core.floorcheck`)."""

    ticks: tuple[FloorTick, ...] = ()  # the recent ticks the replay needs
    unserved: float = 0.0  # demand the floor alone would have left unserved, fading
    demand: float = 0.0  # demand scored, fading
    scored: float = 0.0  # ticks scored with demand, fading
    time: float | None = None  # the tick of the last update
    before: FloorRecord | None = None  # the record before that update (a re-run starts there)


class PlanBasis(StrEnum):
    """What the replicas were planned from, reported in status (`plan.basis`)."""

    FORECAST = "forecast"  # the forecast's plan, with the reactive floor under it
    FLOOR = "floor"  # the reactive floor alone (reactive mode, or it would have met the goal)


@dataclass(frozen=True)
class ScaleMemory:
    """Per-service history the planner needs (stabilisation windows, rate-limit periods).

    Returned with every decision; pass it back on the next tick. Start with `ScaleMemory()`.
    """

    recommendations: tuple[Recommendation, ...] = ()
    events: tuple[ScaleEvent, ...] = ()
    margin: SloMargin = SloMargin()
    demand: tuple[DemandSample, ...] = ()  # valid samples within the request time (inflight)
    floor: FloorRecord = FloorRecord()


@dataclass(frozen=True)
class ServiceDecision:
    """The planner's answer for one service."""

    name: str
    replicas: int  # the decided replicas
    reason: Reason  # the rule that set the value (see docs/core.md)
    message: str
    apply: bool  # False in recommend mode: report, do not scale
    recommendation: int  # desired replicas before stabilisation, rate limits, min/max, budget
    lead_time_s: float  # L used: cold start, plus node provisioning when no GPU was free
    forecast_value: float | None  # Q_a of demand over the lead-time window (None: not used)
    forecast_p50: float | None  # the median over the same window
    degraded: Reason | None  # the data problem, if any (Degraded condition)
    limited: Reason | None  # the limit that bound the value, if any (ScalingLimited condition)
    memory: ScaleMemory  # pass back on the next tick
    # The demand level planned for over the same window: expected unserved demand 1 - a
    # (planner.planned_level); None when no forecast was used.
    planned_demand: float | None = None
    basis: PlanBasis = PlanBasis.FORECAST
    # The share of demand the reactive floor alone would have served (core.floorcheck); None
    # until it has been scored.
    floor_attainment: float | None = None


class TrainingMode(StrEnum):
    ACTIVE = "active"
    RECOMMEND = "recommend"


@dataclass(frozen=True)
class TrainingSpec:
    """One elastic TrainingJob's planning parameters."""

    name: str
    max_workers: int
    min_workers: int = 1
    allowed_sizes: tuple[int, ...] = ()  # empty: any size in [min_workers, max_workers]
    gpus_per_worker: int = 1
    pool: str | None = None
    priority: int = 0
    cooldown_s: float = 600.0  # no growth within this long after a resize
    lead_time_s: float = 60.0  # time a shrink takes to free its GPUs (checkpoint and stop)
    mode: TrainingMode = TrainingMode.ACTIVE


@dataclass(frozen=True)
class TrainingObservation:
    current_workers: int
    last_resize_time: float | None = None  # None: never resized


@dataclass(frozen=True)
class TrainingDecision:
    name: str
    workers: int  # 0 = paused: not even min_workers fit
    reason: Reason
    message: str
    apply: bool


@dataclass(frozen=True)
class PoolSpec:
    """A GPU node pool (operator settings `pools`)."""

    name: str
    gpus_per_node: int
    max_nodes: int
    min_nodes: int = 0
    provisioning_s: float = 300.0  # time for a new node to join and take pods
    budget: int | None = None  # max GPUs planned in this pool; None: max_nodes * gpus_per_node


@dataclass(frozen=True)
class PoolPlan:
    name: str
    gpus_planned: int  # GPUs of all planned pods in the pool
    nodes_now: int  # nodes the planned pods need now (bin-packed)
    nodes_at_lead: int  # nodes needed within the provisioning time, within [min, max] nodes
    balloon_pods: int  # low-priority placeholder pods keeping headroom for the forecast
    balloon_gpus: int  # GPUs each balloon pod requests (a whole node)
    reason: Reason
    message: str


@dataclass(frozen=True)
class ClusterPlan:
    services: tuple[ServiceDecision, ...]
    trainings: tuple[TrainingDecision, ...]
    pools: tuple[PoolPlan, ...]


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style status condition."""

    type: str
    status: str  # "True" | "False"
    reason: str
    message: str
    last_transition_time: float
