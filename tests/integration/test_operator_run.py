"""`aiscaler run` as a process (kopf, the planning loop, probes, /metrics, the leader Lease)
against a real kube-apiserver and a real Prometheus, authenticated as a service account with
exactly the RBAC of deploy/aiscaler.yaml (the chart rendered with its defaults). Two replicas:
only the Lease holder acts, and the other takes over when the first one stops."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from harness.prometheus import Series

from aiscaler.kube.client import KubeApi, NotFound, TargetRef

REPO = Path(__file__).resolve().parents[2]
API_VERSION = "aiscaler.dev/v1alpha1"
TICK_S = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def requests_history(namespace: str, rate: float) -> Series:
    end = time.time() - 5
    times = [end - 6 * 3600 + 30 * i for i in range(6 * 120 + 1)]
    return Series(
        "vllm:request_success_total",
        {"namespace": namespace, "service": "llm"},
        [(t, rate * (t - times[0])) for t in times],
    )


class Replica:
    def __init__(
        self, name: str, kubeconfig: Path, namespace: str, prometheus_url: str, log: Path
    ) -> None:
        self.name = name
        self.metrics_port, self.health_port = free_port(), free_port()
        env = {
            **os.environ,
            "POD_NAME": name,
            "AISCALER_PROMETHEUS_URL": prometheus_url,
            "AISCALER_TICK_SECONDS": str(TICK_S),
            "AISCALER_METRICS_PORT": str(self.metrics_port),
            "AISCALER_HEALTH_PORT": str(self.health_port),
        }
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiscaler.cli",
                "run",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                namespace,
                "--operator-namespace",
                namespace,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, port: int, path: str) -> requests.Response | None:
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2)
        except requests.ConnectionError:
            return None

    def metric(self, name: str) -> float | None:
        response = self.get(self.metrics_port, "/metrics")
        if response is None:
            return None
        for line in response.text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def operator_kubeconfig(kube_api, namespace) -> Path:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "aiscaler.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "ClusterRole":
            kube_api.apply(doc)
            role = doc["metadata"]["name"]
    kubeconfig = kube_api.service_account_kubeconfig(namespace, "aiscaler", role)
    for doc in docs:  # the leader-election Role, in the test's namespace
        if doc["kind"] in ("Role", "RoleBinding"):
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
            kube_api.apply(doc, namespace)
    return kubeconfig


@pytest.fixture
def replicas(tmp_path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()
    for replica in started:  # shown when a test fails
        print(f"--- log of {replica.name}:\n{Path(replica.log.name).read_text()[-4000:]}")


def test_two_replicas_one_acts_and_the_other_takes_over(
    kube_api, namespace, prometheus_factory, operator_kubeconfig, replicas, tmp_path
):
    admin = KubeApi(kube_api.new_api_client())
    prometheus = prometheus_factory(history=[requests_history(namespace, 10.0)])
    kube_api.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "llm"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "llm"}},
                "template": {
                    "metadata": {"labels": {"app": "llm"}},
                    "spec": {"containers": [{"name": "c", "image": "vllm"}]},
                },
            },
        },
        namespace,
    )
    kube_api.create(
        {
            "apiVersion": API_VERSION,
            "kind": "InferenceService",
            "metadata": {"name": "llm"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"},
                "replicas": {"min": 1, "max": 10},
                "demand": {"preset": "vllm", "selector": {"matchLabels": {"service": "llm"}}},
                "capacity": {"perReplica": 3},
                "coldStart": {"seconds": 30},
            },
        },
        namespace,
    )

    first = Replica("first", operator_kubeconfig, namespace, prometheus.url, tmp_path / "a.log")
    replicas.append(first)
    wait_for("the first replica to lead", lambda: first.metric("aiscaler_leader") == 1)
    second = Replica("second", operator_kubeconfig, namespace, prometheus.url, tmp_path / "b.log")
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
    admin.scale(
        namespace, TargetRef("apps/v1", "Deployment", "llm"), 1
    )  # so that the new leader has work to do
    wait_for(
        "the new leader to scale",
        lambda: admin.get("apps/v1", "Deployment", namespace, "llm")["spec"]["replicas"] >= 4,
    )
    lease = admin.get("coordination.k8s.io/v1", "Lease", namespace, "aiscaler-leader")
    assert lease["spec"]["holderIdentity"] == "second"
