"""Tick step 1, observe: parse the custom resources from the kopf indices and read the current
size of each one's target. An invalid spec is marked Invalid and left out; an object whose size
cannot be read is skipped this tick."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiscaler.api.inference import InferenceService
from aiscaler.core.types import PoolSpec, TrainingObservation
from aiscaler.handlers.act import mark_invalid, report_condition, write_status
from aiscaler.handlers.mapping import (
    key_of,
    parse_service,
    parse_training,
    service_spec,
    service_target,
    training_spec,
    training_target,
)
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
    operator_condition,
    parse_timestamp,
    read_conditions,
)
from aiscaler.kube.client import KubeError, Listings, NotFound, ScaleState, TargetRef

log = logging.getLogger("aiscaler")


def observe_services(
    op: Operator,
    bodies: Sequence[Mapping[str, Any]],
    pools: Sequence[PoolSpec],
    now: float,
    report: TickReport,
) -> list[ObservedService]:
    valid: list[tuple[Mapping[str, Any], InferenceService]] = []
    for body in bodies:
        parsed = parse_once(op, body, pools, parse_service)
        if isinstance(parsed, list):
            mark_invalid(op, body, parsed, now, SpecReason.INVALID_SPEC, report)
            continue
        valid.append((body, parsed))

    targets = [(b["metadata"]["namespace"], service_target(m)) for b, m in valid]
    states = op.kube.read_scales(targets, op.kube_pool)
    services: list[ObservedService] = []
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
            ObservedService(body, model, service_spec(key_of(body), model), target, state, owned)
        )
    return services


Parsed = TypeVar("Parsed")


def parse_once(
    op: Operator,
    body: Mapping[str, Any],
    pools: Sequence[PoolSpec],
    parse: Callable[[Mapping[str, Any], Sequence[PoolSpec]], Parsed],
) -> Parsed:
    """`parse(body, pools)`, or what it gave at an earlier tick for the same resourceVersion
    with the same pools: the API server gives every change of an object a new resourceVersion,
    and validating 1,000 unchanged resources every tick cost ~0.1 s. An object without one (not
    from the API server) is parsed every time."""
    key = written_key(body)
    version, pool_key = body["metadata"].get("resourceVersion"), tuple(pools)
    known = op.parsed.get(key)
    if version is not None and known is not None and known[:2] == (version, pool_key):
        result: Parsed = known[2]
        return result
    result = parse(body, pools)
    if version is not None:
        op.parsed[key] = (version, pool_key, result)
    return result


def observe_trainings(
    op: Operator,
    bodies: Sequence[Mapping[str, Any]],
    pools: Sequence[PoolSpec],
    now: float,
    report: TickReport,
) -> list[ObservedTraining]:
    listed: Listings = {}
    trainings: list[ObservedTraining] = []
    for body in bodies:
        parsed = parse_once(op, body, pools, parse_training)
        if isinstance(parsed, list):
            mark_invalid(op, body, parsed, now, SpecReason.INVALID_SPEC, report)
            continue
        namespace = body["metadata"]["namespace"]
        target = training_target(parsed)
        owned = parsed.spec.template is not None
        try:
            if owned:
                job = op.kube.list_by_name(listed, "batch/v1", "Job", namespace).get(target.name)
                job_spec = (job or {}).get("spec", {})
                workers = 0 if job_spec.get("suspend") else int(job_spec.get("parallelism") or 0)
            else:
                job = None
                workers = op.kube.read_scale(namespace, target).replicas
        except KubeError as exc:
            _observation_failed(op, body, target, exc, now, report)
            continue
        finished = _job_finished(job)
        if finished:
            write_status(op, body, {"phase": finished, "workers": 0}, report)
            continue  # a finished job holds no GPUs and is not planned
        trainings.append(
            ObservedTraining(
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
    report_condition(
        op, body, operator_condition(previous, "Degraded", reason, message, now), now, report
    )


def training_observation(t: ObservedTraining) -> TrainingObservation:
    history = (t.body.get("status") or {}).get("resizeHistory") or []
    last = history[-1].get("time") if history else None
    return TrainingObservation(
        current_workers=t.workers,
        last_resize_time=parse_timestamp(last) if last else None,
    )
