"""API server faults on the operator's writes: 409 conflicts, 429 throttling, 500/503 errors and
timeouts on the target's scale, a training Job's patch and the status, injected by a proxy in
front of the real kube-apiserver.

A short fault (two failed attempts) is retried with backoff inside the tick: the tick ends
converged. A fault that lasts the whole tick leaves the object for the next tick, which
converges. Either way each decision is acted on once: one scale that reaches the server, one
status write, one event.
"""

from __future__ import annotations

import json
import time

import pytest
from harness.objects import (
    API_VERSION,
    deployment,
    events,
    replicas,
    service,
    status,
    tick,
    training_job,
    vllm_requests,
)

from aiscaler.handlers.tick import run_tick

SCALE = r"/deployments/llm/scale"
STATUS = r"/inferenceservices/llm/status"
NEEDED = range(4, 7)  # 10 requests/s at 3 per replica, with the forecast's spread


def api_error(status: int, reason: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": status,
            "reason": reason,
            "message": f"injected {reason}",
        }
    ).encode()


# name -> what the proxy answers instead of the API server
FAULTS = {
    "409 conflict": {"status": 409, "body": api_error(409, "Conflict")},
    "429 throttled": {
        "status": 429,
        "body": api_error(429, "TooManyRequests"),
        "headers": {"Retry-After": "1"},
    },
    "500 internal error": {"status": 500, "body": api_error(500, "InternalError")},
    "503 unavailable": {"status": 503, "body": api_error(503, "ServiceUnavailable")},
    # The write reaches the server, but its answer comes after the client's timeout.
    "timeout": {"delay_s": 3.0, "forward_after_delay": True},
}


@pytest.fixture
def scaling(kube_api, namespace, make_operator):
    """An operator and a service that needs one scale-up (1 -> about 4 replicas)."""
    op, _, _ = make_operator([vllm_requests(namespace, "llm", 10.0, time.time())])
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)
    return op


def assert_converged_once(admin, namespace: str) -> None:
    """The decision is applied and recorded, with one event."""
    scaled = replicas(admin, namespace, "llm")
    assert scaled in NEEDED
    st = status(admin, namespace, "llm")
    assert st["desiredReplicas"] == st["replicas"] == scaled
    [event] = events(admin, namespace, "llm")
    assert event["type"] == "Normal" and f"-> {scaled} replicas" in event["message"], event


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("path", [SCALE, STATUS])
def test_a_short_fault_is_retried_within_the_tick(
    admin, namespace, scaling, api_proxy, fault, path
):
    api_proxy.inject("PATCH", path, times=2, **FAULTS[fault])

    report = tick(scaling, admin, namespace)

    assert report.errors == [], report.errors
    assert_converged_once(admin, namespace)
    assert api_proxy.count("PATCH", path) == 3  # two failed attempts, then the one that worked


@pytest.mark.parametrize("fault", ["409 conflict", "503 unavailable"])
def test_a_failed_scale_is_done_by_the_next_tick(admin, namespace, scaling, api_proxy, fault):
    api_proxy.inject("PATCH", SCALE, **FAULTS[fault])

    report = tick(scaling, admin, namespace)

    assert report.errors and replicas(admin, namespace, "llm") == 1
    assert "desiredReplicas" not in status(admin, namespace, "llm")  # nothing recorded
    assert events(admin, namespace, "llm") == []

    api_proxy.clear()
    tick(scaling, admin, namespace)
    assert_converged_once(admin, namespace)


def test_a_failed_status_write_is_done_by_the_next_tick_without_a_second_action(
    admin, namespace, scaling, api_proxy
):
    api_proxy.inject("PATCH", STATUS, **FAULTS["503 unavailable"])

    report = tick(scaling, admin, namespace)

    assert report.errors
    assert replicas(admin, namespace, "llm") in NEEDED  # the scale itself went through
    assert "desiredReplicas" not in status(admin, namespace, "llm")
    assert events(admin, namespace, "llm") == []  # the decision is not recorded yet

    api_proxy.clear()
    again = tick(scaling, admin, namespace)

    assert again.resized == {}  # no second scale
    assert_converged_once(admin, namespace)


def test_an_api_server_that_keeps_failing_fails_fast(admin, namespace, scaling, api_proxy):
    # Every call fails: after a few retried calls the rest are tried once, so the tick ends.
    api_proxy.inject("", r"", **FAULTS["503 unavailable"])

    report = tick(scaling, admin, namespace)

    assert report.errors
    assert len(api_proxy.seen) < 20, len(api_proxy.seen)
    api_proxy.clear()
    tick(scaling, admin, namespace)
    assert_converged_once(admin, namespace)


@pytest.mark.parametrize("fault", ["409 conflict", "503 unavailable", "timeout"])
def test_a_training_resize_survives_a_short_fault(
    kube_api, admin, namespace, make_operator, api_proxy, fault
):
    op, _, _ = make_operator([], gpu_budget=8)
    kube_api.create(
        training_job("train", workers={"min": 1, "max": 8, "allowedSizes": [1, 2, 4, 8]}),
        namespace,
    )
    tick(op, admin, namespace)  # creates the Job with 8 workers
    assert admin.get("batch/v1", "Job", namespace, "train")["spec"]["parallelism"] == 8

    op.settings = op.settings.model_copy(update={"gpu_budget": 4})
    api_proxy.inject("PATCH", r"/jobs/train\?", times=2, **FAULTS[fault])
    report = tick(op, admin, namespace)

    assert report.errors == [], report.errors
    job = admin.get("batch/v1", "Job", namespace, "train")
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 4
    history = status(admin, namespace, "train", "TrainingJob")["resizeHistory"]
    assert [(h["from"], h["to"]) for h in history] == [(0, 8), (8, 4)]


def test_a_late_or_lost_watch_event_makes_no_second_decision(admin, namespace, scaling):
    # kopf's index holds what the watch delivered; a broken watch can leave it a version behind.
    index = admin.list(API_VERSION, "InferenceService", namespace)
    run_tick(scaling, index, [], time.time())

    again = run_tick(scaling, index, [], time.time())  # the status write's event never came

    assert (again.status_writes, again.events, again.resized) == (0, 0, {})
    assert_converged_once(admin, namespace)
