import pytest

from aiscaler.kube.gpus import PoolGpus, gpus_per_pool, pod_gpu_request


def node(name, gpus, labels, ready="True", unschedulable=False):
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64"},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def pod(node_name, gpus, phase="Running", init=0, labels=None):
    spec = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": gpus}}}]}
    if node_name:
        spec["nodeName"] = node_name
    if init:
        spec["initContainers"] = [{"resources": {"requests": {"nvidia.com/gpu": init}}}]
    return {"metadata": {"labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


H100 = {"pool": "h100"}


@pytest.mark.parametrize(
    ("pods", "expected_free"),
    [
        ([], 16),
        ([pod("n1", 3)], 13),
        ([pod("n1", 8), pod("n1", 8)], 8),  # over-committed node counts as 0 free, never negative
        ([pod("n1", 2, phase="Succeeded"), pod("n1", 2, phase="Failed")], 16),  # finished
        ([pod(None, 8, phase="Pending")], 16),  # unscheduled: demand, not usage
        ([pod("n2", 1, init=4)], 12),  # init container larger than the main containers
        ([pod("elsewhere", 8)], 16),  # a node outside the pool
        ([pod("n1", 8, labels={"aiscaler.dev/balloon-pool": "h100"})], 16),  # balloons are free
        # A pending balloon's node is on its way: a replica scaled now will find its GPUs.
        ([pod(None, 8, phase="Pending", labels={"aiscaler.dev/balloon-pool": "h100"})], 24),
        ([pod(None, 8, phase="Pending", labels={"aiscaler.dev/balloon-pool": "a100"})], 16),
        ([pod(None, 8, phase="Failed", labels={"aiscaler.dev/balloon-pool": "h100"})], 16),
    ],
)
def test_free_gpus(pods, expected_free):
    nodes = [node("n1", 8, H100), node("n2", 8, H100), node("elsewhere", 8, {"pool": "a100"})]
    result = gpus_per_pool(nodes, pods, {"h100": H100})
    assert result["h100"] == PoolGpus(nodes=2, allocatable=16, free=expected_free)


def test_not_ready_and_cordoned_nodes_are_not_capacity():
    nodes = [
        node("ok", 8, H100),
        node("notready", 8, H100, ready="False"),
        node("cordoned", 8, H100, unschedulable=True),
    ]
    assert gpus_per_pool(nodes, [], {"h100": H100})["h100"] == PoolGpus(1, 8, 8)


def test_each_pool_by_its_selector_and_empty_pool():
    nodes = [node("a", 8, {"pool": "h100", "zone": "x"}), node("b", 4, {"pool": "a100"})]
    result = gpus_per_pool(
        nodes, [pod("b", 1)], {"h100": H100, "a100": {"pool": "a100"}, "none": {"pool": "b200"}}
    )
    assert result == {
        "h100": PoolGpus(1, 8, 8),
        "a100": PoolGpus(1, 4, 3),
        "none": PoolGpus(0, 0, 0),
    }


def test_pod_gpu_request_prefers_requests_and_ignores_other_resources():
    p = {
        "spec": {
            "containers": [
                {
                    "resources": {
                        "requests": {"nvidia.com/gpu": "2"},
                        "limits": {"nvidia.com/gpu": "2"},
                    }
                },
                {"resources": {"limits": {"cpu": "1"}}},
                {},
            ]
        }
    }
    assert pod_gpu_request(p, "nvidia.com/gpu") == 2
    assert pod_gpu_request(p, "amd.com/gpu") == 0
