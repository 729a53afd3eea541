"""Faults around what the operator scales: the target deleted or scaled by hand, another
autoscaler fighting over its replicas, a GPU pool whose nodes vanish, and a model checkpoint that
is missing or corrupt."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from harness.objects import (
    API_VERSION,
    POD,
    condition,
    deployment,
    replicas,
    scale_by_hand,
    service,
    status,
    tick,
    training_job,
    vllm_requests,
    warnings,
)
from harness.operator import wait_for

from aiscaler.handlers.operator import RunOptions, build_operator
from aiscaler.handlers.status import OUTSIDE_HOLD_S, timestamp
from aiscaler.kube.client import NotFound
from aiscaler.settings import Settings

NEEDED = range(4, 7)  # 10 requests/s at 3 per replica, with the forecast's spread
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scaled(kube_api, namespace, admin, make_operator):
    """An operator that has scaled Deployment llm from 1 to what it needs (about 4)."""
    op, _, _ = make_operator([vllm_requests(namespace, "llm", 10.0, time.time())])
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)
    tick(op, admin, namespace)
    assert replicas(admin, namespace, "llm") in NEEDED
    return op


def test_a_deleted_target_is_reported_and_not_recreated(kube_api, namespace, admin, scaled):
    admin.request("DELETE", admin.path("apps/v1", "Deployment", namespace, "llm"))

    for _ in range(2):
        report = tick(scaled, admin, namespace)

    assert report.errors and report.resized == {}
    degraded = condition(admin, namespace, "llm", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "TargetNotFound")
    assert "Deployment llm does not exist" in degraded["message"]
    assert warnings(admin, namespace, "llm") == ["TargetNotFound"]  # once, not every tick
    with pytest.raises(NotFound):  # the operator never creates a target it does not own
        admin.get("apps/v1", "Deployment", namespace, "llm")

    kube_api.apply(deployment("llm", 1), namespace)
    tick(scaled, admin, namespace)

    assert condition(admin, namespace, "llm", "Degraded")["status"] == "False"
    assert replicas(admin, namespace, "llm") in NEEDED


def test_an_owned_deployment_deleted_by_hand_is_created_again(
    kube_api, namespace, admin, make_operator
):
    op, _, _ = make_operator([vllm_requests(namespace, "chat", 10.0, time.time())])
    spec = service("chat", template=POD)
    del spec["spec"]["scaleTargetRef"]
    kube_api.create(spec, namespace)
    tick(op, admin, namespace)
    admin.request("DELETE", admin.path("apps/v1", "Deployment", namespace, "chat"))

    report = tick(op, admin, namespace)

    assert report.created == [f"{namespace}/chat"]
    again = admin.get("apps/v1", "Deployment", namespace, "chat")
    assert again["metadata"]["ownerReferences"][0]["name"] == "chat"
    assert again["spec"]["replicas"] in NEEDED


def test_replicas_set_by_hand_are_reported_then_left_alone_for_a_while(namespace, admin, scaled):
    scale_by_hand(admin, namespace, "llm", 9)  # kubectl scale --replicas=9

    for _ in range(3):
        tick(scaled, admin, namespace)

    assert replicas(admin, namespace, "llm") == 9  # no fight
    limited = condition(admin, namespace, "llm", "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "ScaledOutside")
    assert "changed outside aiscaler" in limited["message"] and "to 9" in limited["message"]
    assert "by kubectl" in limited["message"]
    assert warnings(admin, namespace, "llm") == ["ScaledOutside"]
    assert status(admin, namespace, "llm")["replicas"] == 9

    # Once the hold is over, aiscaler decides again (the hold's start, moved into the past).
    held = status(admin, namespace, "llm")["conditions"]
    for c in held:
        if c["type"] == "ScalingLimited":
            c["lastTransitionTime"] = timestamp(time.time() - OUTSIDE_HOLD_S - 1)
    admin.patch(
        API_VERSION, "InferenceService", namespace, "llm", {"status": {"conditions": held}},
        subresource="status",
    )  # fmt: skip
    tick(scaled, admin, namespace)

    assert replicas(admin, namespace, "llm") in NEEDED
    assert condition(admin, namespace, "llm", "ScalingLimited")["reason"] != "ScaledOutside"


def test_another_autoscaler_setting_the_replicas_meets_no_fight(
    namespace, admin, scaled, api_proxy
):
    writes_before = api_proxy.count("PATCH", r"/deployments/llm/scale")

    for _ in range(6):  # something sets 9 before every tick (here the HPA's controller)
        scale_by_hand(admin, namespace, "llm", 9, manager="kube-controller-manager")
        tick(scaled, admin, namespace)

    assert api_proxy.count("PATCH", r"/deployments/llm/scale") == writes_before  # no write back
    assert warnings(admin, namespace, "llm") == ["ScaledOutside"]  # said once
    assert condition(admin, namespace, "llm", "ScalingLimited")["reason"] == "ScaledOutside"


H100 = {"name": "h100", "gpuType": "H100", "gpusPerNode": 8, "maxNodes": 4}


def gpu_node(kube_api, name: str, labels: dict[str, str]) -> None:
    kube_api.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "status": {
                "allocatable": {"nvidia.com/gpu": "8"},
                "capacity": {"nvidia.com/gpu": "8"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )


def test_a_gpu_pool_that_vanishes(kube_api, namespace, admin, make_operator):
    labels = {"pool": namespace}  # nodes of this test only
    pool = {**H100, "nodeSelector": labels}
    op, _, _ = make_operator([vllm_requests(namespace, "llm", 10.0, time.time())], pools=[pool])
    for i in range(2):
        gpu_node(kube_api, f"{namespace}-{i}", labels)
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm", resources={"gpusPerReplica": 1, "pool": "h100"}), namespace)
    tick(op, admin, namespace)
    scaled = replicas(admin, namespace, "llm")
    assert scaled in NEEDED

    # The pool's nodes vanish: planning goes on, nothing is scaled down for it.
    for i in range(2):
        admin.request("DELETE", admin.path("v1", "Node", None, f"{namespace}-{i}"))
    report = tick(op, admin, namespace)

    assert report.errors == [], report.errors
    assert replicas(admin, namespace, "llm") >= scaled

    # The pool leaves the operator's settings: the service is invalid and left as it is.
    before = admin.get("apps/v1", "Deployment", namespace, "llm")["metadata"]["resourceVersion"]
    op.settings = op.settings.model_copy(update={"pools": []})
    tick(op, admin, namespace)

    invalid = condition(admin, namespace, "llm", "Invalid")
    assert invalid["status"] == "True" and "unknown GPU pool 'h100'" in invalid["message"]
    after = admin.get("apps/v1", "Deployment", namespace, "llm")["metadata"]["resourceVersion"]
    assert after == before


def corrupt_checkpoint(tmp_path: Path, how: str) -> Path:
    path = tmp_path / "checkpoint"
    if how == "missing":
        return path
    shutil.copytree(REPO / "model" / "checkpoint", path)
    if how == "corrupt weights":
        (path / "model.safetensors").write_bytes(b"\x00" * 64)
    else:
        (path / "config.json").write_text("{not json")
    return path


@pytest.mark.parametrize("how", ["missing", "corrupt weights", "corrupt config"])
def test_a_checkpoint_that_does_not_load_gives_the_baseline_and_a_condition(
    kube_api, namespace, admin, operator_kubeconfig, prometheus_factory, tmp_path, how
):
    prometheus = prometheus_factory(history=[vllm_requests(namespace, "llm", 10.0, time.time())])
    checkpoint = corrupt_checkpoint(tmp_path, how)
    settings = Settings(prometheus_url=prometheus.url, model_path=checkpoint)
    op, why = build_operator(settings, RunOptions(str(operator_kubeconfig), "test", namespace))
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)

    try:
        tick(op, admin, namespace)
    finally:
        op.metrics.close()

    assert "holt_winters" in why and str(checkpoint) in why
    assert replicas(admin, namespace, "llm") in NEEDED  # it still scales, on the baseline
    st = status(admin, namespace, "llm")
    assert st["forecast"]["source"] == "holt_winters"
    degraded = condition(admin, namespace, "llm", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ModelUnavailable")
    assert str(checkpoint) in degraded["message"]


def test_deleted_custom_resources_take_their_own_objects_and_nothing_else(
    kube_api, namespace, admin, make_operator, api_proxy, garbage_collector
):
    op, _, _ = make_operator([vllm_requests(namespace, "chat", 10.0, time.time())])
    kube_api.apply(deployment("other", 2), namespace)  # someone else's, next to ours
    spec = service("chat", template=POD)
    del spec["spec"]["scaleTargetRef"]
    kube_api.create(spec, namespace)
    kube_api.create(training_job("train", workers={"min": 1, "max": 2}), namespace)
    tick(op, admin, namespace)
    owned = [
        ("apps/v1", "Deployment", "chat"),
        ("batch/v1", "Job", "train"),
        ("v1", "Service", "train-rdzv"),
    ]
    for api_version, kind, name in owned:
        admin.get(api_version, kind, namespace, name)  # created by the operator
    other = admin.get("apps/v1", "Deployment", namespace, "other")["metadata"]["resourceVersion"]

    for kind, name in (("InferenceService", "chat"), ("TrainingJob", "train")):
        admin.request("DELETE", admin.path(API_VERSION, kind, namespace, name))
    tick(op, admin, namespace)  # the operator's next tick sees neither

    def gone(api_version: str, kind: str, name: str) -> bool:
        try:
            admin.get(api_version, kind, namespace, name)
        except NotFound:
            return True
        return False

    wait_for("the owned objects to go", lambda: all(gone(*o) for o in owned), timeout=60)
    after = admin.get("apps/v1", "Deployment", namespace, "other")["metadata"]["resourceVersion"]
    assert after == other  # never touched
    assert api_proxy.count("DELETE", "") == 0  # the garbage collector deleted, not the operator
