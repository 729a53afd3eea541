"""Prometheus faults: down, slow, HTTP errors, garbage, empty answers, NaN and +Inf, counter
resets, stale series, a huge value, a query that suddenly matches two series.

Each test starts from a Deployment at 12 replicas whose service needs about 4 (10 requests/s at
3 per replica). Under a fault the operator holds the 12 (never a scale-down on missing data) and
says why in the Degraded condition; once the fault is gone, it scales down and Degraded clears.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from harness.objects import (
    HISTORY_S,
    STEP_S,
    condition,
    deployment,
    events,
    replicas,
    service,
    status,
    tick,
    vllm_requests,
)
from harness.prometheus import Series

HELD = 12  # the Deployment's replicas before the operator acts
NEEDED = range(4, 7)  # what 10 requests/s at 3 per replica asks for (with the forecast's spread)


def start(kube_api: Any, namespace: str, make_operator: Any, history: list[Series], **spec: Any):
    op, prometheus, proxy = make_operator(history)
    kube_api.apply(deployment("llm", HELD), namespace)
    kube_api.create(service("llm", **spec), namespace)
    return op, prometheus, proxy


def assert_held_and_degraded(admin: Any, namespace: str, reason_in_message: str) -> None:
    assert replicas(admin, namespace, "llm") == HELD
    degraded = condition(admin, namespace, "llm", "Degraded")
    assert degraded["status"] == "True", degraded
    assert degraded["reason"] in ("MetricsMissing", "MetricsStale", "MetricsInvalid"), degraded
    assert reason_in_message in degraded["message"], degraded


def assert_recovered(admin: Any, namespace: str) -> None:
    assert replicas(admin, namespace, "llm") in NEEDED
    assert condition(admin, namespace, "llm", "Degraded")["status"] == "False"


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"status": "error", "errorType": error_type, "error": message}).encode()


EMPTY_MATRIX = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})

# name -> (the proxy's answer to every query, the reason the Degraded message names)
ANSWERS: dict[str, tuple[dict[str, Any], str]] = {
    "slow beyond the timeout": ({"delay_s": 3.0}, "PrometheusTimeout"),
    "HTTP 500 from a proxy": (
        {"status": 500, "body": b"<html>Internal Server Error</html>"},
        "PrometheusUnreachable",
    ),
    "HTTP 503 unavailable": (
        {"status": 503, "body": error_body("unavailable", "shutting down")},
        "PrometheusUnreachable",
    ),
    "HTTP 429 from a proxy": ({"status": 429, "body": b"slow down"}, "PrometheusBadResponse"),
    "query timeout in Prometheus": (
        {"status": 503, "body": error_body("timeout", "query timed out in expression evaluation")},
        "PrometheusTimeout",
    ),
    "bad_data": ({"status": 400, "body": error_body("bad_data", "parse error")}, "BadQuery"),
    "garbage with 200": ({"status": 200, "body": b"<html>login</html>"}, "PrometheusBadResponse"),
    "empty result": ({"status": 200, "body": EMPTY_MATRIX.encode()}, "MetricsMissing"),
}


@pytest.mark.parametrize("fault", sorted(ANSWERS))
def test_a_failing_prometheus_holds_says_why_and_recovers(
    kube_api, namespace, admin, make_operator, fault
):
    answer, reason = ANSWERS[fault]
    op, _, proxy = start(
        kube_api, namespace, make_operator, [vllm_requests(namespace, "llm", 10.0, time.time())]
    )
    proxy.inject("", r"/api/v1/query", **answer)

    report = tick(op, admin, namespace)

    assert_held_and_degraded(admin, namespace, reason)
    assert report.resized == {}, report.resized

    proxy.clear()
    tick(op, admin, namespace)

    assert_recovered(admin, namespace)


def test_prometheus_down_holds_and_the_restarted_one_is_used(
    kube_api, namespace, admin, make_operator
):
    op, prometheus, _ = start(
        kube_api, namespace, make_operator, [vllm_requests(namespace, "llm", 10.0, time.time())]
    )
    prometheus.stop()

    tick(op, admin, namespace)

    assert_held_and_degraded(admin, namespace, "PrometheusUnreachable")
    tick(op, admin, namespace)  # still down: nothing new to say
    [warning] = events(admin, namespace, "llm")
    assert (warning["type"], warning["reason"]) == ("Warning", "MetricsMissing")

    prometheus.start()
    tick(op, admin, namespace)

    assert_recovered(admin, namespace)


def gauge(namespace: str, values: list[tuple[float, float]], **labels: str) -> Series:
    """`demand_rps` of the service (a gauge the custom query reads)."""
    return Series("demand_rps", {"namespace": namespace, **labels}, values)


def recent(end: float, value_at: Any) -> list[tuple[float, float]]:
    """Six hours of points at STEP_S ending at `end`, valued by `value_at(seconds before end)`."""
    return [(end - age, value_at(age)) for age in range(HISTORY_S, -1, -STEP_S)]


CUSTOM = {"demand": {"preset": "custom", "query": "demand_rps"}}


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_infinite_demand_holds(kube_api, namespace, admin, make_operator, bad):
    now = time.time()
    values = recent(now, lambda age: bad if age < 600 else 10.0)
    op, _, _ = start(kube_api, namespace, make_operator, [gauge(namespace, values)], **CUSTOM)

    tick(op, admin, namespace)

    assert_held_and_degraded(admin, namespace, "MetricNotFinite")


def test_counter_resets_change_nothing(kube_api, namespace, admin, make_operator):
    now = time.time()
    steady = vllm_requests(namespace, "llm", 10.0, now)
    # The same 10 requests/s, with the counter back at 0 (a restarted vLLM pod) 45 and 5 minutes
    # ago: rate() sees through the resets.
    resets = [now - 45 * 60, now - 5 * 60]
    samples = [
        (t, 10.0 * (t - max([r for r in resets if r <= t], default=steady.samples[0][0])))
        for t, _ in steady.samples
    ]
    op, _, _ = start(
        kube_api, namespace, make_operator, [Series(steady.name, steady.labels, samples)]
    )

    tick(op, admin, namespace)

    assert replicas(admin, namespace, "llm") in NEEDED
    assert condition(admin, namespace, "llm", "Degraded")["status"] == "False"


def test_a_stale_series_holds(kube_api, namespace, admin, make_operator):
    # The counter stopped 20 minutes ago (the exporter is gone): no demand now.
    stopped = vllm_requests(namespace, "llm", 10.0, time.time() - 20 * 60)
    op, _, _ = start(kube_api, namespace, make_operator, [stopped])

    tick(op, admin, namespace)

    assert_held_and_degraded(admin, namespace, "")
    assert "no demand sample" in condition(admin, namespace, "llm", "Degraded")["message"]


@pytest.mark.parametrize("huge", [1e12, 1e300, 1.7e308])
def test_a_huge_value_is_a_bounded_change(kube_api, namespace, admin, make_operator, huge):
    now = time.time()
    values = recent(now, lambda age: huge if age < 300 else 10.0)
    op, _, _ = start(
        kube_api,
        namespace,
        make_operator,
        [gauge(namespace, values)],
        policy={"scaleUp": {"maxReplicas": 4, "maxPercent": 10, "periodSeconds": 60}},
        **CUSTOM,
    )

    report = tick(op, admin, namespace)

    assert report.errors == [], report.errors
    # Up by at most the scale-up policy (4 per period), never beyond replicas.max (20).
    assert HELD < replicas(admin, namespace, "llm") <= HELD + 4
    st = status(admin, namespace, "llm")
    assert st["desiredReplicas"] == replicas(admin, namespace, "llm")
    assert condition(admin, namespace, "llm", "ScalingLimited")["status"] == "True"


def test_a_query_that_suddenly_matches_two_series_holds(kube_api, namespace, admin, make_operator):
    now = time.time()
    one = gauge(namespace, recent(now, lambda age: 10.0), pod="a")
    # A second pod's series appears five minutes ago: the query now returns two series.
    two = gauge(
        namespace, [(t, v) for t, v in recent(now, lambda age: 1.0) if t > now - 300], pod="b"
    )
    op, _, _ = start(kube_api, namespace, make_operator, [one, two], **CUSTOM)

    tick(op, admin, namespace)

    assert_held_and_degraded(admin, namespace, "returns 2 series")
