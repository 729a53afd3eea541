import pytest

from aiscaler.kube.manifests import (
    BALLOON_LABEL,
    SERVICE_LABEL,
    TRAINING_LABEL,
    FieldManager,
    Owner,
    balloon_deployment,
    is_owned_by,
    owned_deployment,
    owned_training_job,
    rendezvous_service,
    replica_managers,
    training_job_resize,
)

OWNER = Owner("aiscaler.dev/v1alpha1", "InferenceService", "llama", "team-a", "uid-1")
TEMPLATE = {
    "metadata": {"labels": {"app": "llama"}},
    "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}, {"name": "sidecar"}]},
}


def test_owner_of_reads_the_body():
    body = {
        "apiVersion": "aiscaler.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "t", "namespace": "ns", "uid": "u"},
    }
    assert Owner.of(body) == Owner("aiscaler.dev/v1alpha1", "TrainingJob", "t", "ns", "u")


def test_owned_deployment_is_controlled_by_the_service():
    dep = owned_deployment(OWNER, TEMPLATE, replicas=3, gpus_per_replica=2)
    ref = dep["metadata"]["ownerReferences"][0]
    assert ref["uid"] == "uid-1" and ref["controller"] and ref["kind"] == "InferenceService"
    assert is_owned_by(dep, "uid-1")
    assert not is_owned_by(dep, "someone-else")
    assert (dep["metadata"]["name"], dep["metadata"]["namespace"]) == ("llama", "team-a")
    assert dep["spec"]["replicas"] == 3


def test_owned_deployment_selector_matches_its_pods_and_keeps_user_labels():
    dep = owned_deployment(OWNER, TEMPLATE, replicas=1, gpus_per_replica=1)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    for key, value in dep["spec"]["selector"]["matchLabels"].items():
        assert pod_labels[key] == value
    assert pod_labels["app"] == "llama"
    assert pod_labels[SERVICE_LABEL] == "llama"


def test_template_is_not_mutated():
    before = repr(TEMPLATE)
    owned_deployment(OWNER, TEMPLATE, replicas=1, gpus_per_replica=4, node_selector={"a": "b"})
    assert repr(TEMPLATE) == before


@pytest.mark.parametrize(
    ("containers", "gpus", "expected_first", "error"),
    [
        # nobody asks for GPUs: the first container gets them
        ([{"name": "a"}, {"name": "b"}], 2, 2, None),
        # the template already asks for the same number: kept as is
        ([{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}}], 2, "2", None),
        # split over containers, same total: kept
        (
            [
                {"name": "a", "resources": {"limits": {"nvidia.com/gpu": 1}}},
                {"name": "b", "resources": {"limits": {"nvidia.com/gpu": 1}}},
            ],
            2,
            1,
            None,
        ),
        # template and spec disagree: refused with both numbers in the message
        ([{"name": "a", "resources": {"limits": {"nvidia.com/gpu": 1}}}], 4, None, "ask for 1"),
        ([], 1, None, "no containers"),
    ],
)
def test_gpu_resources(containers, gpus, expected_first, error):
    template = {"spec": {"containers": containers}}
    if error:
        with pytest.raises(ValueError, match=error):
            owned_deployment(OWNER, template, replicas=1, gpus_per_replica=gpus)
        return
    dep = owned_deployment(OWNER, template, replicas=1, gpus_per_replica=gpus)
    first = dep["spec"]["template"]["spec"]["containers"][0]
    assert first["resources"]["limits"]["nvidia.com/gpu"] == expected_first


def test_custom_gpu_resource_name_and_pool_node_selector_merge():
    template = {"spec": {"nodeSelector": {"zone": "a"}, "containers": [{"name": "c"}]}}
    dep = owned_deployment(
        OWNER, template, 1, 1, gpu_resource_name="amd.com/gpu", node_selector={"pool": "h100"}
    )
    spec = dep["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"amd.com/gpu": 1}
    assert spec["nodeSelector"] == {"zone": "a", "pool": "h100"}


TRAIN_OWNER = Owner("aiscaler.dev/v1alpha1", "TrainingJob", "pretrain", "ml", "uid-t")


def test_training_job_is_an_elastic_indexed_job():
    template = {
        "spec": {"containers": [{"name": "w", "env": [{"name": "PET_NNODES", "value": "x"}]}]}
    }
    job = owned_training_job(
        TRAIN_OWNER, template, workers=4, min_workers=2, max_workers=8, gpus_per_worker=8
    )
    spec = job["spec"]
    assert spec["parallelism"] == spec["completions"] == 4
    assert spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["subdomain"] == rendezvous_service(TRAIN_OWNER)["metadata"]["name"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["PET_NNODES"] == "x"  # the template's own value wins
    assert env["PET_NPROC_PER_NODE"] == "8"
    assert env["PET_RDZV_ENDPOINT"] == "pretrain-0.pretrain-rdzv:29400"
    assert env["PET_RDZV_ID"] == "uid-t"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert is_owned_by(job, "uid-t")


def test_training_job_default_nnodes_is_min_colon_max():
    job = owned_training_job(TRAIN_OWNER, {"spec": {"containers": [{"name": "w"}]}}, 3, 1, 6, 1)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"] == "1:6"


def test_resize_patches_parallelism_and_completions_together():
    # an elastic Indexed Job accepts a resize only when both stay equal
    assert training_job_resize(5) == {
        "spec": {"suspend": False, "parallelism": 5, "completions": 5}
    }
    # Zero completions would complete the Job for good: zero workers suspends it.
    assert training_job_resize(0) == {"spec": {"suspend": True}}


def test_rendezvous_service_is_headless_and_selects_the_workers():
    svc = rendezvous_service(TRAIN_OWNER)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {TRAINING_LABEL: "pretrain"}
    assert is_owned_by(svc, "uid-t")


def test_balloons_are_low_priority_pause_pods_on_the_pool():
    dep = balloon_deployment(
        "aiscaler",
        "h100",
        balloons=3,
        gpus_per_balloon=8,
        node_selector={"pool": "h100"},
        priority_class="aiscaler-balloon",
    )
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "aiscaler-balloon"
    assert pod["nodeSelector"] == {"pool": "h100"}
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 8}
    assert dep["spec"]["selector"]["matchLabels"] == {BALLOON_LABEL: "h100"}
    assert "ownerReferences" not in dep["metadata"]


def test_balloons_go_with_their_priority_class():
    owner = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "name": "aiscaler-balloon",
        "uid": "u-1",
    }
    dep = balloon_deployment("aiscaler", "h100", 1, 8, {}, "aiscaler-balloon", owner=owner)
    assert dep["metadata"]["ownerReferences"] == [owner]


@pytest.mark.parametrize(
    ("refs", "owned"),
    [
        (None, False),
        ([], False),
        ([{"uid": "uid-1", "controller": False}], False),  # an owner, but not the controller
        ([{"uid": "other", "controller": True}], False),
        ([{"uid": "other"}, {"uid": "uid-1", "controller": True}], True),
    ],
)
def test_is_owned_by(refs, owned):
    assert is_owned_by({"metadata": {"ownerReferences": refs}}, "uid-1") is owned


def test_replica_managers_are_the_owners_of_the_count_latest_last():
    def entry(manager, operation, time, fields, subresource=None):
        found = {"manager": manager, "operation": operation, "time": time, "fieldsV1": fields}
        return found | ({"subresource": subresource} if subresource else {})

    obj = {
        "metadata": {
            "managedFields": [
                entry("kubectl", "Update", "2026-11-28T12:05:00Z", {"f:spec": {"f:replicas": {}}}),
                entry(
                    "argocd-controller",
                    "Apply",
                    "2026-11-28T12:00:00Z",
                    {"f:spec": {"f:replicas": {}, "f:template": {}}},
                ),
                entry("gitops", "Apply", "2026-11-28T12:09:00Z", {"f:spec": {"f:template": {}}}),
                # a /scale write of a kind whose count is another field
                entry(
                    "aiscaler",
                    "Apply",
                    "2026-11-28T12:07:00Z",
                    {"f:spec": {"f:workers": {}}},
                    "scale",
                ),
            ]
        }
    }
    assert replica_managers(obj) == (
        FieldManager("argocd-controller", "Apply"),
        FieldManager("kubectl", "Update"),
        FieldManager("aiscaler", "Apply"),
    )
    assert replica_managers({"metadata": {}}) == ()
