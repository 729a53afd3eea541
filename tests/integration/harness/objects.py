"""The objects the operator tests build on: a vLLM counter's history, a Deployment, an
InferenceService, and reads of what the operator wrote (status, replicas, events)."""

from __future__ import annotations

import time
from typing import Any

from aiscaler.handlers.tick import Operator, TickReport, run_tick
from aiscaler.kube.client import KubeApi

from .prometheus import Series

API_VERSION = "aiscaler.dev/v1alpha1"
POD = {
    "metadata": {"labels": {"app": "llm"}},
    "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
}
STEP_S = 30
HISTORY_S = 6 * 3600


def vllm_requests(namespace: str, service: str, rate: float, end: float) -> Series:
    """`vllm:request_success_total` of one service growing at `rate`/s for six hours."""
    times = [end - HISTORY_S + i * STEP_S for i in range(HISTORY_S // STEP_S + 1)]
    return Series(
        "vllm:request_success_total",
        {"namespace": namespace, "service": service, "finished_reason": "stop"},
        [(t, rate * (t - times[0])) for t in times],
    )


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": POD,
        },
    }


def service(name: str, capacity: float = 3.0, **spec: Any) -> dict[str, Any]:
    """An InferenceService scaling Deployment `name` on its vLLM metrics (capacity per replica
    `capacity` requests/s, scale-down without a stabilisation window)."""
    body = {
        "replicas": {"min": 1, "max": 20},
        "demand": {"preset": "vllm", "selector": {"matchLabels": {"service": name}}},
        "capacity": {"perReplica": capacity},
        "coldStart": {"seconds": 60},
        "policy": {"scaleUp": {"maxReplicas": 20}, "scaleDown": {"stabilizationWindowSeconds": 0}},
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": body,
    }


def training_job(name: str, **spec: Any) -> dict[str, Any]:
    """A TrainingJob of elastic workers (1 to 8 by default, resized without a cooldown)."""
    body: dict[str, Any] = {
        "workers": {"min": 1, "max": 8},
        "resize": {"cooldownSeconds": 0},
        "template": {"spec": {"containers": [{"name": "w", "image": "trainer"}]}},
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": body,
    }


def status(admin: KubeApi, namespace: str, name: str, kind: str = "InferenceService") -> dict:
    return admin.get(API_VERSION, kind, namespace, name).get("status") or {}


def condition(admin: KubeApi, namespace: str, name: str, type_: str) -> dict:
    """The condition `type_` of an InferenceService ({} when it has none)."""
    found = [c for c in status(admin, namespace, name).get("conditions", []) if c["type"] == type_]
    return found[0] if found else {}


def replicas(admin: KubeApi, namespace: str, name: str) -> int:
    return int(admin.get("apps/v1", "Deployment", namespace, name)["spec"]["replicas"])


def scale_by_hand(
    admin: KubeApi, namespace: str, name: str, replicas: int, manager: str = "kubectl"
) -> None:
    """What `kubectl scale deployment/NAME --replicas=N` sends (an update of /scale by the
    field manager `kubectl`); another `manager` stands for another controller, e.g. the HPA's
    kube-controller-manager."""
    admin.request(
        "PATCH",
        admin.path("apps/v1", "Deployment", namespace, name) + "/scale",
        query={"fieldManager": manager},
        body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
    )


def events(admin: KubeApi, namespace: str, name: str) -> list[dict]:
    return [e for e in admin.list("v1", "Event", namespace) if e["involvedObject"]["name"] == name]


def tick(op: Operator, admin: KubeApi, namespace: str) -> TickReport:
    """One planning tick over the custom resources of `namespace` (what kopf's indices hold)."""
    services = admin.list(API_VERSION, "InferenceService", namespace)
    jobs = admin.list(API_VERSION, "TrainingJob", namespace)
    return run_tick(op, services, jobs, time.time())


def warnings(admin: KubeApi, namespace: str, name: str) -> list[str]:
    """The reasons of the Warning events about `name`."""
    return [e["reason"] for e in events(admin, namespace, name) if e["type"] == "Warning"]
