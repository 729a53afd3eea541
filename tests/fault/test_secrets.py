"""The Prometheus bearer token never shows in the operator's logs, events or status, whatever
Prometheus (or an authenticating proxy in front of it) answers, even an answer that repeats it."""

from __future__ import annotations

import json
import logging
import secrets
import time

import pytest
from harness.objects import (
    API_VERSION,
    condition,
    deployment,
    replicas,
    service,
    tick,
    vllm_requests,
)

from aiscaler.metrics.prometheus import PrometheusMetrics

# name -> the proxy's answer; some repeat the token, as a careless auth proxy might.
ANSWERS = {
    "accepted": None,
    "401 repeating the token": {"status": 401, "body": b"invalid bearer token TOKEN"},
    "500 repeating the token": {"status": 500, "body": b"<html>Authorization: Bearer TOKEN</html>"},
    "403 API error": {
        "status": 403,
        "body": b'{"status":"error","errorType":"forbidden","error":"token TOKEN not allowed"}',
    },
    "200 garbage": {"status": 200, "body": b"<p>hello TOKEN</p>"},
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_the_bearer_token_is_sent_and_never_shown(
    kube_api, namespace, admin, make_operator, tmp_path, caplog, answer
):
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    op, _, proxy = make_operator(
        [vllm_requests(namespace, "llm", 10.0, time.time())],
        prometheus_bearer_token_file=token_file,
    )
    op.metrics = PrometheusMetrics(proxy.url, bearer_token_file=token_file, timeout_s=1.0)
    if ANSWERS[answer] is not None:
        fault = dict(ANSWERS[answer])
        fault["body"] = fault["body"].replace(b"TOKEN", token.encode())
        proxy.inject("", r"/api/v1/", **fault)
    kube_api.apply(deployment("llm", 1), namespace)
    kube_api.create(service("llm"), namespace)

    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            report = tick(op, admin, namespace)
    op.metrics.close()

    sent = {s.headers.get("Authorization") for s in proxy.seen}
    assert sent == {f"Bearer {token}"}  # it is used
    shown = {
        "logs": caplog.text,
        "report": repr(report),
        "status": json.dumps(admin.get(API_VERSION, "InferenceService", namespace, "llm")),
        "events": json.dumps(admin.list("v1", "Event", namespace)),
    }
    assert [where for where, text in shown.items() if token in text] == []


def test_an_unreadable_token_file_holds_and_says_so(
    kube_api, namespace, admin, make_operator, tmp_path
):
    op, _, proxy = make_operator([vllm_requests(namespace, "llm", 10.0, time.time())])
    op.metrics = PrometheusMetrics(proxy.url, bearer_token_file=tmp_path / "gone", timeout_s=1.0)
    kube_api.apply(deployment("llm", 12), namespace)
    kube_api.create(service("llm"), namespace)

    tick(op, admin, namespace)
    op.metrics.close()

    assert replicas(admin, namespace, "llm") == 12  # no scale-down on missing data
    degraded = condition(admin, namespace, "llm", "Degraded")
    assert degraded["status"] == "True"
    assert "cannot read the bearer token file" in degraded["message"]
    assert proxy.seen == []  # nothing was sent without the token
