"""Free GPUs per pool, computed from raw Node and Pod objects (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiscaler.kube.manifests import BALLOON_LABEL


@dataclass(frozen=True)
class PoolGpus:
    nodes: int  # schedulable, Ready nodes of the pool
    allocatable: int  # GPUs the kubelets offer on them
    # Allocatable minus the requests of pods bound to them, plus the GPUs of the operator's
    # balloon pods still waiting for their node: those GPUs are on their way to the pool.
    free: int


def _quantity(value: Any) -> int:
    # GPUs are whole numbers; the API may still send them as strings ("8").
    return int(str(value))


def pod_gpu_request(pod: Mapping[str, Any], resource_name: str) -> int:
    """What the scheduler reserves: max(sum over containers, largest init container)."""
    spec = pod.get("spec") or {}

    def asked(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        # For extended resources the request equals the limit; either may be given.
        value = (resources.get("requests") or {}).get(resource_name)
        if value is None:
            value = (resources.get("limits") or {}).get(resource_name, 0)
        return _quantity(value)

    main = sum(asked(c) for c in spec.get("containers") or [])
    init = max((asked(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def _usable(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def gpus_per_pool(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    pools: Mapping[str, Mapping[str, str]],
    resource_name: str = "nvidia.com/gpu",
) -> dict[str, PoolGpus]:
    """GPU nodes, allocatable and free GPUs of each pool (pool name -> node selector).

    Pods that finished (Succeeded/Failed) hold nothing; other pods not bound to a node are not
    counted (they are demand, not usage). The operator's balloon pods count as free, since they
    only keep GPUs for the planner and any real pod preempts them; a balloon still pending counts
    too: the node it asked for is being provisioned, and a replica scaled a cold start ahead will
    find it. A node in several pools counts in each."""
    requested: dict[str, int] = {}
    coming: dict[str, int] = {}  # pool -> GPUs of its balloons waiting for a node
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            continue
        node_name = (pod.get("spec") or {}).get("nodeName")
        balloon_pool = ((pod.get("metadata") or {}).get("labels") or {}).get(BALLOON_LABEL)
        if balloon_pool is not None:
            if not node_name:
                gpus = pod_gpu_request(pod, resource_name)
                coming[balloon_pool] = coming.get(balloon_pool, 0) + gpus
        elif node_name:
            requested[node_name] = requested.get(node_name, 0) + pod_gpu_request(pod, resource_name)
    result: dict[str, PoolGpus] = {}
    for pool, selector in pools.items():
        count = allocatable = 0
        free = coming.get(pool, 0)
        for node in nodes:
            labels = (node.get("metadata") or {}).get("labels") or {}
            if not _usable(node) or not _matches(labels, selector):
                continue
            offered = _quantity(
                ((node.get("status") or {}).get("allocatable") or {}).get(resource_name, 0)
            )
            count += 1
            allocatable += offered
            free += max(0, offered - requested.get(node["metadata"]["name"], 0))
        result[pool] = PoolGpus(nodes=count, allocatable=allocatable, free=free)
    return result
