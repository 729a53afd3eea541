"""Custom resources made bad at random, handed to the operator's tick as its index would hold
them (a spec the API server stored under an older schema, or one a webhook-less cluster let
through): the tick ends in bounded time, never raises, and acts on no invalid object. Its
verdict is the Invalid condition with one `field: problem` line per problem."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from harness.objects import API_VERSION, condition, deployment, service, vllm_requests
from harness.specs import broken
from hypothesis import HealthCheck, event, given, settings

from aiscaler.handlers.mapping import parse_service
from aiscaler.handlers.tick import Operator, TickReport, run_tick
from aiscaler.kube.client import TargetRef

HELD = 3
TICK_LIMIT_S = 60.0  # a hung tick fails the test instead of hanging it
VALID = service("llm", replicas={"min": 1, "max": 8})
TARGET = TargetRef("apps/v1", "Deployment", "llm")


@pytest.fixture
def world(kube_api, namespace, admin, make_operator) -> dict[str, Any]:
    op, _, _ = make_operator([vllm_requests(namespace, "llm", 10.0, time.time())])
    kube_api.apply(deployment("llm", HELD), namespace)
    kube_api.create(VALID, namespace)
    return {"op": op, "stored": admin.get(API_VERSION, "InferenceService", namespace, "llm")}


def tick_within_limit(op: Operator, body: dict[str, Any]) -> TickReport:
    done: list[TickReport | BaseException] = []

    def run() -> None:
        try:
            done.append(run_tick(op, [body], [], time.time()))
        except BaseException as error:  # reported below, in the test's thread
            done.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TICK_LIMIT_S)
    assert done, f"the tick did not end within {TICK_LIMIT_S}s"
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=broken(VALID))
def test_any_spec_is_handled_and_an_invalid_one_is_not_acted_on(
    namespace, admin, world, spec: dict[str, Any]
):
    stored = world["stored"]
    body = {**stored, "spec": spec["spec"]}
    admin.patch(API_VERSION, "InferenceService", namespace, "llm", {"status": None}, "status")
    admin.scale(namespace, TARGET, HELD)
    before = {
        d["metadata"]["name"]: d["metadata"]["resourceVersion"]
        for d in admin.list("apps/v1", "Deployment", namespace)
    }
    op: Operator = world["op"]
    fresh = Operator(op.kube, op.metrics, op.forecaster, op.settings, op.namespace)

    report = tick_within_limit(fresh, body)

    after = {
        d["metadata"]["name"]: d["metadata"]["resourceVersion"]
        for d in admin.list("apps/v1", "Deployment", namespace)
    }
    parsed = parse_service(body, fresh.pool_specs())
    event("invalid" if isinstance(parsed, list) else "valid")
    if isinstance(parsed, list):
        assert after == before  # nothing acted on
        assert report.invalid == {f"{namespace}/llm": parsed}
        invalid = condition(admin, namespace, "llm", "Invalid")
        assert invalid["status"] == "True" and invalid["message"] == "; ".join(parsed)
    else:
        assert set(after) == set(before)  # no object made or lost
        scaled = admin.get("apps/v1", "Deployment", namespace, "llm")["spec"]["replicas"]
        target_is_llm = parsed.spec.scale_target_ref and parsed.spec.scale_target_ref.name == "llm"
        if not target_is_llm or parsed.spec.policy.mode == "recommend":
            assert after == before
        else:
            assert parsed.spec.replicas.min <= scaled <= max(parsed.spec.replicas.max, HELD)
