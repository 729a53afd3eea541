"""The planning tick against a real kube-apiserver and a real Prometheus.

Each test builds the operator as `aiscaler run` does (real KubeApi, PrometheusMetrics, a
forecaster), with the Kubernetes client authenticated as a service account bound to the shipped
ClusterRole (deploy/aiscaler.yaml, the chart rendered), so every read and write below also
proves the RBAC is enough.
Then it runs ticks with `run_tick` on the custom resources listed from the API server (what the
kopf indices hold) and asserts the outcome in the API server. No controllers run: Deployments
get no pods, so the assertions are on what the operator writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.objects import (
    API_VERSION,
    HISTORY_S,
    POD,
    STEP_S,
    deployment,
    events,
    replicas,
    scale_by_hand,
    service,
    status,
    tick,
    training_job,
    vllm_requests,
)
from harness.prometheus import Series
from prometheus_client import generate_latest

from aiscaler.core.margin import STEP
from aiscaler.core.types import FloorRecord
from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.handlers.tick import Operator, run_tick
from aiscaler.kube.client import KubeApi
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster_role(kube_api) -> str:
    docs = yaml.safe_load_all((REPO / "deploy" / "aiscaler.yaml").read_text())
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    kube_api.apply(role)
    return role["metadata"]["name"]


@pytest.fixture
def admin(kube_api) -> KubeApi:
    return KubeApi(kube_api.new_api_client())


@pytest.fixture
def make_operator(kube_api, namespace, cluster_role, prometheus_factory):
    kubeconfig = kube_api.service_account_kubeconfig(namespace, "aiscaler", cluster_role)
    made: list[Operator] = []

    def make(history: list[Series], **settings: Any) -> tuple[Operator, Any]:
        prometheus = prometheus_factory(history=history)
        config = Settings(prometheus_url=prometheus.url, tick_seconds=30, **settings)
        op = Operator(
            kube=KubeApi(kube_api.new_api_client(kubeconfig)),
            metrics=PrometheusMetrics(prometheus.url, timeout_s=5),
            forecaster=HoltWintersForecaster(),
            settings=config,
            namespace=namespace,
        )
        made.append(op)
        return op, prometheus

    yield make
    for op in made:
        op.metrics.close()


def test_a_deployment_is_scaled_from_metric_history(kube_api, namespace, admin, make_operator):
    now = time.time()
    op, _ = make_operator([vllm_requests(namespace, "llm", 10.0, now - 10)])
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)

    report = tick(op, admin, namespace)

    # 10 requests/s at 3 per replica: 4 replicas, whatever the forecast adds at Q0.99.
    scaled = replicas(admin, namespace, "llm")
    assert 4 <= scaled <= 6, report
    st = status(admin, namespace, "llm")
    assert st["desiredReplicas"] == st["replicas"] == scaled
    assert st["forecast"]["source"] == "holt_winters"
    assert st["forecast"]["value"] == pytest.approx(10.0, rel=0.2)
    assert st["lastDecision"]["reason"] in ("ForecastPeak", "ObservedDemand")
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Degraded"] == "False" and conds["Invalid"] == "False"
    [event] = events(admin, namespace, "llm")
    assert event["reason"] == st["lastDecision"]["reason"]
    assert f"1 -> {scaled}" in event["message"]

    # Nothing changed: the next tick writes no status and posts no event.
    again = tick(op, admin, namespace)
    assert again.status_writes == 0 and again.events == 0, again
    assert replicas(admin, namespace, "llm") == scaled


def test_an_owned_deployment_is_created_from_the_template(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    op, _ = make_operator([vllm_requests(namespace, "chat", 5.0, now - 10)])
    spec = service("chat", resources={"gpusPerReplica": 2}, template=POD)
    del spec["spec"]["scaleTargetRef"]
    kube_api.create(spec, namespace)
    owner = admin.get(API_VERSION, "InferenceService", namespace, "chat")

    report = tick(op, admin, namespace)

    assert report.created == [f"{namespace}/chat"]
    dep = admin.get("apps/v1", "Deployment", namespace, "chat")
    [ref] = dep["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "InferenceService",
        "chat",
        owner["metadata"]["uid"],
        True,
    )
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert 2 <= dep["spec"]["replicas"] <= 3  # 5/s at 3 per replica
    assert status(admin, namespace, "chat")["desiredReplicas"] == dep["spec"]["replicas"]


def test_training_job_parallelism_follows_the_budget_in_allowed_sizes(
    kube_api, namespace, admin, make_operator
):
    op, _ = make_operator([], gpu_budget=6)
    kube_api.create(
        training_job("pretrain", workers={"min": 1, "max": 8, "allowedSizes": [1, 2, 4, 8]}),
        namespace,
    )

    tick(op, admin, namespace)

    job = admin.get("batch/v1", "Job", namespace, "pretrain")
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 4  # 8 > budget 6
    assert admin.get("v1", "Service", namespace, "pretrain-rdzv")["spec"]["clusterIP"] == "None"
    st = status(admin, namespace, "pretrain", "TrainingJob")
    assert (st["workers"], st["desiredWorkers"]) == (4, 4)

    op.settings = Settings(prometheus_url=op.settings.prometheus_url, gpu_budget=3)
    tick(op, admin, namespace)

    job = admin.get("batch/v1", "Job", namespace, "pretrain")
    assert job["spec"]["parallelism"] == 2  # the largest allowed size within 3 GPUs

    # No GPU left: suspended, not shrunk to zero completions (that Job would complete for
    # good); resumed at a size the budget allows later.
    op.settings = Settings(prometheus_url=op.settings.prometheus_url, gpu_budget=0)
    tick(op, admin, namespace)
    job = admin.get("batch/v1", "Job", namespace, "pretrain")
    assert job["spec"]["suspend"] is True and job["spec"]["completions"] == 2
    assert status(admin, namespace, "pretrain", "TrainingJob")["workers"] == 0
    op.settings = Settings(prometheus_url=op.settings.prometheus_url, gpu_budget=6)
    tick(op, admin, namespace)
    job = admin.get("batch/v1", "Job", namespace, "pretrain")
    assert job["spec"]["suspend"] is False
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 4
    history = status(admin, namespace, "pretrain", "TrainingJob")["resizeHistory"]
    assert [(h["from"], h["to"]) for h in history] == [(0, 4), (4, 2), (2, 0), (0, 4)]


def test_recommend_mode_changes_only_the_status(kube_api, namespace, admin, make_operator):
    now = time.time()
    op, _ = make_operator([vllm_requests(namespace, "llm", 10.0, now - 10)])
    kube_api.apply(deployment("llm", 1), namespace)
    spec = service("llm")
    spec["spec"]["policy"]["mode"] = "recommend"
    kube_api.create(spec, namespace)
    before = admin.get("apps/v1", "Deployment", namespace, "llm")["metadata"]["resourceVersion"]

    tick(op, admin, namespace)

    dep = admin.get("apps/v1", "Deployment", namespace, "llm")
    assert dep["metadata"]["resourceVersion"] == before
    st = status(admin, namespace, "llm")
    assert st["replicas"] == 1 and st["desiredReplicas"] >= 4 and st["mode"] == "recommend"
    [event] = events(admin, namespace, "llm")
    assert event["message"].startswith("recommends 1 -> ")


def test_an_invalid_spec_is_marked_and_nothing_is_patched(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    op, _ = make_operator([vllm_requests(namespace, "llm", 10.0, now - 10)])
    kube_api.apply(deployment("llm", 1), namespace)
    # Valid for the API server's schema, but names a GPU pool this operator does not have.
    kube_api.create(service("llm", resources={"pool": "b200"}), namespace)
    before = admin.get("apps/v1", "Deployment", namespace, "llm")["metadata"]["resourceVersion"]

    report = tick(op, admin, namespace)

    assert list(report.invalid) == [f"{namespace}/llm"]
    assert (
        admin.get("apps/v1", "Deployment", namespace, "llm")["metadata"]["resourceVersion"]
        == before
    )
    st = status(admin, namespace, "llm")
    [invalid] = [c for c in st["conditions"] if c["type"] == "Invalid"]
    assert invalid["status"] == "True" and "b200" in invalid["message"]
    assert "desiredReplicas" not in st
    [event] = events(admin, namespace, "llm")
    assert (event["type"], event["reason"]) == ("Warning", "InvalidSpec")
    # Still invalid next tick: no second event, no status write.
    again = tick(op, admin, namespace)
    assert again.events == 0 and again.status_writes == 0


def test_prometheus_stopped_mid_run_gives_degraded_and_no_scale_down(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    op, prometheus = make_operator([vllm_requests(namespace, "llm", 10.0, now - 10)])
    kube_api.apply(deployment("llm", 12), namespace)
    kube_api.create(service("llm"), namespace)
    tick(op, admin, namespace)
    scaled_down = replicas(admin, namespace, "llm")
    assert scaled_down < 12  # with metrics, 12 is too many for 10/s

    scale_by_hand(admin, namespace, "llm", 12)  # someone scales it back up by hand
    prometheus.stop()
    tick(op, admin, namespace)

    assert replicas(admin, namespace, "llm") == 12
    st = status(admin, namespace, "llm")
    [degraded] = [c for c in st["conditions"] if c["type"] == "Degraded"]
    assert degraded["status"] == "True"
    assert degraded["reason"] in ("MetricsMissing", "MetricsStale"), degraded
    assert "Prometheus" in degraded["message"]


def test_services_and_a_training_job_never_exceed_the_gpu_budget(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    op, _ = make_operator(
        [
            vllm_requests(namespace, "hi", 10.0, now - 10),
            vllm_requests(namespace, "lo", 10.0, now - 10),
        ],
        gpu_budget=10,
    )
    for name, priority in (("hi", 10), ("lo", 0)):
        kube_api.apply(deployment(name, 1), namespace)
        spec = service(name, resources={"gpusPerReplica": 2})
        spec["spec"]["policy"]["priority"] = priority
        kube_api.create(spec, namespace)
    kube_api.create(training_job("train"), namespace)

    for _ in range(2):
        tick(op, admin, namespace)
        used = 2 * replicas(admin, namespace, "hi") + 2 * replicas(admin, namespace, "lo")
        jobs = admin.list("batch/v1", "Job", namespace)
        used += sum(j["spec"]["parallelism"] for j in jobs)
        assert used <= 10

    hi, lo = status(admin, namespace, "hi"), status(admin, namespace, "lo")
    assert replicas(admin, namespace, "hi") >= 4  # the high priority one gets its need first
    assert lo["lastDecision"]["reason"] == "BudgetLimited"
    [limited] = [c for c in lo["conditions"] if c["type"] == "ScalingLimited"]
    assert limited["status"] == "True"
    assert hi["desiredReplicas"] == replicas(admin, namespace, "hi")


def test_a_custom_query_reaching_outside_its_namespace_is_confined(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    other = kube_api.create_namespace("other")
    op, _ = make_operator(
        [
            vllm_requests(namespace, "llm", 1.0, now - 10),
            vllm_requests(other, "llm", 300.0, now - 10),
        ]
    )
    kube_api.apply(deployment("llm", 1), namespace)
    spec = service("llm")
    spec["spec"]["demand"] = {
        "preset": "custom",
        "query": f'sum(rate(vllm:request_success_total{{namespace=~"{other}|{namespace}"}}[2m]))',
    }
    kube_api.create(spec, namespace)

    tick(op, admin, namespace)

    # Only its own 1 request/s counts: one replica, not the hundred the other namespace needs.
    assert replicas(admin, namespace, "llm") == 1
    st = status(admin, namespace, "llm")
    assert st["forecast"]["value"] == pytest.approx(1.0, rel=0.3)


def test_balloons_hold_node_headroom_for_a_rising_forecast(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    ramp = Series(  # demand rising from 1 to 31 requests/s over six hours
        "vllm:request_success_total",
        {"namespace": namespace, "service": "llm"},
        [(now - 10 - HISTORY_S + t, t + (t * t) / (2 * 720)) for t in range(0, HISTORY_S + 1, 30)],
    )
    pool = {"pool": namespace}  # nodes of this test only
    op, _ = make_operator(
        [ramp],
        pools=[
            {
                "name": "h100",
                "gpuType": "H100",
                "gpusPerNode": 8,
                "nodeSelector": pool,
                "maxNodes": 40,
                "provisioningSeconds": 600,
            }
        ],
    )
    for i in range(2):
        kube_api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"{namespace}-{i}", "labels": pool},
                "status": {
                    "allocatable": {"nvidia.com/gpu": "8"},
                    "capacity": {"nvidia.com/gpu": "8"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(
        service(
            "llm",
            capacity=1.0,
            resources={"gpusPerReplica": 8, "pool": "h100"},
            replicas={"min": 1, "max": 40},
        ),
        namespace,
    )

    report = tick(op, admin, namespace)

    [plan] = report.plan.pools
    assert plan.balloon_pods > 0, plan  # the forecast needs more nodes within 600 s
    balloons = admin.get("apps/v1", "Deployment", namespace, "aiscaler-balloon-h100")
    assert balloons["spec"]["replicas"] == plan.balloon_pods
    pod = balloons["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "aiscaler-balloon"
    assert pod["nodeSelector"] == pool
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    # The lead time included node provisioning: only 16 GPUs were free.
    assert status(admin, namespace, "llm")["forecast"]["leadTimeSeconds"] == 60 + 600


def test_a_deployment_of_the_same_name_that_is_not_ours_is_left_alone(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    op, _ = make_operator([vllm_requests(namespace, "chat", 10.0, now - 10)])
    kube_api.apply(deployment("chat", 2), namespace)  # someone else's
    spec = service("chat", template=POD)
    del spec["spec"]["scaleTargetRef"]
    kube_api.create(spec, namespace)
    before = admin.get("apps/v1", "Deployment", namespace, "chat")["metadata"]["resourceVersion"]

    tick(op, admin, namespace)

    after = admin.get("apps/v1", "Deployment", namespace, "chat")
    assert after["metadata"]["resourceVersion"] == before
    [invalid] = [
        c for c in status(admin, namespace, "chat")["conditions"] if c["type"] == "Invalid"
    ]
    assert (invalid["status"], invalid["reason"]) == ("True", "TargetNotOwned")


def ttft_buckets(namespace: str, service: str, within_s: float, end: float) -> list[Series]:
    """`vllm:time_to_first_token_seconds_bucket` at 10 requests/s, every request in the bucket
    ending at `within_s` (so the p95 lies between the bound below it and `within_s`)."""
    times = [end - HISTORY_S + i * STEP_S for i in range(HISTORY_S // STEP_S + 1)]
    labels = {"namespace": namespace, "service": service}
    return [
        Series(
            "vllm:time_to_first_token_seconds_bucket",
            {**labels, "le": le},
            [(t, (10.0 * (t - times[0]) if count else 0.0)) for t in times],
        )
        for le, count in (("0.5", within_s <= 0.5), ("5.0", True), ("+Inf", True))
    ]


def waiting(namespace: str, service: str, requests: float, end: float) -> Series:
    """`vllm:num_requests_waiting` of one service, constant over the six hours."""
    times = [end - HISTORY_S + i * STEP_S for i in range(HISTORY_S // STEP_S + 1)]
    labels = {"namespace": namespace, "service": service}
    return Series("vllm:num_requests_waiting", labels, [(t, requests) for t in times])


def test_a_queueing_service_learns_a_margin_and_others_do_not(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    end = now - 10
    op, _ = make_operator(
        [
            *(vllm_requests(namespace, n, 10.0, end) for n in ("queued", "slow", "fast")),
            # p95 ~4.8 s, above the 2 s target, with requests waiting: too few replicas.
            *ttft_buckets(namespace, "queued", 5.0, end),
            waiting(namespace, "queued", 6.0, end),
            # As slow, with nothing ever waiting: the engine is slow, replicas would not help.
            *ttft_buckets(namespace, "slow", 5.0, end),
            waiting(namespace, "slow", 0.0, end),
            *ttft_buckets(namespace, "fast", 0.5, end),  # p95 ~0.5 s: within the target
        ]
    )
    for name in ("queued", "slow", "fast"):
        kube_api.apply(deployment(name, 1), namespace)
        kube_api.create(service(name), namespace)

    for _ in range(3):
        tick(op, admin, namespace)

    queued, slow, fast = (
        op.memories[f"{namespace}/{n}"].margin.factor for n in ("queued", "slow", "fast")
    )
    assert fast == slow == 1.0
    # Three missed ticks, each a quarter step (30 s ticks over the 120 s latency window).
    assert queued == pytest.approx(math.exp(3 * 0.25 * STEP * 0.99))
    exposed = op.telemetry.registry.get_sample_value(
        "aiscaler_slo_margin", {"namespace": namespace, "name": "queued"}
    )
    assert exposed == queued
    recorded = status(admin, namespace, "queued")["sloMargin"]
    assert recorded == round(queued, 2)
    assert status(admin, namespace, "fast")["sloMargin"] == 1.0

    # A restarted operator (no memory) resumes from the recorded margin, not from 1.
    restarted = Operator(op.kube, op.metrics, op.forecaster, op.settings, namespace)
    tick(restarted, admin, namespace)
    resumed = restarted.memories[f"{namespace}/queued"].margin.factor
    assert resumed == pytest.approx(recorded * math.exp(0.25 * STEP * 0.99))

    # Not scored yet: planned from the forecast. A service whose floor alone served the last
    # day (its memory says so) plans from the floor, and its status says so.
    assert status(admin, namespace, "fast")["plan"] == {"basis": "forecast"}
    key = f"{namespace}/fast"
    served = FloorRecord(demand=1000.0, scored=200.0, time=time.time() - 30)
    restarted.memories[key] = replace(restarted.memories[key], floor=served)
    tick(restarted, admin, namespace)
    assert status(admin, namespace, "fast")["plan"] == {"basis": "floor", "floorAttainment": 1.0}
    # Restarted again: no replay in memory, so the forecast, and no share left from before.
    again = Operator(op.kube, op.metrics, op.forecaster, op.settings, namespace)
    tick(again, admin, namespace)
    assert status(admin, namespace, "fast")["plan"] == {"basis": "forecast"}


def test_a_deleted_service_is_forgotten_and_a_status_write_it_outran_is_no_error(
    kube_api, namespace, admin, make_operator
):
    now = time.time()
    op, _ = make_operator(
        [vllm_requests(namespace, name, 10.0, now - 10) for name in ("gone", "kept")]
    )
    for name in ("gone", "kept"):
        kube_api.apply(deployment(name, 1), namespace)
        kube_api.create(service(name), namespace)
    tick(op, admin, namespace)
    assert 'name="gone"' in generate_latest(op.telemetry.registry).decode()
    # The index still holds `gone` as it was before the operator's first status write (its
    # deletion event not seen yet), so the next tick wants to write that status again.
    listed = [
        {**b, "status": {}} if b["metadata"]["name"] == "gone" else b
        for b in admin.list(API_VERSION, "InferenceService", namespace)
    ]
    admin.request("DELETE", admin.path(API_VERSION, "InferenceService", namespace, "gone"))

    outran = run_tick(op, listed, [], time.time())

    assert outran.errors == [], outran.errors
    assert not op.telemetry.registry.get_sample_value("aiscaler_errors_total", {"stage": "status"})
    forgotten = tick(op, admin, namespace)  # the index without it
    assert forgotten.errors == []
    exposed = generate_latest(op.telemetry.registry).decode()
    assert 'name="gone"' not in exposed and 'name="kept"' in exposed
    assert set(op.memories) == set(op.left) == {f"{namespace}/kept"}
    # Its Deployment is the user's: deleting the custom resource leaves it alone.
    assert replicas(admin, namespace, "gone") >= 1
