"""`aiscaler run` as a process (kopf, the planning loop, probes, /metrics, the leader Lease)
against a real kube-apiserver and a real Prometheus, authenticated as a service account with
exactly the RBAC of deploy/aiscaler.yaml (the chart rendered with its defaults). Two replicas:
only the Lease holder acts, and the other takes over when the first one stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.objects import API_VERSION, deployment, service
from harness.operator import Replica, operator_kubeconfig, wait_for
from harness.prometheus import Series

from aiscaler.kube.client import KubeApi, NotFound

TICK_S = 2


def requests_history(namespace: str, rate: float) -> Series:
    end = time.time() - 5
    times = [end - 6 * 3600 + 30 * i for i in range(6 * 120 + 1)]
    return Series(
        "vllm:request_success_total",
        {"namespace": namespace, "service": "llm"},
        [(t, rate * (t - times[0])) for t in times],
    )


def inference_service(name: str) -> dict[str, Any]:
    """Scales Deployment `name` on the vLLM metrics of service "llm" (10 requests/s)."""
    return service(name, demand={"preset": "vllm", "selector": {"matchLabels": {"service": "llm"}}})


@pytest.fixture
def kubeconfig(kube_api, namespace, tmp_path) -> Path:
    return operator_kubeconfig(kube_api, namespace, tmp_path / "operator.kubeconfig")


@pytest.fixture
def replicas(tmp_path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()
    for replica in started:  # shown when a test fails
        print(f"--- log of {replica.name}:\n{replica.log()[-4000:]}")


def test_two_replicas_one_acts_and_the_other_takes_over(
    kube_api, namespace, prometheus_factory, kubeconfig, replicas, tmp_path
):
    admin = KubeApi(kube_api.new_api_client())
    prometheus = prometheus_factory(history=[requests_history(namespace, 10.0)])
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(inference_service("llm"), namespace)

    env = {"AISCALER_PROMETHEUS_URL": prometheus.url, "AISCALER_TICK_SECONDS": str(TICK_S)}
    first = Replica("first", kubeconfig, namespace, tmp_path / "a.log", env)
    replicas.append(first)
    wait_for("the first replica to lead", lambda: first.metric("aiscaler_leader") == 1)
    second = Replica("second", kubeconfig, namespace, tmp_path / "b.log", env)
    replicas.append(second)

    # The leader scales the Deployment from the metric history (10/s at 3 per replica).
    wait_for(
        "the scale-up",
        lambda: admin.get("apps/v1", "Deployment", namespace, "llm")["spec"]["replicas"] >= 4,
    )
    lease = admin.get("coordination.k8s.io/v1", "Lease", namespace, "aiscaler-leader")
    assert lease["spec"]["holderIdentity"] == "first"
    for replica in (first, second):
        assert wait_for("probes", lambda r=replica: r.get(r.health_port, "/readyz"))
        assert replica.get(replica.health_port, "/readyz").status_code == 200
        assert replica.get(replica.health_port, "/healthz").status_code == 200
    assert first.metric("aiscaler_tick_duration_seconds_count") >= 1
    wait_for("the second replica to run its loop", lambda: second.metric("aiscaler_leader") == 0)
    assert second.metric("aiscaler_tick_duration_seconds_count") == 0  # it never ticked

    # An invalid spec (unknown GPU pool) gets the Invalid condition and a Warning event.
    kube_api.create(
        {
            "apiVersion": API_VERSION,
            "kind": "InferenceService",
            "metadata": {"name": "bad"},
            "spec": {
                "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                "replicas": {"min": 1, "max": 2},
                "resources": {"pool": "nowhere"},
                "capacity": {"perReplica": 1},
            },
        },
        namespace,
    )

    def invalid() -> bool:
        status = admin.get(API_VERSION, "InferenceService", namespace, "bad").get("status") or {}
        return any(
            c["type"] == "Invalid" and c["status"] == "True" for c in status.get("conditions", [])
        )

    def warning_reasons() -> set[str]:
        return {
            e["reason"]
            for e in admin.list("v1", "Event", namespace)
            if e["involvedObject"]["name"] == "bad" and e["type"] == "Warning"
        }

    wait_for("the Invalid condition", invalid)
    # kopf posts events from a queue of its own: the event may follow the status write.
    wait_for("the InvalidSpec Warning event", lambda: "InvalidSpec" in warning_reasons())
    with pytest.raises(NotFound):
        admin.get("apps/v1", "Deployment", namespace, "bad")  # no action on an invalid spec

    # The leader stops: the second replica takes the Lease over and acts.
    first.stop()
    wait_for("the take-over", lambda: second.metric("aiscaler_leader") == 1, timeout=30)
    kube_api.apply(deployment("llm2", 1), namespace)  # so that the new leader has work to do
    kube_api.create(inference_service("llm2"), namespace)
    wait_for(
        "the new leader to scale",
        lambda: admin.get("apps/v1", "Deployment", namespace, "llm2")["spec"]["replicas"] >= 4,
    )
    lease = admin.get("coordination.k8s.io/v1", "Lease", namespace, "aiscaler-leader")
    assert lease["spec"]["holderIdentity"] == "second"
