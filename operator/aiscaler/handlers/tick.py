"""One cluster-wide planning tick: observe, measure, forecast, plan, act, report.

`run_tick` is the whole loop body: the kopf layer calls it every `tick_seconds` on the leader
with the bodies from its indices, and the integration tests call it directly with real clients.
It is level-triggered: every tick reconciles every object, so a missed tick or a restart loses
nothing. Writes happen only where a value changes (scale, status, events).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from aiscaler.api.inference import InferenceService
from aiscaler.api.training import TrainingJob
from aiscaler.core.allocator import plan_cluster
from aiscaler.core.conditions import service_conditions, training_conditions
from aiscaler.core.margin import MAX_MARGIN, MIN_MARGIN
from aiscaler.core.types import (
    ClusterPlan,
    Condition,
    Forecast,
    PlannerConfig,
    PoolPlan,
    PoolSpec,
    ScaleMemory,
    ServiceDecision,
    ServiceObservation,
    ServiceSpec,
    SloMargin,
    TrainingDecision,
    TrainingObservation,
    TrainingSpec,
)
from aiscaler.forecast.base import Forecaster
from aiscaler.handlers.mapping import (
    key_of,
    parse_service,
    parse_training,
    pool_specs,
    service_query,
    service_spec,
    service_target,
    training_spec,
    training_target,
)
from aiscaler.handlers.status import (
    OperatorReason,
    SpecReason,
    invalid_condition,
    operator_condition,
    overriding,
    parse_timestamp,
    read_conditions,
    scaled_outside,
    settled_forecast,
    status_patch,
    timestamp,
    write_conditions,
)
from aiscaler.handlers.telemetry import Telemetry
from aiscaler.kube.client import (
    KubeApi,
    KubeError,
    Listings,
    NotFound,
    NotOwned,
    ScaleState,
    TargetRef,
)
from aiscaler.kube.manifests import (
    FIELD_MANAGER,
    Owner,
    balloon_deployment,
    balloon_deployment_name,
    owned_deployment,
    owned_training_job,
    rendezvous_service,
    training_job_resize,
)
from aiscaler.metrics.errors import MetricError
from aiscaler.metrics.source import (
    History,
    JobQuery,
    MetricsSource,
    Reading,
    Sample,
    ServiceQuery,
)
from aiscaler.settings import Settings

log = logging.getLogger("aiscaler")

QUANTILES = (0.5, 0.9, 0.95, 0.99)
# Series per forecaster call. Each series is forecast from its own history, so batching changes
# no forecast; it bounds the forecaster's working memory (the model scores 16 past origins per
# series: one call for 1,000 series ran ~17,000 network rows and raised the peak RSS by ~200 MB).
FORECAST_BATCH = 128
RESIZE_HISTORY = 10  # entries kept in a TrainingJob's status


@dataclass
class Operator:
    """What the operator builds once at start-up, and the memory it carries between ticks."""

    kube: KubeApi
    metrics: MetricsSource
    forecaster: Forecaster
    settings: Settings
    namespace: str  # the operator's own namespace: balloon Deployments live there
    telemetry: Telemetry = field(default_factory=Telemetry)
    memories: dict[str, ScaleMemory] = field(default_factory=dict)
    last_tick: float | None = None
    left: dict[str, int] = field(default_factory=dict)  # replicas each target was left at
    # key -> (resourceVersion before, object after) of the last status write of each object
    written: dict[tuple[str, str], tuple[str | None, Mapping[str, Any]]] = field(
        default_factory=dict
    )
    model_problem: str | None = None  # why the model checkpoint is not in use, if it is not

    @property
    def config(self) -> PlannerConfig:
        return PlannerConfig(
            tick_s=float(self.settings.tick_seconds),
            slo_window_s=float(self.settings.measurement.window_s),  # latency readings' window
        )

    def latest(self, *kinds: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], ...]:
        """The bodies of each kind, each replaced by what this process's last status write
        returned while the index still has the version from before that write: a watch event
        that is late, or was lost with a broken watch, must not make the next tick decide and
        report again."""
        keys = {_written_key(b) for bodies in kinds for b in bodies}
        self.written = {k: v for k, v in self.written.items() if k in keys}  # deleted objects

        def fresh(body: Mapping[str, Any]) -> Mapping[str, Any]:
            before, after = self.written.get(_written_key(body), (None, None))
            stale = body["metadata"].get("resourceVersion") == before
            return after if stale and after is not None else body

        return tuple([fresh(b) for b in bodies] for bodies in kinds)

    def pool_specs(self) -> list[PoolSpec]:
        return pool_specs(self.settings.pools)


@dataclass
class TickReport:
    """What one tick did, for logs, tests and the benchmark."""

    plan: ClusterPlan | None = None
    invalid: dict[str, list[str]] = field(default_factory=dict)
    resized: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (from, to)
    created: list[str] = field(default_factory=list)  # owned workloads created or re-applied
    status_writes: int = 0
    events: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


@dataclass
class _Service:
    body: Mapping[str, Any]
    model: InferenceService
    spec: ServiceSpec
    target: TargetRef
    state: ScaleState | None  # None: an owned Deployment not created yet
    owned: bool


@dataclass
class _Training:
    body: Mapping[str, Any]
    model: TrainingJob
    spec: TrainingSpec
    target: TargetRef
    workers: int  # current workers (0: an owned Job not created yet)
    job: Mapping[str, Any] | None  # the owned Job, when there is one
    owned: bool


# -- the tick ------------------------------------------------------------------------------------


def run_tick(
    op: Operator,
    service_bodies: Sequence[Mapping[str, Any]],
    training_bodies: Sequence[Mapping[str, Any]],
    now: float,
) -> TickReport:
    """Plan and act for the whole cluster at `now` (unix seconds)."""
    report = TickReport()
    pools = op.pool_specs()
    with report.stage("observe"):
        service_bodies, training_bodies = op.latest(service_bodies, training_bodies)
        services = _observe_services(op, service_bodies, pools, now, report)
        trainings = _observe_trainings(op, training_bodies, pools, now, report)
    observations = _measure_and_forecast(op, services, trainings, pools, now, report)
    try:
        with report.stage("plan"):
            plan = plan_cluster(
                [(s.spec, observations[s.spec.name]) for s in services],
                [(t.spec, _training_observation(t)) for t in trainings],
                pools,
                {s.spec.name: op.memories.get(s.spec.name) or restored(s.body) for s in services},
                now,
                op.settings.gpu_budget,
                op.config,
            )
    except ValueError as exc:  # inconsistent input: act on nothing, say why
        op.telemetry.errors.labels("plan").inc()
        report.errors.append(f"plan: {exc}")
        log.error("planning failed, nothing changed: %s", exc)
        return report
    report.plan = plan
    decisions = {d.name: d for d in plan.services}
    with report.stage("act"):
        for s in services:
            d = decisions[s.spec.name]
            _act_on_service(op, s, d, observations[s.spec.name], now, report)
        for t, decision in zip(trainings, _training_decisions(plan, trainings), strict=True):
            _act_on_training(op, t, decision, now, report)
        _act_on_pools(op, plan.pools, report)
    op.last_tick = now
    return report


# -- observe -------------------------------------------------------------------------------------


def _observe_services(
    op: Operator,
    bodies: Sequence[Mapping[str, Any]],
    pools: Sequence[PoolSpec],
    now: float,
    report: TickReport,
) -> list[_Service]:
    valid: list[tuple[Mapping[str, Any], InferenceService]] = []
    for body in bodies:
        parsed = parse_service(body, pools)
        if isinstance(parsed, list):
            mark_invalid(op, body, parsed, now, SpecReason.INVALID_SPEC, report)
            continue
        valid.append((body, parsed))

    targets = [(b["metadata"]["namespace"], service_target(m)) for b, m in valid]
    states = op.kube.read_scales(targets)
    services: list[_Service] = []
    for (body, model), (namespace, target) in zip(valid, targets, strict=True):
        read = states[(namespace, target)]
        owned = model.spec.template is not None
        state: ScaleState | None = None  # an owned Deployment not created yet: created when acting
        if isinstance(read, KubeError):
            if not (owned and isinstance(read, NotFound)):
                _observation_failed(op, body, target, read, now, report)
                continue
        else:
            state = read
        services.append(
            _Service(body, model, service_spec(key_of(body), model), target, state, owned)
        )
    return services


def _observe_trainings(
    op: Operator,
    bodies: Sequence[Mapping[str, Any]],
    pools: Sequence[PoolSpec],
    now: float,
    report: TickReport,
) -> list[_Training]:
    listed: Listings = {}
    trainings: list[_Training] = []
    for body in bodies:
        parsed = parse_training(body, pools)
        if isinstance(parsed, list):
            mark_invalid(op, body, parsed, now, SpecReason.INVALID_SPEC, report)
            continue
        namespace = body["metadata"]["namespace"]
        target = training_target(parsed)
        owned = parsed.spec.template is not None
        try:
            if owned:
                job = op.kube.list_by_name(listed, "batch/v1", "Job", namespace).get(target.name)
                workers = int((job or {}).get("spec", {}).get("parallelism") or 0)
            else:
                job = None
                workers = op.kube.read_scale(namespace, target).replicas
        except KubeError as exc:
            _observation_failed(op, body, target, exc, now, report)
            continue
        finished = _job_finished(job)
        if finished:
            _write_status(op, body, {"phase": finished, "workers": 0}, report)
            continue  # a finished job holds no GPUs and is not planned
        trainings.append(
            _Training(
                body, parsed, training_spec(key_of(body), parsed), target, workers, job, owned
            )
        )
    return trainings


def _job_finished(job: Mapping[str, Any] | None) -> str | None:
    for cond in (job or {}).get("status", {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "Succeeded" if cond["type"] == "Complete" else "Failed"
    return None


def _observation_failed(
    op: Operator,
    body: Mapping[str, Any],
    target: TargetRef,
    exc: KubeError,
    now: float,
    report: TickReport,
) -> None:
    """Without the current size nothing can be decided safely: the object is skipped this tick,
    and its Degraded condition (and a Warning event, when that is new) says why."""
    op.telemetry.errors.labels("kube").inc()
    if isinstance(exc, NotFound):
        reason = OperatorReason.NOT_FOUND
        message = f"{target.kind} {target.name} does not exist: create it, or fix the spec's target"
    else:
        reason, message = OperatorReason.UNREADABLE, f"reading {target.kind} {target.name}: {exc}"
    report.errors.append(f"{key_of(body)}: {message}")
    log.warning("%s: not planned this tick: %s", key_of(body), message)
    op.left.pop(key_of(body), None)  # what it comes back with is no change by someone else
    previous = read_conditions(body.get("status"))
    _report_condition(
        op, body, operator_condition(previous, "Degraded", reason, message, now), now, report
    )


# -- measure and forecast ------------------------------------------------------------------------


def _measure_and_forecast(
    op: Operator,
    services: Sequence[_Service],
    trainings: Sequence[_Training],
    pools: Sequence[PoolSpec],
    now: float,
    report: TickReport,
) -> dict[str, ServiceObservation]:
    """One batched metrics round and one batched forecast for all services."""
    queries = [_service_query(s) for s in services]
    jobs = [
        JobQuery(
            t.body["metadata"]["namespace"],
            t.body["metadata"]["name"],
            t.model.spec.throughput.query,
        )
        for t in trainings
        if t.model.spec.throughput.query
    ]
    with report.stage("measure"):
        measured = op.metrics.measure(queries, jobs, now)
        free = _free_gpus(op, pools, report)
    histories: list[History] = []
    with_history: list[str] = []
    for s, q in zip(services, queries, strict=True):
        history = measured.services[q.key].demand_history
        if isinstance(history, History):
            histories.append(history)
            with_history.append(s.spec.name)
    forecasts: dict[str, tuple[Forecast, float]] = {}
    if histories:
        step_s = histories[0].step_s
        horizon = _horizon_steps(services, pools, op.config.tick_s, step_s)
        try:
            with report.stage("forecast"):
                results = forecast_in_batches(
                    op.forecaster, [h.values for h in histories], step_s, horizon
                )
            for name, history, fc in zip(with_history, histories, results, strict=True):
                forecasts[name] = (fc, history.end)
        except (ValueError, ArithmeticError) as exc:  # the planner then holds: ForecastMissing
            op.telemetry.errors.labels("forecast").inc()
            report.errors.append(f"forecast: {exc}")

    observations: dict[str, ServiceObservation] = {}
    for s, q in zip(services, queries, strict=True):
        demand = measured.services[q.key].demand
        forecast = forecasts.get(s.spec.name)
        observed = ServiceObservation(
            current_replicas=s.state.replicas if s.state else 0,
            demand=None,
            forecast=forecast[0] if forecast else None,
            forecast_origin=forecast[1] if forecast else None,
            ready_replicas=s.state.ready_replicas if s.state else 0,
            free_gpus=free.get(s.spec.pool) if s.spec.pool else None,
            slo_met=slo_met(
                measured.services[q.key].latency,
                measured.services[q.key].queue,
                s.model.spec.slo.latency.target_seconds,
            ),
        )
        if isinstance(demand, MetricError):
            op.telemetry.errors.labels("metrics").inc()
            observed = replace(observed, demand_error=f"{demand.reason}: {demand}")
        else:
            observed = replace(observed, demand=demand.value, demand_time=demand.time)
            op.telemetry.observed.labels(*s.spec.name.split("/")).set(demand.value)
        observations[s.spec.name] = observed
    return observations


def restored(body: Mapping[str, Any]) -> ScaleMemory:
    """The memory a service starts with when this process has none for it (a new leader, a
    restart): the SLO margin its status recorded, if that is a usable one. Stabilisation windows
    and rate-limit periods start empty, which can only delay a scale-down by one window."""
    recorded = (body.get("status") or {}).get("sloMargin")
    if not isinstance(recorded, int | float) or not MIN_MARGIN <= recorded <= MAX_MARGIN:
        return ScaleMemory()
    return ScaleMemory(margin=SloMargin(factor=float(recorded)))


def slo_met(latency: Reading | None, queue: Reading | None, target_s: float) -> bool | None:
    """Whether the latency at the SLO quantile was within its target, as the planner's SLO margin
    learns from it. None when it was not measured (no metric, an error, or NaN: no request
    finished in the window), and when it missed while no request waited in the window: a slow
    engine or a target it cannot reach, which more replicas would not fix (the margin would
    otherwise climb to its cap). Without a queue reading a miss counts."""
    if latency is None or isinstance(latency, MetricError) or not math.isfinite(latency.value):
        return None
    if latency.value <= target_s:
        return True
    idle = isinstance(queue, Sample) and math.isfinite(queue.value) and queue.value <= 0
    return None if idle else False


def forecast_in_batches(
    forecaster: Forecaster,
    histories: Sequence[npt.NDArray[np.float64]],
    step_s: float,
    horizon: int,
    batch: int = FORECAST_BATCH,
) -> list[Forecast]:
    """One forecast per history, in order, asking the forecaster for `batch` series at a time."""
    results: list[Forecast] = []
    for first in range(0, len(histories), batch):
        results += forecaster.forecast(histories[first : first + batch], step_s, horizon, QUANTILES)
    return results


def _service_query(s: _Service) -> ServiceQuery:
    return service_query(s.body, s.model, s.target.name)


def _horizon_steps(
    services: Sequence[_Service], pools: Sequence[PoolSpec], tick_s: float, step_s: float
) -> int:
    """Steps covering the longest lead time (cold start + node provisioning) + a tick + the
    scale-down window: the planner keeps replicas the forecast needs within all of it."""
    provisioning = max((p.provisioning_s for p in pools), default=0.0)
    ahead = max(
        (s.spec.cold_start_s + s.spec.scale_down.stabilization_window_s for s in services),
        default=0.0,
    )
    return max(1, math.ceil((ahead + provisioning + tick_s) / step_s) + 1)


def _free_gpus(op: Operator, pools: Sequence[PoolSpec], report: TickReport) -> dict[str, int]:
    if not pools:
        return {}
    selectors = {p.name: p.node_selector for p in op.settings.pools}
    try:
        return {name: g.free for name, g in op.kube.gpu_pools(selectors).items()}
    except KubeError as exc:
        # Unknown free GPUs: the planner then assumes no node wait (the shorter lead time).
        op.telemetry.errors.labels("kube").inc()
        report.errors.append(f"free GPUs: {exc}")
        return {}


def _training_observation(t: _Training) -> TrainingObservation:
    history = (t.body.get("status") or {}).get("resizeHistory") or []
    last = history[-1].get("time") if history else None
    return TrainingObservation(
        current_workers=t.workers,
        last_resize_time=parse_timestamp(last) if last else None,
    )


def _training_decisions(
    plan: ClusterPlan, trainings: Sequence[_Training]
) -> list[TrainingDecision]:
    by_name = {d.name: d for d in plan.trainings}
    return [by_name[t.spec.name] for t in trainings]


# -- act and report ------------------------------------------------------------------------------


def _act_on_service(
    op: Operator,
    s: _Service,
    d: ServiceDecision,
    obs: ServiceObservation,
    now: float,
    report: TickReport,
) -> None:
    namespace, name = s.spec.name.split("/")
    status = s.body.get("status") or {}
    generation = s.body["metadata"].get("generation")
    current = obs.current_replicas
    replicas = current
    # Replicas someone else set are left alone for a while (no fight): see scaled_outside.
    outside = (
        scaled_outside(status, op.left.get(s.spec.name), current, now, s.state.managers)
        if d.apply and s.state is not None
        else None
    )
    apply = d.apply and outside is None
    try:
        if s.owned and (s.state is None or status.get("observedGeneration") != generation):
            # Create the owned Deployment, or re-apply it after a spec change.
            replicas = d.replicas if apply else max(current, s.spec.min_replicas)
            op.kube.apply(
                owned_deployment(
                    Owner.of(s.body),
                    s.model.spec.template or {},
                    replicas,
                    s.spec.gpus_per_replica,
                    s.model.spec.resources.gpu_resource_name,
                    _pool_selector(op, s.spec.pool),
                ),
                owner_uid=s.body["metadata"]["uid"],
            )
            report.created.append(s.spec.name)
        elif apply and d.replicas != current:
            op.kube.scale(namespace, s.target, d.replicas)
            replicas = d.replicas
        elif apply and s.state is not None and s.state.managed_by(FIELD_MANAGER) is False:
            # The count is right but someone else's: aiscaler claims it (same value, a shared
            # owner), so a manifest that later drops spec.replicas does not reset it.
            op.kube.scale(namespace, s.target, current)
    except (NotOwned, ValueError, KubeError) as exc:
        _act_failed(op, s.body, exc, now, report)
        return  # nothing changed: memory, status and events stay as they are; retried next tick
    op.left[s.spec.name] = replicas
    if replicas != current:
        report.resized[s.spec.name] = (current, replicas)
        op.telemetry.decisions.labels("InferenceService", namespace, name, d.reason.value).inc()
    op.memories[s.spec.name] = d.memory
    op.telemetry.desired.labels("InferenceService", namespace, name).set(d.replicas)
    op.telemetry.slo_margin.labels(namespace, name).set(d.memory.margin.factor)
    if d.forecast_value is not None:
        op.telemetry.forecast.labels(namespace, name).set(d.forecast_value)
        op.telemetry.lead_time.labels(namespace, name).set(d.lead_time_s)

    changed = status.get("desiredReplicas") != d.replicas
    last_decision = _last_decision(status, changed, now, d.replicas, d.reason.value, d.message)
    previous = read_conditions(status)
    conditions = [
        *service_conditions(d, obs.ready_replicas or 0, previous, now),
        invalid_condition(previous, [], now, SpecReason.SPEC_VALID),
    ]
    if op.model_problem and d.degraded is None:  # a data problem says more: it holds
        conditions = overriding(
            conditions,
            operator_condition(
                previous, "Degraded", OperatorReason.MODEL_UNAVAILABLE, op.model_problem, now
            ),
        )
    if outside is not None:
        conditions = overriding(
            conditions,
            operator_condition(
                previous, "ScalingLimited", OperatorReason.SCALED_OUTSIDE, outside[0], now
            ),
        )
    fc = obs.forecast
    wanted = {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": obs.ready_replicas or 0,
        "desiredReplicas": d.replicas,
        "mode": s.model.spec.policy.mode,
        "forecast": settled_forecast(status.get("forecast"), _forecast_status(s, d, fc)),
        "capacity": {"perReplica": s.spec.capacity_per_replica, "learned": False},
        "coldStart": {"seconds": s.spec.cold_start_s, "measured": False},
        # Rounded: the margin moves a little every tick, the status only when that adds up.
        "sloMargin": round(d.memory.margin.factor, 2),
        "lastDecision": last_decision,
        "conditions": write_conditions(status.get("conditions"), conditions, generation),
    }
    # The event goes with the recorded decision: when the status write fails, the next tick
    # records the decision again and posts the event then (once).
    written = _write_status(op, s.body, wanted, report)
    if written and outside is not None and outside[1] == now:  # newly seen
        _event(op, s.body, OperatorReason.SCALED_OUTSIDE, outside[0], now, report, warning=True)
    if written and changed:
        verb = "scaled" if apply else "recommends"
        _event(
            op,
            s.body,
            d.reason.value,
            f"{verb} {current} -> {d.replicas} replicas: {d.message}",
            now,
            warning=d.degraded is not None,
            report=report,
        )


def _act_on_training(
    op: Operator, t: _Training, d: TrainingDecision, now: float, report: TickReport
) -> None:
    namespace, name = t.spec.name.split("/")
    status = t.body.get("status") or {}
    generation = t.body["metadata"].get("generation")
    workers = t.workers
    try:
        if d.apply and d.workers != t.workers:
            if t.owned and t.job is None:
                if d.workers > 0:  # a Job of zero completions would complete at once
                    owner = Owner.of(t.body)
                    spec = t.model.spec
                    op.kube.apply(rendezvous_service(owner), owner_uid=owner.uid)
                    op.kube.apply(
                        owned_training_job(
                            owner,
                            spec.template or {},
                            d.workers,
                            spec.workers.min,
                            spec.workers.max,
                            spec.resources.gpus_per_worker,
                            spec.resources.gpu_resource_name,
                            _pool_selector(op, t.spec.pool),
                        ),
                        owner_uid=owner.uid,
                    )
                    report.created.append(t.spec.name)
                    workers = d.workers
            elif t.owned:
                op.kube.patch(
                    "batch/v1", "Job", namespace, t.target.name, training_job_resize(d.workers)
                )
                workers = d.workers
            else:
                op.kube.scale(namespace, t.target, d.workers)
                workers = d.workers
    except (NotOwned, ValueError, KubeError) as exc:
        _act_failed(op, t.body, exc, now, report)
        return

    history = list(status.get("resizeHistory") or [])
    if workers != t.workers:
        report.resized[t.spec.name] = (t.workers, workers)
        history = [
            *history,
            {"time": timestamp(now), "from": t.workers, "to": workers, "reason": d.reason.value},
        ][-RESIZE_HISTORY:]
        op.telemetry.decisions.labels("TrainingJob", namespace, name, d.reason.value).inc()
    op.telemetry.desired.labels("TrainingJob", namespace, name).set(d.workers)
    changed = status.get("desiredWorkers") != d.workers
    last_decision = _last_decision(status, changed, now, d.workers, d.reason.value, d.message)
    previous = read_conditions(status)
    conditions = [
        *training_conditions(d, previous, now),
        invalid_condition(previous, [], now, SpecReason.SPEC_VALID),
    ]
    elapsed_h = 0.0 if op.last_tick is None else max(0.0, now - op.last_tick) / 3600
    gpu_hours = float(status.get("gpuHours") or 0.0) + (
        t.workers * t.spec.gpus_per_worker * elapsed_h
    )
    wanted = {
        "observedGeneration": generation,
        "phase": _training_phase(t, workers, d.workers),
        "workers": workers,
        "desiredWorkers": d.workers,
        "gpuHours": round(gpu_hours, 3),
        "resizeHistory": history,
        "lastDecision": last_decision,
        "conditions": write_conditions(status.get("conditions"), conditions, generation),
    }
    if _write_status(op, t.body, wanted, report) and changed:  # as for services
        verb = "resized" if d.apply else "recommends"
        _event(
            op,
            t.body,
            d.reason.value,
            f"{verb} {t.workers} -> {d.workers} workers: {d.message}",
            now,
            report=report,
        )


def _last_decision(
    status: Mapping[str, Any], changed: bool, now: float, size: int, reason: str, message: str
) -> Any:
    """The status's lastDecision: kept until the desired size changes (or there is none)."""
    kept = status.get("lastDecision")
    if kept is not None and not changed:
        return kept
    return {"time": timestamp(now), "replicas": size, "reason": reason, "message": message[:1024]}


def _act_failed(
    op: Operator, body: Mapping[str, Any], exc: Exception, now: float, report: TickReport
) -> None:
    """An object the operator may not take over, or a template it cannot use, makes the spec
    Invalid; an API error is counted and logged, and the next tick tries again."""
    if isinstance(exc, NotOwned):
        mark_invalid(op, body, [f"spec.template: {exc.message}"], now, SpecReason.NOT_OWNED, report)
    elif isinstance(exc, ValueError):  # the manifest builders' complaints about the template
        mark_invalid(op, body, [str(exc)], now, SpecReason.INVALID_SPEC, report)
    else:
        op.telemetry.errors.labels("act").inc()
        report.errors.append(f"{key_of(body)}: {exc}")
        log.warning("%s: not resized: %s", key_of(body), exc)


def _training_phase(t: _Training, workers: int, desired: int) -> str:
    if workers == 0:
        return "Pending"
    if workers != desired:
        return "Resizing"
    active = int(((t.job or {}).get("status") or {}).get("active") or 0)
    if t.owned and active < workers:
        return "Resizing" if active else "Pending"
    return "Running"


def _act_on_pools(op: Operator, plans: Sequence[PoolPlan], report: TickReport) -> None:
    """Balloon Deployments: one per pool, sized to the headroom the node plan asks for."""
    if not plans:
        return
    try:
        existing = {
            d["metadata"]["name"]: int(d["spec"].get("replicas", 0))
            for d in op.kube.list(
                "apps/v1", "Deployment", op.namespace, label_selector="aiscaler.dev/balloon-pool"
            )
        }
        owner: dict[str, Any] | None = None
        for plan in plans:
            name = balloon_deployment_name(plan.name)
            if existing.get(name, 0) == plan.balloon_pods:
                continue
            owner = owner or _balloon_owner(op)
            op.kube.apply(
                balloon_deployment(
                    op.namespace,
                    plan.name,
                    plan.balloon_pods,
                    max(1, plan.balloon_gpus),
                    _pool_selector(op, plan.name),
                    op.settings.balloon_priority_class,
                    owner=owner or None,
                )
            )
            report.resized[f"{op.namespace}/{name}"] = (existing.get(name, 0), plan.balloon_pods)
    except KubeError as exc:
        op.telemetry.errors.labels("act").inc()
        report.errors.append(f"balloons: {exc}")


def _balloon_owner(op: Operator) -> dict[str, Any]:
    """An owner reference to the balloons' PriorityClass (the chart's): uninstalling it lets
    the garbage collector take the balloon Deployments too. {} when it does not exist."""
    try:
        priority_class = op.kube.get(
            "scheduling.k8s.io/v1", "PriorityClass", None, op.settings.balloon_priority_class
        )
    except NotFound:
        return {}
    meta = priority_class["metadata"]
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "name": meta["name"],
        "uid": meta["uid"],
    }


def _pool_selector(op: Operator, pool: str | None) -> dict[str, str]:
    for p in op.settings.pools:
        if p.name == pool:
            return dict(p.node_selector)
    return {}


def _forecast_status(s: _Service, d: ServiceDecision, fc: Forecast | None) -> dict[str, Any] | None:
    if d.forecast_value is None or d.forecast_p50 is None or fc is None:
        return None
    return {
        "leadTimeSeconds": d.lead_time_s,
        "quantile": s.spec.attainment,
        "value": float(f"{d.forecast_value:.4g}"),
        "p50": float(f"{d.forecast_p50:.4g}"),
        "source": fc.source,
    }


def mark_invalid(
    op: Operator,
    body: Mapping[str, Any],
    problems: Sequence[str],
    now: float,
    reason: SpecReason,
    report: TickReport,
) -> None:
    """Invalid condition and a Warning event (only when something changed); nothing else."""
    report.invalid[key_of(body)] = list(problems)
    cond = invalid_condition(read_conditions(body.get("status")), problems, now, reason)
    _report_condition(op, body, cond, now, report)


def _report_condition(
    op: Operator, body: Mapping[str, Any], cond: Condition, now: float, report: TickReport
) -> None:
    """Write one condition (with observedGeneration) and, when that changed the status, a
    Warning event with its reason and message."""
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    wanted = {
        "observedGeneration": generation,
        "conditions": write_conditions(status.get("conditions"), [cond], generation),
    }
    if _write_status(op, body, wanted, report):
        _event(op, body, cond.reason, cond.message, now, warning=True, report=report)


def _write_status(
    op: Operator, body: Mapping[str, Any], wanted: Mapping[str, Any], report: TickReport
) -> bool:
    """Patch the status fields that changed; True when something was written."""
    patch = status_patch(body.get("status"), wanted)
    if not patch:
        return False
    meta = body["metadata"]
    try:
        after = op.kube.patch(
            body["apiVersion"],
            body["kind"],
            meta["namespace"],
            meta["name"],
            {"status": patch},
            subresource="status",
        )
    except KubeError as exc:
        op.telemetry.errors.labels("status").inc()
        report.errors.append(f"{key_of(body)}: status: {exc}")
        return False
    report.status_writes += 1
    if isinstance(after, Mapping):  # see Operator.latest; managedFields are the bulk of it
        kept = {k: after[k] for k in ("apiVersion", "kind", "spec", "status") if k in after}
        kept["metadata"] = {
            k: v for k, v in (after.get("metadata") or {}).items() if k != "managedFields"
        }
        op.written[_written_key(body)] = (meta.get("resourceVersion"), kept)
    return True


def _written_key(body: Mapping[str, Any]) -> tuple[str, str]:
    return (body["kind"], key_of(body))


def _event(
    op: Operator,
    body: Mapping[str, Any],
    reason: str,
    message: str,
    now: float,
    report: TickReport,
    warning: bool = False,
) -> None:
    log.info("%s %s: %s", key_of(body), reason, message)
    try:
        op.kube.event(body, reason, message, now, warning=warning)
        report.events += 1
    except KubeError as exc:
        op.telemetry.errors.labels("event").inc()
        report.errors.append(f"{key_of(body)}: event: {exc}")
