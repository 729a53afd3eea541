"""From custom-resource bodies to the core's planning types (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from aiscaler.api.base import field_errors
from aiscaler.api.inference import InferenceService, ScalingRules
from aiscaler.api.training import TrainingJob
from aiscaler.core.types import (
    Mode,
    PoolSpec,
    ServiceSpec,
    TrainingMode,
    TrainingSpec,
)
from aiscaler.core.types import ScalingRules as CoreScalingRules
from aiscaler.kube.client import TargetRef
from aiscaler.metrics.source import ServiceQuery
from aiscaler.settings import GpuPool


def key_of(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def parse_service(
    body: Mapping[str, Any], pools: Sequence[PoolSpec] | None
) -> InferenceService | list[str]:
    """The validated model, or one `field: problem` line per problem (the schema's rules, and a
    GPU pool this operator must know; `pools` None: the pools are not known, as to `aiscaler
    validate` without settings, and placement is not checked)."""
    try:
        model = InferenceService.model_validate(_without_status(body))
    except ValidationError as error:
        return field_errors(error)
    resources = model.spec.resources
    return _placement_problems(resources.pool, resources.gpus_per_replica, pools) or model


def parse_training(
    body: Mapping[str, Any], pools: Sequence[PoolSpec] | None
) -> TrainingJob | list[str]:
    try:
        model = TrainingJob.model_validate(_without_status(body))
    except ValidationError as error:
        return field_errors(error)
    resources = model.spec.resources
    return _placement_problems(resources.pool, resources.gpus_per_worker, pools) or model


def _placement_problems(pool: str | None, gpus: int, pools: Sequence[PoolSpec] | None) -> list[str]:
    """A pool the operator does not know, or a pod larger than the pool's nodes."""
    if pool is None or pools is None:
        return []
    by_name = {p.name: p for p in pools}
    if pool not in by_name:
        return [f"spec.resources.pool: unknown GPU pool {pool!r} (known: {sorted(by_name)})"]
    if gpus > by_name[pool].gpus_per_node:
        return [
            f"spec.resources: {gpus} GPUs per pod do not fit pool {pool}'s nodes of "
            f"{by_name[pool].gpus_per_node} GPUs"
        ]
    return []


def _without_status(body: Mapping[str, Any]) -> dict[str, Any]:
    # Only the spec is the user's to validate; the status is ours and may lag the schema.
    meta = body.get("metadata") or {}
    keep = {
        k: meta[k]
        for k in ("name", "namespace", "generation", "uid", "labels", "annotations")
        if k in meta
    }
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": keep,
        "spec": body.get("spec"),
    }


def pool_specs(pools: Sequence[GpuPool]) -> list[PoolSpec]:
    """The settings' GPU pools as the planner sees them."""
    return [
        PoolSpec(
            name=p.name,
            gpus_per_node=p.gpus_per_node,
            max_nodes=p.max_nodes,
            min_nodes=p.min_nodes,
            provisioning_s=float(p.provisioning_seconds),
            budget=p.budget,
        )
        for p in pools
    ]


def service_query(body: Mapping[str, Any], model: InferenceService, workload: str) -> ServiceQuery:
    """What the metrics layer reads for a service: its demand and latency objective, and the
    workload whose pods serve it."""
    meta, demand, latency = body["metadata"], model.spec.demand, model.spec.slo.latency
    return ServiceQuery(
        namespace=meta["namespace"],
        name=meta["name"],
        preset=demand.preset,
        unit=demand.unit,
        query=demand.query,
        selector=dict(demand.selector.match_labels) if demand.selector else {},
        latency_metric=latency.metric,
        latency_quantile=latency.quantile,
        workload=workload,
    )


def _rules(rules: ScalingRules) -> CoreScalingRules:
    return CoreScalingRules(
        stabilization_window_s=float(rules.stabilization_window_seconds),
        max_replicas=rules.max_replicas,
        max_percent=float(rules.max_percent),
        period_s=float(rules.period_seconds),
    )


def service_spec(key: str, service: InferenceService) -> ServiceSpec:
    spec = service.spec
    return ServiceSpec(
        name=key,
        max_replicas=spec.replicas.max,
        min_replicas=spec.replicas.min,
        gpus_per_replica=spec.resources.gpus_per_replica,
        pool=spec.resources.pool,
        capacity_per_replica=spec.capacity.per_replica,
        request_s=spec.capacity.request_seconds,
        cold_start_s=spec.cold_start.seconds,
        attainment=spec.slo.attainment,
        mode=Mode(spec.policy.mode),
        priority=spec.policy.priority,
        scale_up=_rules(spec.policy.scale_up),
        scale_down=_rules(spec.policy.scale_down),
    )


def training_spec(key: str, job: TrainingJob) -> TrainingSpec:
    spec = job.spec
    return TrainingSpec(
        name=key,
        max_workers=spec.workers.max,
        min_workers=spec.workers.min,
        allowed_sizes=tuple(sorted(spec.workers.allowed_sizes or ())),
        gpus_per_worker=spec.resources.gpus_per_worker,
        pool=spec.resources.pool,
        priority=spec.priority,
        cooldown_s=float(spec.resize.cooldown_seconds),
        mode=TrainingMode(spec.mode),
    )


def service_target(service: InferenceService) -> TargetRef:
    """What the service scales: its scaleTargetRef, or the Deployment it owns (same name)."""
    ref = service.spec.scale_target_ref
    if ref is not None:
        return TargetRef(ref.api_version, ref.kind, ref.name)
    return TargetRef("apps/v1", "Deployment", service.metadata.name or "")


def training_target(job: TrainingJob) -> TargetRef:
    """A scaleTargetRef, or the batch/v1 Job it owns (same name; resized by patch, not /scale)."""
    ref = job.spec.scale_target_ref
    if ref is not None:
        return TargetRef(ref.api_version, ref.kind, ref.name)
    return TargetRef("batch/v1", "Job", job.metadata.name or "")
