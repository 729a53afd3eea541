"""Engine presets: names per engine and version, and the batch queries built from them."""

from __future__ import annotations

import promql_parser as pp
import pytest

from aiscaler.metrics import presets
from aiscaler.metrics.errors import BadQuery
from aiscaler.metrics.guard import confine, selector_namespace_matchers

BY = ("namespace", "model_name")


def metric_names(query: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")

    pp.walk(pp.parse(query), visit)
    return names


def all_queries() -> list[tuple[str, str]]:
    out = []
    for engine, preset in presets.PRESETS.items():
        out.append((engine, presets.served_query(engine, BY, 120)))
        out.append((engine, presets.queue_query(engine, BY, 120)))
        out.append((engine, presets.demand_query(engine, "requestsPerSecond", BY, 120)))
        if preset.tokens:
            out.append((engine, presets.demand_query(engine, "tokensPerSecond", BY, 120)))
        for metric in preset.latency:
            out.append((engine, presets.latency_query(engine, metric, 0.95, BY, 120)))
    return out


@pytest.mark.parametrize(("engine", "query"), all_queries())
def test_every_preset_query_is_valid_promql_that_the_guard_confines(
    engine: str, query: str
) -> None:
    confined = confine(query, ["team-a", "team-b"])
    assert all(m == ['namespace=~"team-a|team-b"'] for m in selector_namespace_matchers(confined))


@pytest.mark.parametrize(("engine", "query"), all_queries())
def test_every_preset_query_groups_by_namespace_and_selector_labels(
    engine: str, query: str
) -> None:
    groupings: list[list[str]] = []

    def visit(node: object) -> None:
        if isinstance(node, pp.AggregateExpr):
            groupings.append(list(node.modifier.labels) if node.modifier else [])

    pp.walk(pp.parse(query), visit)
    assert groupings
    assert all(g[:2] == ["namespace", "model_name"] for g in groupings)


@pytest.mark.parametrize(
    ("make", "names"),
    [
        # Old and new names of the same thing are joined with `or`, newest first.
        (
            lambda: presets.demand_query("vllm", "requestsPerSecond", BY, 60),
            {
                "vllm:request_success_total",
                "vllm:e2e_request_latency_seconds_count",
                "vllm:num_requests_waiting",  # finished + what the engine holds more of
                "vllm:num_requests_running",
            },
        ),
        (
            lambda: presets.latency_query("vllm", "queue", 0.9, BY, 60),
            {"vllm:request_queue_time_seconds_bucket", "vllm:time_in_queue_requests_bucket"},
        ),
        (
            lambda: presets.demand_query("vllm", "tokensPerSecond", BY, 60),
            {"vllm:generation_tokens_total"},
        ),
        (lambda: presets.queue_query("vllm", BY, 60), {"vllm:num_requests_waiting"}),
        (
            lambda: presets.latency_query("vllm", "ttft", 0.9, BY, 60),
            {"vllm:time_to_first_token_seconds_bucket"},
        ),
        (
            lambda: presets.demand_query("sglang", "requestsPerSecond", BY, 60),
            {
                "sglang:num_requests_total",
                "sglang:e2e_request_latency_seconds_count",
                "sglang:num_queue_reqs",
                "sglang:num_running_reqs",
            },
        ),
        (lambda: presets.queue_query("sglang", BY, 60), {"sglang:num_queue_reqs"}),
        (lambda: presets.demand_query("tgi", "requestsPerSecond", BY, 60), {"tgi_request_count"}),
        (
            lambda: presets.demand_query("tgi", "tokensPerSecond", BY, 60),
            {"tgi_request_generated_tokens_sum"},
        ),
        (lambda: presets.queue_query("tgi", BY, 60), {"tgi_queue_size"}),
        (
            lambda: presets.demand_query("triton", "requestsPerSecond", BY, 60),
            {
                "nv_inference_request_success|nv_inference_request_failure",
                "nv_inference_pending_request_count",
            },
        ),
        (
            lambda: presets.latency_query("triton", "queue", 0.9, BY, 60),
            {"nv_inference_queue_duration_us", "nv_inference_request_success"},
        ),
        (lambda: presets.queue_query("triton", BY, 60), {"nv_inference_pending_request_count"}),
        (lambda: presets.gpu_utilisation_query(60), {"DCGM_FI_DEV_GPU_UTIL"}),
    ],
)
def test_metric_names(make: object, names: set[str]) -> None:
    assert metric_names(make()) == names  # type: ignore[operator]


def test_vllm_served_excludes_aborted_requests() -> None:
    query = presets.served_query("vllm", BY, 60)
    assert 'vllm:request_success_total{finished_reason!="abort"}' in query


def test_triton_milliseconds_and_microseconds_are_converted_to_seconds() -> None:
    assert presets.latency_query("triton", "ttft", 0.9, BY, 60).endswith(" * 0.001")
    assert presets.latency_query("triton", "e2e", 0.9, BY, 60).endswith(" * 1e-06")


@pytest.mark.parametrize(
    ("call", "why"),
    [
        (lambda: presets.latency_query("tgi", "ttft", 0.9, BY, 60), "no 'ttft' latency"),
        (lambda: presets.demand_query("triton", "tokensPerSecond", BY, 60), "no generated-token"),
        (lambda: presets.demand_query("vllm", "bytesPerSecond", BY, 60), "unknown demand unit"),
        (lambda: presets.served_query("ollama", BY, 60), "unknown preset 'ollama'"),
        (lambda: presets.latency_query("vllm", "ttft", 1.0, BY, 60), "not within"),
        (lambda: presets.latency_query("vllm", "ttft", 0.0, BY, 60), "not within"),
    ],
)
def test_unsupported_combinations_are_bad_queries(call: object, why: str) -> None:
    with pytest.raises(BadQuery, match=why):
        call()  # type: ignore[operator]


def test_group_labels_put_namespace_first_then_sorted_keys() -> None:
    assert presets.group_labels(["pod", "model_name"]) == ("namespace", "model_name", "pod")
    assert presets.group_labels([]) == ("namespace",)


@pytest.mark.parametrize(
    "key", ["app.kubernetes.io/name", "1abc", "a-b", "__name__", "namespace", ""]
)
def test_selector_keys_that_are_not_usable_label_names_are_rejected(key: str) -> None:
    with pytest.raises(BadQuery, match="selector key"):
        presets.group_labels([key])
