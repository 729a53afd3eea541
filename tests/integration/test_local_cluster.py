"""The local GPU cluster's own behaviour (harness.cluster, harness.emulators, harness.serving),
on a fast clock: pods really made, placed on GPU nodes or left Pending, Ready a cold start
later; nodes added for pending pods after the pool's provisioning delay and removed when
empty; vLLM's metrics scraped by the real Prometheus, continuing the history written before it
started. The closed loop with aiscaler is tests/e2e."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import yaml
from harness.cluster import CONFIG, ClusterConfig, LocalCluster
from harness.components import component_or_skip
from harness.emulators import REQUESTED_FOR, Workload
from harness.release import wait_for
from harness.serving import Serving
from kubernetes import client

COLD_START_S, PROVISIONING_S, IDLE_S = 2.0, 4.0, 6.0


def test_serving_is_a_fifo_queue_at_ready_times_capacity():
    """The simulator's v2 fluid model: 0.05 requests/s per replica gives 3 slots of 60 s each;
    requests start while a slot is free and wait beyond that."""
    serving = Serving()
    calm = serving.step(arrivals=4.0, ready=2, capacity=0.05, interval_s=1.0)
    assert calm.waiting == 0.0 and calm.started == pytest.approx(4.0, abs=0.1)
    assert all(wait == 0.0 for wait, _ in calm.waits)
    busy = serving.step(arrivals=10.0, ready=2, capacity=0.05, interval_s=1.0)
    assert busy.waiting == pytest.approx(8.0, abs=0.2)  # 14 in the system, 6 slots
    assert busy.started == pytest.approx(2.0, abs=0.2)  # the slots left free
    later = serving.step(arrivals=0.0, ready=6, capacity=0.05, interval_s=1.0)
    assert later.waiting == 0.0 and later.started == pytest.approx(8.0, abs=0.2)
    waits = [wait for wait, _ in later.waits]
    assert waits == sorted(waits, reverse=True) and waits[0] > 0.0
    stalled = serving.step(arrivals=5.0, ready=0, capacity=0.05, interval_s=1.0)
    assert (stalled.started, stalled.waits) == (0.0, ())


def test_a_scale_down_drains_what_the_leaving_replicas_serve():
    """A replica that leaves finishes its requests (as the simulator drains a removed pod):
    they do not queue for the replicas that stay, so a scale-down to enough slots costs no
    wait."""
    serving = Serving()
    serving.step(arrivals=12.0, ready=6, capacity=0.05, interval_s=1.0)  # 12 of 18 slots
    after = serving.step(arrivals=1.0, ready=2, capacity=0.05, interval_s=1.0)  # 6 slots
    assert after.waiting == 0.0 and after.started == pytest.approx(1.0, abs=0.1)
    assert all(wait == 0.0 for wait, _ in after.waits)
    assert after.running == pytest.approx(12.8, abs=0.2)  # 8 of them on the leaving replicas
    drained = serving.step(arrivals=0.0, ready=2, capacity=0.05, interval_s=600.0)
    assert drained.running == pytest.approx(0.0, abs=1e-3)


def test_what_arrived_is_what_finished_plus_what_the_engine_holds_more_of():
    """The conservation the vLLM demand query relies on (aiscaler.metrics.presets), through a
    backlog, a scale-up that drains it, a scale-down and a stall."""
    serving = Serving()
    held = 0.0
    steps = [(4.0, 2), (10.0, 2), (10.0, 2), (3.0, 6), (0.0, 6), (2.0, 3), (5.0, 0), (1.0, 0)]
    for arrivals, ready in steps:
        served = serving.step(arrivals, ready, capacity=0.05, interval_s=1.0)
        now_held = served.running + served.waiting
        assert served.finished + now_held - held == pytest.approx(arrivals)
        held = now_held


def test_a_workload_integrates_its_rates_and_holds_the_ends():
    w = Workload("ns", "d", capacity=1.0, start=100.0, bin_s=10.0, rates=(1.0, 3.0))
    assert w.arrivals(100.0, 120.0) == pytest.approx(40.0)
    assert w.arrivals(105.0, 115.0) == pytest.approx(5.0 + 15.0)
    assert w.arrivals(90.0, 100.0) == pytest.approx(10.0)  # the first rate before the start
    assert w.arrivals(120.0, 130.0) == pytest.approx(30.0)  # the last one after the end


@pytest.fixture
def fast_cluster(tmp_path: Path):
    raw = yaml.safe_load(CONFIG.read_text())
    raw.update(coldStartSeconds=COLD_START_S, nodeIdleSeconds=IDLE_S)
    for pool in raw["pools"]:
        pool["provisioningSeconds"] = PROVISIONING_S
    config_path = tmp_path / "cluster.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    with component_or_skip():
        cluster = LocalCluster(tmp_path / "cluster", ClusterConfig.load(config_path))
    now = time.time()
    history = Workload(
        "default", "web", 5.0, now - 1800, 60.0, (10.0,), {"model_name": "m"}, ingress="web"
    )
    cluster.start([history])
    try:
        yield cluster, history
    finally:
        cluster.stop()


def gpu_deployment(replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm",
                            "resources": {"limits": {"nvidia.com/gpu": "4"}},
                        }
                    ],
                },
            },
        },
    }


def test_pods_wait_for_gpus_and_nodes_come_and_go(fast_cluster):
    cluster, history = fast_cluster
    core = client.CoreV1Api(cluster.plane.api_client)
    apps = client.AppsV1Api(cluster.plane.api_client)
    [h100_0] = [n for n in core.list_node().items if n.metadata.name == "h100-0"]
    assert h100_0.status.allocatable["nvidia.com/gpu"] == "8"
    started = time.monotonic()
    cluster.plane.create(gpu_deployment(3))  # 12 GPUs: the third pod has no room on h100-0

    def pods():
        return core.list_namespaced_pod("default", label_selector="app=web").items

    wait_for(
        "two pods bound to h100-0",
        lambda: sum(p.spec.node_name == "h100-0" for p in pods()) == 2,
        30,
    )
    pending = [p for p in pods() if not p.spec.node_name]
    assert len(pending) == 1
    assert any(c.reason == "Unschedulable" for c in pending[0].status.conditions or [])
    wait_for(
        "three Ready pods",
        lambda: apps.read_namespaced_deployment("web", "default").status.ready_replicas == 3,
        60,
    )
    assert time.monotonic() - started >= PROVISIONING_S + COLD_START_S
    added = [n for n in core.list_node().items if REQUESTED_FOR in (n.metadata.annotations or {})]
    assert len(added) == 1
    assert added[0].metadata.annotations[REQUESTED_FOR] == f"default/{pending[0].metadata.name}"
    assert added[0].metadata.labels["aiscaler.dev/local-pool"] == "h100"

    # The emulated engine serves with the Ready pods; Prometheus shows one series from the
    # history through the live scrape.
    cluster.set_workloads([history])
    url = f"{cluster.prometheus.url}/api/v1/query"

    def value(query: str) -> float | None:
        result = requests.get(url, params={"query": query}, timeout=5).json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    rate = "sum by (namespace, model_name) (rate(vllm:request_success_total[30s]))"
    wait_for("a live scrape", lambda: (r := value(rate)) is not None and 9.0 < r < 11.0, 30)
    # The live counter goes on from the history's half hour of 10 requests/s: what finished
    # and what the engine holds are what arrived.
    arrived = "max(vllm:request_success_total) + max(vllm:num_requests_running)"
    assert value(f"{arrived} + max(vllm:num_requests_waiting)") >= 10.0 * 1800
    # The Ingress in front counts the same requests, as a service scaled to zero reads them.
    ingress = 'sum(rate(nginx_ingress_controller_requests{ingress="web"}[30s]))'
    assert 9.0 < (value(ingress) or 0.0) < 11.0
    assert value('max(nginx_ingress_controller_requests{namespace="default"})') >= 10.0 * 1800

    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    wait_for(
        "the empty node removed",
        lambda: all(n.metadata.name != added[0].metadata.name for n in core.list_node().items),
        60,
    )
    assert [
        n.metadata.name for n in core.list_node().items if n.metadata.name.startswith("h100")
    ] == ["h100-0"]
