"""The closed loop end to end, once per session (tests/e2e/test_closed_loop.py asserts on it).

The local cluster (harness.cluster: kube-apiserver, controller-manager, scheduler, kwok, fake
GPU nodes, Prometheus, the workload and node emulators) starts with an hour of steady demand
for the flagship example's vLLM Deployment written into Prometheus as history. The chart is
installed with `helm install`; the operator runs as the chart's Deployment describes it, with
its ServiceAccount's token (harness.release); every example is applied. Then a demand ramp is
replayed, the timeline recorded, the release upgraded with a GPU budget, and uninstalled.

Time is compressed about tenfold (hack/local-cluster.yaml); the whole run takes ~10 minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import loop
from harness.cluster import ClusterConfig, LocalCluster
from harness.components import component_or_skip
from harness.helm import CHART, NAMESPACE, RELEASE, Helm
from harness.release import ReleasedOperator, wait_for
from kubernetes import client

E2E_DIR = Path(__file__).parent
LOW, PEAK = 8.0, 56.0  # requests/s: 2 replicas hold LOW, PEAK needs 9 of 6.5 each
BIN_S = 15.0
WARM_UP_BINS, RAMP_BINS, PEAK_BINS, TAIL_BINS = 4, 24, 4, 12
UPGRADE_BUDGET = 16  # GPUs: the llama service's 2-3 replicas, nothing left for training
TTFT_TARGET_S = 2.0  # the flagship example's SLO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class Run:
    """What happened, for the tests to assert on."""

    cluster: LocalCluster
    ramp_start: float
    peak_start: float
    peak_end: float
    end: float
    timeline: loop.Timeline
    install_output: str
    examples: list[tuple[str, str, str]]
    statuses: dict[tuple[str, str, str], dict[str, Any]]
    operator_metrics: str  # /metrics of the operator at the end of the replay
    dashboard: dict[str, list[Any]]  # each dashboard query -> Prometheus' result
    attainment: float  # share of the replay's requests within the TTFT target (Prometheus)
    upgrade: dict[str, Any] = field(default_factory=dict)
    leftovers: dict[str, list[str]] = field(default_factory=dict)
    crds_after_uninstall: list[str] = field(default_factory=list)

    def balloon_nodes(self, until: float) -> list[str]:
        """GPU nodes added for a balloon pod seen in the timeline until `until`."""
        seen = (s.balloon_nodes for s in self.timeline.samples if s.t <= until)
        return sorted(set().union(*seen))


def ramp_rates() -> list[float]:
    ramp = [LOW + (PEAK - LOW) * (i + 1) / RAMP_BINS for i in range(RAMP_BINS)]
    return [LOW] * WARM_UP_BINS + ramp + [PEAK] * PEAK_BINS + [LOW] * TAIL_BINS


@pytest.fixture(scope="session")
def closed_loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("e2e")
    with component_or_skip():
        helm_binary = Helm.installed()
        cluster = LocalCluster(workdir / "cluster", ClusterConfig.load())
    steady = loop.llama_workload(time.time() - 3600, BIN_S, [LOW])  # an hour of LOW so far
    idle = loop.idle_assistant_workload(steady.start, BIN_S)
    cluster.start([steady, idle])
    operator = ReleasedOperator(cluster, workdir / "operator", NAMESPACE, RELEASE)
    try:
        yield replay(cluster, Helm(helm_binary.binary, cluster.kubeconfig), operator, steady, idle)
    finally:
        operator.stop()
        cluster.stop()
        if operator.process is not None:  # shown when a test fails
            print(f"--- operator log tail:\n{operator.process.log_tail(60)}")


def replay(
    cluster: LocalCluster,
    helm: Helm,
    operator: ReleasedOperator,
    steady: loop.Workload,
    idle: loop.Workload,
) -> Run:
    install_output = loop.install_chart(cluster, helm)
    examples = loop.apply_examples(cluster)
    loop.wait_ready(cluster, replicas=2)  # the vLLM Deployment as it was before aiscaler
    cluster.set_workloads([steady, idle])
    operator.start()
    rates = ramp_rates()
    workload = loop.replay_at(steady, time.time() + 30, rates)  # first ticks: the steady state
    start = workload.end - BIN_S * len(rates)
    cluster.set_workloads([workload, idle])
    recorder = loop.Recorder(cluster, workload, TTFT_TARGET_S)
    end = start + BIN_S * len(rates)
    timeline = loop.Timeline(list(recorder.record(end, every_s=3.0)))
    print("\n".join(loop.timeline_table(timeline.samples, start)))
    ramp_start = start + WARM_UP_BINS * BIN_S
    peak_start = ramp_start + RAMP_BINS * BIN_S
    peak_end = peak_start + PEAK_BINS * BIN_S
    run = Run(
        cluster=cluster,
        ramp_start=ramp_start,
        peak_start=peak_start,
        peak_end=peak_end,
        end=end,
        timeline=timeline,
        install_output=install_output,
        examples=examples,
        statuses=statuses(cluster, examples),
        operator_metrics=operator.metrics(),
        dashboard=dashboard_results(recorder),
        attainment=recorder.attainment_since(start),
    )
    print(f"attainment over the replay: {run.attainment:.3f}; nodes for balloons: "
          f"{run.balloon_nodes(end)}, before the peak: "
          f"{run.balloon_nodes(peak_start)}")  # fmt: skip
    run.upgrade = upgrade(cluster, helm, operator)
    operator.stop()
    helm.uninstall()
    run.leftovers = leftovers(cluster)
    extensions = client.ApiextensionsV1Api(cluster.plane.api_client)
    run.crds_after_uninstall = [
        c.metadata.name for c in extensions.list_custom_resource_definition().items
    ]
    return run


def statuses(
    cluster: LocalCluster, examples: list[tuple[str, str, str]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    custom = client.CustomObjectsApi(cluster.plane.api_client)
    out = {}
    for kind, namespace, name in examples:
        if kind in ("InferenceService", "TrainingJob"):
            body = custom.get_namespaced_custom_object(
                "aiscaler.dev", "v1alpha1", namespace, loop.plural(kind), name
            )
            out[(kind, namespace, name)] = body.get("status", {})
    return out


def dashboard_results(recorder: loop.Recorder) -> dict[str, list[Any]]:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    out = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            query = expr.replace("$__rate_interval", "1m").replace("$namespace", ".*")
            out[expr] = recorder.results(query)
    return out


def upgrade(cluster: LocalCluster, helm: Helm, operator: ReleasedOperator) -> dict[str, Any]:
    """`helm upgrade` with a GPU budget; the rollout restarts the operator, whose plan must now
    hold every GPU it decides within the budget."""
    apps = client.AppsV1Api(cluster.plane.api_client)

    def checksum() -> str:
        deployment = apps.read_namespaced_deployment(RELEASE, NAMESPACE)
        return deployment.spec.template.metadata.annotations["checksum/config"]

    before = checksum()
    loop.install_chart(cluster, helm, "--set", f"gpuBudget={UPGRADE_BUDGET}")
    after = checksum()
    operator.restart()
    custom = client.CustomObjectsApi(cluster.plane.api_client)

    def status(kind: str, namespace: str, name: str) -> dict[str, Any]:
        body = custom.get_namespaced_custom_object(
            "aiscaler.dev", "v1alpha1", namespace, loop.plural(kind), name
        )
        return dict(body.get("status") or {})

    def training_workers() -> int | None:
        return status("TrainingJob", *loop.TRAINING).get("desiredWorkers")

    def within_budget() -> bool:
        desired = status("InferenceService", *loop.LLAMA).get("desiredReplicas")
        return desired is not None and desired * 4 <= UPGRADE_BUDGET and training_workers() == 0

    wait_for("the new budget to hold the service and the training job", within_budget, 120)
    service = {"status": status("InferenceService", *loop.LLAMA)}
    return {
        "checksum_before": before,
        "checksum_after": after,
        "training_desired_workers": training_workers(),
        "service_desired_replicas": service["status"]["desiredReplicas"],
        "config": client.CoreV1Api(cluster.plane.api_client)
        .read_namespaced_config_map(RELEASE, NAMESPACE)
        .data["config.yaml"],
    }


def leftovers(cluster: LocalCluster) -> dict[str, list[str]]:
    """Objects of the release still there after `helm uninstall`, by kind."""
    api = cluster.plane.api_client
    selector = f"app.kubernetes.io/instance={RELEASE}"
    core, apps, rbac = (
        client.CoreV1Api(api),
        client.AppsV1Api(api),
        client.RbacAuthorizationV1Api(api),
    )
    scheduling = client.SchedulingV1Api(api)
    found = {
        "ServiceAccount": core.list_service_account_for_all_namespaces(
            label_selector=selector
        ).items,
        "ConfigMap": core.list_config_map_for_all_namespaces(label_selector=selector).items,
        "Service": core.list_service_for_all_namespaces(label_selector=selector).items,
        "Deployment": apps.list_deployment_for_all_namespaces(label_selector=selector).items,
        "ClusterRole": rbac.list_cluster_role(label_selector=selector).items,
        "ClusterRoleBinding": rbac.list_cluster_role_binding(label_selector=selector).items,
        "Role": rbac.list_role_for_all_namespaces(label_selector=selector).items,
        "RoleBinding": rbac.list_role_binding_for_all_namespaces(label_selector=selector).items,
        "PriorityClass": scheduling.list_priority_class(label_selector=selector).items,
    }
    # What the operator made in its namespace (balloons) goes with the release too.
    found["Deployment"] += apps.list_namespaced_deployment(NAMESPACE).items
    return {kind: sorted({o.metadata.name for o in objs}) for kind, objs in found.items() if objs}
