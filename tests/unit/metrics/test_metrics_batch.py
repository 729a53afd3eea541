"""Planning one tick's queries and attributing the answers to services. Pure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiscaler.metrics.batch import Batch, RangeQuery, Settings, assemble, plan
from aiscaler.metrics.errors import BadQuery, Empty, MetricError, Stale, Unreachable
from aiscaler.metrics.guard import selector_namespace_matchers
from aiscaler.metrics.readings import Series
from aiscaler.metrics.source import History, JobQuery, Sample, ServiceQuery

NOW = 1_700_000_000.0
SETTINGS = Settings(
    history_step_s=60,
    history_points=5,
    window_s=120,
    probe_s=300,
    probe_step_s=15,
    stale_after_s=90,
)


def vllm(namespace: str, name: str, model: str = "m", **kw: object) -> ServiceQuery:
    return ServiceQuery(namespace, name, selector={"model_name": model}, **kw)  # type: ignore[arg-type]


def kinds(batches: list[Batch]) -> list[str]:
    return sorted(b.kind for b in batches)


def test_services_of_one_engine_and_selector_shape_share_one_query_per_kind() -> None:
    services = [vllm(f"ns-{i % 10}", f"svc-{i}", model=f"m{i}") for i in range(100)]
    batches = plan(services, [], NOW, SETTINGS)
    assert kinds(batches) == ["demand", "gpu", "latency", "queue", "served"]
    for batch in batches:
        assert isinstance(batch.query, RangeQuery)
        expected = 'namespace=~"' + "|".join(f"ns-{i}" for i in range(10)) + '"'
        assert all(m == [expected] for m in selector_namespace_matchers(batch.query.promql))


def test_different_engines_units_metrics_and_selector_keys_get_their_own_queries() -> None:
    services = [
        vllm("a", "one"),
        vllm("a", "two", unit="tokensPerSecond"),
        vllm("a", "three", latency_metric="e2e"),
        ServiceQuery("a", "four", preset="tgi", latency_metric="e2e"),
        ServiceQuery("a", "five", selector={"model_name": "m", "pod": "p"}),
    ]
    counts: dict[str, int] = {}
    for batch in plan(services, [], NOW, SETTINGS):
        counts[batch.kind] = counts.get(batch.kind, 0) + 1
    # demand: vllm req, vllm tokens, tgi, vllm with two keys; latency: ttft, e2e, tgi e2e,
    # two keys; served and queue: vllm one key, vllm two keys, tgi.
    assert counts == {"demand": 4, "served": 3, "queue": 3, "latency": 4, "gpu": 1}


def test_history_query_ends_now_at_the_model_step_and_probes_end_now_too() -> None:
    batches = plan([vllm("a", "one")], [], NOW + 0.4, SETTINGS)
    by_kind = {b.kind: b.query for b in batches}
    demand, served = by_kind["demand"], by_kind["served"]
    assert isinstance(demand, RangeQuery) and isinstance(served, RangeQuery)
    assert (demand.start, demand.end, demand.step_s) == (NOW - 4 * 60, NOW, 60)
    assert (served.start, served.end, served.step_s) == (NOW - 300, NOW, 15)
    assert "[120s]" in demand.promql  # max(step, window): two scrapes at least


def test_an_unbuildable_query_is_an_error_for_its_members_only() -> None:
    services = [
        ServiceQuery("a", "tgi-ttft", preset="tgi", latency_metric="ttft"),
        ServiceQuery("a", "bad-key", selector={"app.kubernetes.io/name": "x"}),
        vllm("a", "fine"),
    ]
    batches = plan(services, [], NOW, SETTINGS)
    errors = {(b.kind, m.name) for b in batches if isinstance(b.query, BadQuery) for m in b.members}
    assert ("latency", "tgi-ttft") in errors
    assert {k for k, name in errors if name == "bad-key"} == {
        "demand",
        "served",
        "queue",
        "latency",
    }
    assert not any(name == "fine" for _, name in errors)
    assert ("demand", "tgi-ttft") not in errors


def test_custom_and_training_queries_are_confined_to_their_own_namespace() -> None:
    services = [
        ServiceQuery("team-a", "c", preset="custom", query='sum(rate(x{namespace="team-b"}[1m]))')
    ]
    jobs = [JobQuery("team-c", "train", 'sum(rate(samples_total{namespace=~".*"}[1m]))')]
    batches = plan(services, jobs, NOW, SETTINGS)
    queries = {b.kind: b.query for b in batches}
    custom, throughput = queries["custom_demand"], queries["throughput"]
    assert isinstance(custom, RangeQuery) and isinstance(throughput, RangeQuery)
    assert selector_namespace_matchers(custom.promql) == [['namespace="team-a"']]
    assert selector_namespace_matchers(throughput.promql) == [['namespace="team-c"']]


@pytest.mark.parametrize(
    ("query", "why"), [(None, "needs demand.query"), ("sum(", "not valid PromQL")]
)
def test_custom_preset_without_a_valid_query_is_a_bad_query(query: str | None, why: str) -> None:
    service = ServiceQuery("a", "c", preset="custom", query=query)
    [batch, _gpu] = plan([service], [], NOW, SETTINGS)
    assert isinstance(batch.query, BadQuery) and why in str(batch.query)
    measured = assemble([batch, _gpu], [batch.query, []], [service], [], NOW, SETTINGS)
    assert isinstance(measured.services[service.key].demand, BadQuery)
    assert isinstance(measured.services[service.key].demand_history, BadQuery)


# ---- assembling answers ----------------------------------------------------------------------


def answer_for(
    batches: list[Batch],
    by_kind: dict[str, list[Series] | MetricError],
) -> list[list[Series] | MetricError]:
    return [by_kind.get(b.kind, []) for b in batches]


def rate_points(
    value: float, start: float, end: float, step: float
) -> tuple[tuple[float, float], ...]:
    n = int((end - start) / step) + 1
    return tuple((start + i * step, value) for i in range(n))


def test_each_service_gets_the_series_of_its_namespace_and_labels() -> None:
    a, b = vllm("team-a", "llm", model="m1"), vllm("team-b", "llm", model="m1")
    batches = plan([a, b], [], NOW, SETTINGS)
    demand = [
        Series({"namespace": "team-a", "model_name": "m1"}, rate_points(2.0, NOW - 240, NOW, 60)),
        Series({"namespace": "team-b", "model_name": "m1"}, rate_points(7.0, NOW - 120, NOW, 60)),
        Series({"namespace": "team-a", "model_name": "m2"}, rate_points(99.0, NOW, NOW, 60)),
    ]
    served = [Series({"namespace": "team-b", "model_name": "m1"}, ((NOW - 15, 6.5),))]
    measured = assemble(
        batches,
        answer_for(batches, {"demand": demand, "served": served}),
        [a, b],
        [],
        NOW,
        SETTINGS,
    )
    ma, mb = measured.services[a.key], measured.services[b.key]
    assert ma.demand == Sample(2.0, NOW)
    assert mb.demand == Sample(7.0, NOW)
    assert isinstance(ma.demand_history, History)
    np.testing.assert_array_equal(ma.demand_history.values, [2.0] * 5)
    assert isinstance(mb.demand_history, History)
    np.testing.assert_array_equal(mb.demand_history.values, [np.nan, np.nan, 7.0, 7.0, 7.0])
    assert mb.served == Sample(6.5, NOW - 15)
    assert ma.served == Empty("no data for served of team-a/llm")
    assert isinstance(ma.queue, Empty) and isinstance(ma.latency, Empty)


def test_a_failed_query_gives_its_error_to_every_member_and_holds_the_history() -> None:
    a, b = vllm("team-a", "x"), vllm("team-b", "y")
    batches = plan([a, b], [], NOW, SETTINGS)
    down = Unreachable("cannot reach Prometheus")
    measured = assemble(batches, [down] * len(batches), [a, b], [], NOW, SETTINGS)
    for metrics in measured.services.values():
        assert metrics.demand == down and metrics.demand_history == down
        assert metrics.served == down and metrics.gpu_utilisation == down


def test_stale_demand_is_reported_with_its_age_and_the_history_is_kept() -> None:
    a = vllm("team-a", "x")
    batches = plan([a], [], NOW, SETTINGS)
    old = Series(
        {"namespace": "team-a", "model_name": "m"}, rate_points(3.0, NOW - 240, NOW - 120, 60)
    )
    measured = assemble(batches, answer_for(batches, {"demand": [old]}), [a], [], NOW, SETTINGS)
    metrics = measured.services[a.key]
    assert metrics.demand == Stale("newest demand of team-a/x is 120s old (limit 90s)")
    assert isinstance(metrics.demand_history, History)
    assert np.count_nonzero(~np.isnan(metrics.demand_history.values)) == 3


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ([], Empty),
        ([Series({}, ((NOW, 4.0),))], Sample),
        ([Series({"pod": "p1"}, ((NOW, 1.0),)), Series({"pod": "p2"}, ((NOW, 1.0),))], BadQuery),
    ],
)
def test_custom_and_throughput_queries_must_answer_with_one_series(
    series: list[Series], expected: type
) -> None:
    service = ServiceQuery("a", "c", preset="custom", query="sum(rate(x[1m]))")
    job = JobQuery("a", "t", "sum(rate(samples_total[1m]))")
    batches = plan([service], [job], NOW, SETTINGS)
    measured = assemble(
        batches,
        answer_for(batches, {"custom_demand": series, "throughput": series}),
        [service],
        [job],
        NOW,
        SETTINGS,
    )
    assert isinstance(measured.services[service.key].demand, expected)
    assert isinstance(measured.jobs[job.key], expected)
    # A custom preset has no served, latency or queue metric: None, not an error.
    assert measured.services[service.key].served is None


def test_gpu_utilisation_is_the_mean_over_the_workloads_own_pods() -> None:
    llm = vllm("team-a", "llm")
    other = vllm("team-a", "llm-big", workload="llm-big")
    batches = plan([llm, other], [], NOW, SETTINGS)
    gpu = [
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-abcde"}, ((NOW, 0.5),)),
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-fghij"}, ((NOW - 15, 0.9),)),
        Series({"namespace": "team-a", "pod": "llm-big-5f6d7c8b9-klmno"}, ((NOW, 0.1),)),
        Series({"namespace": "team-b", "pod": "llm-7d9f8c6b5-zzzzz"}, ((NOW, 0.0),)),
    ]
    measured = assemble(batches, answer_for(batches, {"gpu": gpu}), [llm, other], [], NOW, SETTINGS)
    reading = measured.services[llm.key].gpu_utilisation
    assert isinstance(reading, Sample)
    assert math.isclose(reading.value, 0.7) and reading.time == NOW - 15
    assert measured.services[other.key].gpu_utilisation == Sample(0.1, NOW)


def test_gpu_utilisation_of_a_service_with_a_stale_pod_is_stale() -> None:
    llm = vllm("team-a", "llm")
    batches = plan([llm], [], NOW, SETTINGS)
    gpu = [
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-abcde"}, ((NOW, 0.5),)),
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-fghij"}, ((NOW - 200, 0.9),)),
    ]
    measured = assemble(batches, answer_for(batches, {"gpu": gpu}), [llm], [], NOW, SETTINGS)
    assert isinstance(measured.services[llm.key].gpu_utilisation, Stale)
