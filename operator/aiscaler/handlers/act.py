"""Tick step 4, act and report: patch scales and owned workloads where the plan changes them,
balloon Deployments per pool, status (only on change), events and the operator's metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiscaler.core.conditions import service_conditions, training_conditions
from aiscaler.core.types import (
    Condition,
    Forecast,
    PoolPlan,
    ServiceDecision,
    ServiceObservation,
    TrainingDecision,
)
from aiscaler.handlers.mapping import key_of
from aiscaler.handlers.state import (
    ObservedService,
    ObservedTraining,
    Operator,
    TickReport,
    written_key,
)
from aiscaler.handlers.status import (
    OperatorReason,
    SpecReason,
    invalid_condition,
    operator_condition,
    overriding,
    read_conditions,
    scaled_outside,
    settled_forecast,
    status_patch,
    timestamp,
    write_conditions,
)
from aiscaler.kube.client import KubeError, NotFound, NotOwned
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

log = logging.getLogger("aiscaler")

RESIZE_HISTORY = 10  # entries kept in a TrainingJob's status


def act_in_parallel(
    op: Operator, writes: Sequence[Callable[[TickReport], None]], report: TickReport
) -> None:
    """Run each object's writes (scale, status, event: `act_on_service`, `act_on_training`) as
    a task on the operator's `kube_pool`, each with a report of its own, added to `report` in
    order. Objects are independent: what one writes never depends on another's writes."""

    def run(write: Callable[[TickReport], None]) -> TickReport:
        own = TickReport()
        write(own)
        return own

    for own in op.kube_pool.map(run, writes):
        report.add(own)


def act_on_service(
    op: Operator,
    s: ObservedService,
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
        # Rounded: the margin and the floor's share move a little every tick, the status only
        # when that adds up.
        "plan": {"basis": d.basis.value, "floorAttainment": _rounded(d.floor_attainment, 3)},
        "sloMargin": round(d.memory.margin.factor, 2),
        "lastDecision": last_decision,
        "conditions": write_conditions(status.get("conditions"), conditions, generation),
    }
    # The event goes with the recorded decision: when the status write fails, the next tick
    # records the decision again and posts the event then (once).
    written = write_status(op, s.body, wanted, report)
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


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def act_on_training(
    op: Operator, t: ObservedTraining, d: TrainingDecision, now: float, report: TickReport
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
    if write_status(op, t.body, wanted, report) and changed:  # as for services
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


def _training_phase(t: ObservedTraining, workers: int, desired: int) -> str:
    if workers == 0:
        return "Pending"
    if workers != desired:
        return "Resizing"
    active = int(((t.job or {}).get("status") or {}).get("active") or 0)
    if t.owned and active < workers:
        return "Resizing" if active else "Pending"
    return "Running"


def act_on_pools(op: Operator, plans: Sequence[PoolPlan], report: TickReport) -> None:
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


def _forecast_status(
    s: ObservedService, d: ServiceDecision, fc: Forecast | None
) -> dict[str, Any] | None:
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
    report_condition(op, body, cond, now, report)


def report_condition(
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
    if write_status(op, body, wanted, report):
        _event(op, body, cond.reason, cond.message, now, warning=True, report=report)


def write_status(
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
    except NotFound:  # deleted since this tick observed it: nothing left to report on
        log.debug("%s: deleted before its status was written", key_of(body))
        return False
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
        op.written[written_key(body)] = (meta.get("resourceVersion"), kept)
    return True


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
