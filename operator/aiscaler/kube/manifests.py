"""Pure builders of the objects the operator owns: manifests as plain dicts, no I/O.

Everything built here is applied with server-side apply under the field manager `aiscaler`, so a
manifest lists exactly the fields the operator owns and nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELD_MANAGER = "aiscaler"
MANAGED_BY = {"app.kubernetes.io/managed-by": "aiscaler"}
SERVICE_LABEL = "aiscaler.dev/inferenceservice"
TRAINING_LABEL = "aiscaler.dev/trainingjob"
BALLOON_LABEL = "aiscaler.dev/balloon-pool"
RENDEZVOUS_PORT = 29400
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns what is built for it."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(body["apiVersion"], body["kind"], meta["name"], meta["namespace"], meta["uid"])

    def reference(self) -> dict[str, Any]:
        # controller=True marks it as *the* owner (what is_owned_by checks before touching it);
        # blockOwnerDeletion keeps the CR until the garbage collector has removed the children.
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def is_owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """True when `obj` names `owner_uid` as its controlling owner."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs)


@dataclass(frozen=True)
class FieldManager:
    """A field manager of an object (metadata.managedFields): its name and how it wrote,
    "Apply" (server-side apply of a manifest) or "Update" (a patch or update, e.g. kubectl
    scale, kubectl edit, another autoscaler, a client-side kubectl apply)."""

    name: str
    operation: str


def replica_managers(obj: Mapping[str, Any]) -> tuple[FieldManager, ...]:
    """The field managers that own the replica count of `obj`, the latest writer last: those
    whose managed fields hold spec.replicas, and any that wrote through the /scale subresource
    (for a kind whose /scale maps to another field)."""
    owners = []
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        through_scale = entry.get("subresource") == "scale" and bool(fields)
        if through_scale or "f:replicas" in (fields.get("f:spec") or {}):
            manager = FieldManager(entry.get("manager", ""), entry.get("operation", ""))
            owners.append((entry.get("time") or "", manager))
    return tuple(manager for _, manager in sorted(owners, key=lambda owner: owner[0]))


def _with_gpus(pod_spec: dict[str, Any], resource_name: str, gpus: int, where: str) -> None:
    """Give the pod `gpus` of `resource_name`: on the first container unless the template
    already asks for that resource, in which case it must ask for exactly `gpus`."""
    containers = pod_spec.get("containers") or []
    if not containers:
        raise ValueError(f"{where}: the pod template has no containers")
    asked = 0
    for container in containers:
        limits = (container.get("resources") or {}).get("limits") or {}
        if resource_name in limits:
            asked += int(limits[resource_name])
    if asked == 0:
        resources = containers[0].setdefault("resources", {})
        resources.setdefault("limits", {})[resource_name] = gpus
    elif asked != gpus:
        raise ValueError(
            f"{where}: the pod template's containers ask for {asked} {resource_name} "
            f"but the resources field says {gpus}"
        )


def _pod_template(
    template: Mapping[str, Any],
    labels: Mapping[str, str],
    resource_name: str,
    gpus: int,
    node_selector: Mapping[str, str],
    where: str,
) -> dict[str, Any]:
    pod = copy.deepcopy(dict(template))
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    spec = pod.setdefault("spec", {})
    _with_gpus(spec, resource_name, gpus, where)
    if node_selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **node_selector}
    return pod


def owned_deployment(
    owner: Owner,
    template: Mapping[str, Any],
    replicas: int,
    gpus_per_replica: int,
    gpu_resource_name: str = "nvidia.com/gpu",
    node_selector: Mapping[str, str] | None = None,
) -> Manifest:
    """The Deployment an InferenceService with a `template` owns, named like the service."""
    selector = {SERVICE_LABEL: owner.name}
    labels = {**MANAGED_BY, **selector}
    pod = _pod_template(
        template,
        labels,
        gpu_resource_name,
        gpus_per_replica,
        node_selector or {},
        f"InferenceService {owner.namespace}/{owner.name} spec.template",
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": pod},
    }


def rendezvous_service_name(owner: Owner) -> str:
    return f"{owner.name}-rdzv"


def torchrun_env(
    owner: Owner, min_workers: int, max_workers: int, gpus_per_worker: int
) -> dict[str, str]:
    """torchrun reads its options from PET_* variables: elastic `min:max` nodes and a c10d
    rendezvous hosted by worker 0 (an Indexed Job's pod 0 is `<job>-0.<service>`)."""
    return {
        "PET_NNODES": f"{min_workers}:{max_workers}",
        "PET_NPROC_PER_NODE": str(gpus_per_worker),
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": f"{owner.name}-0.{rendezvous_service_name(owner)}:{RENDEZVOUS_PORT}",
        "PET_RDZV_ID": owner.uid,
    }


def owned_training_job(
    owner: Owner,
    template: Mapping[str, Any],
    workers: int,
    min_workers: int,
    max_workers: int,
    gpus_per_worker: int,
    gpu_resource_name: str = "nvidia.com/gpu",
    node_selector: Mapping[str, str] | None = None,
) -> Manifest:
    """The batch/v1 Job a TrainingJob with a `template` owns, one pod per worker.

    An Indexed Job whose `parallelism` and `completions` are equal can be resized by patching
    both (elastic Indexed Jobs, Kubernetes >= 1.27); indexing also gives worker 0 a stable DNS
    name for the torchrun rendezvous. Environment variables the template sets win."""
    labels = {**MANAGED_BY, TRAINING_LABEL: owner.name}
    pod = _pod_template(
        template,
        labels,
        gpu_resource_name,
        gpus_per_worker,
        node_selector or {},
        f"TrainingJob {owner.namespace}/{owner.name} spec.template",
    )
    spec = pod["spec"]
    spec.setdefault("restartPolicy", "Never")  # a Job's pods may not use Always
    spec["subdomain"] = rendezvous_service_name(owner)
    env = torchrun_env(owner, min_workers, max_workers, gpus_per_worker)
    for container in spec["containers"]:
        present = {item.get("name") for item in container.get("env") or []}
        extra = [{"name": k, "value": v} for k, v in env.items() if k not in present]
        container["env"] = [*(container.get("env") or []), *extra]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": workers,
            "parallelism": workers,
            "template": pod,
        },
    }


def training_job_resize(workers: int) -> Manifest:
    """The patch that resizes an owned elastic Indexed Job. Zero workers suspends it instead: a
    Job of zero completions would complete and could not be resized again."""
    if workers == 0:
        return {"spec": {"suspend": True}}
    return {"spec": {"suspend": False, "parallelism": workers, "completions": workers}}


def rendezvous_service(owner: Owner) -> Manifest:
    """Headless Service giving the workers of a TrainingJob DNS names before they are ready."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": rendezvous_service_name(owner),
            "namespace": owner.namespace,
            "labels": {**MANAGED_BY, TRAINING_LABEL: owner.name},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {TRAINING_LABEL: owner.name},
            "ports": [{"name": "c10d", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }


def balloon_deployment_name(pool: str) -> str:
    return f"aiscaler-balloon-{pool}"


def balloon_deployment(
    namespace: str,
    pool: str,
    balloons: int,
    gpus_per_balloon: int,
    node_selector: Mapping[str, str],
    priority_class: str,
    gpu_resource_name: str = "nvidia.com/gpu",
    owner: Mapping[str, Any] | None = None,
) -> Manifest:
    """Pause pods holding GPUs at a low priority: they make the cluster autoscaler add nodes
    before they are needed, and any real pod preempts them. `owner` (an owner reference, the
    balloons' PriorityClass) takes them away when it goes, e.g. on `helm uninstall`."""
    labels = {**MANAGED_BY, BALLOON_LABEL: pool}
    metadata: dict[str, Any] = {
        "name": balloon_deployment_name(pool),
        "namespace": namespace,
        "labels": labels,
    }
    if owner:
        metadata["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": balloons,
            "selector": {"matchLabels": {BALLOON_LABEL: pool}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": priority_class,
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": dict(node_selector),
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE_IMAGE,
                            "resources": {"limits": {gpu_resource_name: gpus_per_balloon}},
                        }
                    ],
                },
            },
        },
    }
