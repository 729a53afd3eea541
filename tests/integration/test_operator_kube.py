"""The Kubernetes adapter against a real kube-apiserver (no controllers run: objects are
checked as the API server stores them)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from aiscaler.kube.client import KubeApi, NotFound, NotOwned, ScaleState, TargetRef
from aiscaler.kube.lease import try_lead
from aiscaler.kube.manifests import FIELD_MANAGER, FieldManager, Owner, owned_deployment

REPO = Path(__file__).resolve().parents[2]
POD = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


def deployment(name: str, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "x"}}, "template": POD},
    }


@pytest.fixture
def api(kube_api) -> KubeApi:
    return KubeApi(kube_api.new_api_client())


def test_read_and_scale_through_the_scale_subresource(kube_api, namespace, api):
    kube_api.apply(deployment("web", 2), namespace)
    ref = TargetRef("apps/v1", "Deployment", "web")
    missing = TargetRef("apps/v1", "Deployment", "nope")
    states = api.read_scales([(namespace, ref), (namespace, missing)])
    tests_apply = FieldManager("aiscaler-tests", "Apply")
    assert states[(namespace, ref)] == ScaleState(2, 0, (tests_apply,))
    assert isinstance(states[(namespace, missing)], NotFound)
    assert states[(namespace, missing)].__traceback__ is None  # a value: no frames held

    api.scale(namespace, ref, 5)
    # aiscaler owns the replica count alone now, and nothing else of the Deployment
    assert api.read_scale(namespace, ref) == ScaleState(
        5, 0, (FieldManager(FIELD_MANAGER, "Apply"),)
    )
    stored = api.get("apps/v1", "Deployment", namespace, "web")
    assert stored["spec"]["replicas"] == 5
    [ours] = [m for m in stored["metadata"]["managedFields"] if m["manager"] == FIELD_MANAGER]
    assert (ours["operation"], ours["subresource"]) == ("Apply", "scale")
    assert ours["fieldsV1"] == {"f:spec": {"f:replicas": {}}}


def test_claiming_the_replica_count_at_its_value_shares_it(kube_api, namespace, api):
    kube_api.apply(deployment("web", 2), namespace)  # a manifest holding replicas: 2
    ref = TargetRef("apps/v1", "Deployment", "web")

    api.scale(namespace, ref, 2)

    shared = api.read_scale(namespace, ref)
    assert {m.name for m in shared.managers or ()} == {"aiscaler-tests", FIELD_MANAGER}
    # the manifest drops replicas: the count stays, aiscaler's alone
    without = deployment("web", 2)
    del without["spec"]["replicas"]
    kube_api.apply(without, namespace)
    assert api.read_scale(namespace, ref) == ScaleState(
        2, 0, (FieldManager(FIELD_MANAGER, "Apply"),)
    )


def test_targets_in_many_namespaces_are_read_with_one_list_each_in_parallel(kube_api, api):
    spaces = [kube_api.create_namespace() for _ in range(5)]
    try:
        for i, space in enumerate(spaces[:4]):
            kube_api.apply(deployment("web", i + 1), space)
            kube_api.apply(deployment("api", 10 + i), space)
        targets = [
            (space, TargetRef("apps/v1", "Deployment", name))
            for space in spaces
            for name in ("web", "api")
        ]
        with ThreadPoolExecutor(4) as pool:
            parallel = api.read_scales(targets, pool)
        sequential = api.read_scales(targets)
        for i in range(4):
            web, other = targets[2 * i], targets[2 * i + 1]
            assert parallel[web] == sequential[web]
            assert parallel[other] == sequential[other]
            assert (parallel[web].replicas, parallel[other].replicas) == (i + 1, 10 + i)
        for key in targets[8:]:  # the namespace without Deployments
            assert isinstance(parallel[key], NotFound) and isinstance(sequential[key], NotFound)
    finally:
        for space in spaces:
            kube_api.delete_namespace(space)


def test_apply_owned_deployment_and_refuse_what_is_not_ours(kube_api, namespace, api):
    owner = Owner("aiscaler.dev/v1alpha1", "InferenceService", "llm", namespace, "uid-123")
    api.apply(owned_deployment(owner, POD, 1, 2), owner_uid="uid-123")
    stored = api.get("apps/v1", "Deployment", namespace, "llm")
    [ref] = stored["metadata"]["ownerReferences"]
    assert (ref["uid"], ref["controller"]) == ("uid-123", True)
    limits = stored["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "2"}
    # Applying again as the owner works; anyone else's Deployment of that name is left alone.
    api.apply(owned_deployment(owner, POD, 3, 2), owner_uid="uid-123")
    assert api.get("apps/v1", "Deployment", namespace, "llm")["spec"]["replicas"] == 3
    kube_api.apply(deployment("theirs", 1), namespace)
    theirs = Owner("aiscaler.dev/v1alpha1", "InferenceService", "theirs", namespace, "uid-9")
    with pytest.raises(NotOwned):
        api.apply(owned_deployment(theirs, POD, 7, 1), owner_uid="uid-9")
    after = api.get("apps/v1", "Deployment", namespace, "theirs")
    assert after["spec"]["replicas"] == 1 and "ownerReferences" not in after["metadata"]


def test_free_gpus_per_pool_from_nodes_and_bound_pods(kube_api, namespace, api):
    suffix = namespace.split("-")[-1]
    pool = {"aiscaler.dev/test-pool": suffix}
    for i in range(2):
        kube_api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"gpu-{suffix}-{i}", "labels": pool},
                "status": {
                    "allocatable": {"nvidia.com/gpu": "8", "cpu": "32", "pods": "110"},
                    "capacity": {"nvidia.com/gpu": "8", "cpu": "32", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    kube_api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "trainer"},
            "spec": {
                "nodeName": f"gpu-{suffix}-0",
                "containers": [
                    {"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "3"}}}
                ],
            },
        },
        namespace,
    )
    pools = api.gpu_pools({"p": pool})
    assert (pools["p"].nodes, pools["p"].allocatable, pools["p"].free) == (2, 16, 13)


def test_events_are_recorded_on_the_object(kube_api, namespace, api):
    kube_api.apply(deployment("web", 1), namespace)
    body = api.get("apps/v1", "Deployment", namespace, "web")
    api.event(body, "ForecastPeak", "scaled 1 -> 3", time.time())
    events = api.list("v1", "Event", namespace)
    assert [(e["reason"], e["involvedObject"]["name"], e["type"]) for e in events] == [
        ("ForecastPeak", "web", "Normal")
    ]


def test_only_one_of_two_replicas_leads(namespace, api):
    now = time.time()
    assert try_lead(api, namespace, "aiscaler-leader", "a", now, 15) == (True, "acquired")
    assert try_lead(api, namespace, "aiscaler-leader", "b", now + 1, 15) == (False, "held by a")
    assert try_lead(api, namespace, "aiscaler-leader", "a", now + 10, 15) == (True, "renewed")
    # a stops renewing: b takes over once the lease has expired
    assert try_lead(api, namespace, "aiscaler-leader", "b", now + 20, 15)[0] is False
    assert try_lead(api, namespace, "aiscaler-leader", "b", now + 26, 15) == (True, "acquired")
    assert try_lead(api, namespace, "aiscaler-leader", "a", now + 27, 15)[0] is False


def test_the_shipped_cluster_role_is_enough_and_no_more(kube_api, namespace):
    docs = list(yaml.safe_load_all((REPO / "deploy" / "aiscaler.yaml").read_text()))
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    kube_api.apply(role)
    kubeconfig = kube_api.service_account_kubeconfig(
        namespace, "aiscaler", role["metadata"]["name"]
    )
    from aiscaler.kube.client import KubeError, load_api_client

    api = KubeApi(load_api_client(str(kubeconfig)))
    kube_api.apply(deployment("web", 1), namespace)
    ref = TargetRef("apps/v1", "Deployment", "web")
    api.scale(namespace, ref, 2)
    assert api.read_scales([(namespace, ref)])[(namespace, ref)].replicas == 2
    owner = Owner("aiscaler.dev/v1alpha1", "InferenceService", "own", namespace, "uid-1")
    api.apply(owned_deployment(owner, POD, 1, 1), owner_uid="uid-1")
    api.gpu_pools({"p": {"x": "y"}})
    # least privilege: no deletes, no secrets
    with pytest.raises(KubeError) as denied:
        api.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert denied.value.status == 403
    with pytest.raises(KubeError) as denied:
        api.list("v1", "Secret", namespace)
    assert denied.value.status == 403
