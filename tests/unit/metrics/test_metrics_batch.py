"""Planning one tick's queries and attributing the answers to services. Pure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiscaler.metrics.batch import Batch, RangeQuery, Settings, assemble, plan
from aiscaler.metrics.errors import BadQuery, Empty, MetricError, Stale, Unreachable
from aiscaler.metrics.guard import selector_namespace_matchers
from aiscaler.metrics.history import HistoryCache
from aiscaler.metrics.readings import Series
from aiscaler.metrics.source import History, JobQuery, Measurements, Sample, ServiceQuery

NOW = 1_700_000_000.0
SETTINGS = Settings(
    history_step_s=60,
    history_points=5,
    window_s=120,
    probe_s=300,
    probe_step_s=15,
    stale_after_s=90,
)
GRID_END = math.floor(NOW / 60) * 60  # the history's newest grid point at NOW


def cache() -> HistoryCache:
    """A fresh history cache (an operator just started)."""
    return HistoryCache(SETTINGS.history_step_s, SETTINGS.history_points, SETTINGS.reread_s)


def vllm(namespace: str, name: str, model: str = "m", **kw: object) -> ServiceQuery:
    return ServiceQuery(namespace, name, selector={"model_name": model}, **kw)  # type: ignore[arg-type]


def kinds(batches: list[Batch]) -> list[str]:
    return sorted(b.kind for b in batches)


def test_services_of_one_engine_and_selector_shape_share_one_query_per_kind() -> None:
    services = [vllm(f"ns-{i % 10}", f"svc-{i}", model=f"m{i}") for i in range(100)]
    batches = plan(services, [], NOW, SETTINGS, cache())
    assert kinds(batches) == ["demand", "gpu", "history", "latency", "queue", "served"]
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
    for batch in plan(services, [], NOW, SETTINGS, cache()):
        counts[batch.kind] = counts.get(batch.kind, 0) + 1
    # demand and its history: vllm req, vllm tokens, tgi, vllm with two keys; latency: ttft,
    # e2e, tgi e2e, two keys; served and queue: vllm one key, vllm two keys, tgi.
    assert counts == {
        "history": 4,
        "demand": 4,
        "served": 3,
        "queue": 3,
        "latency": 4,
        "gpu": 1,
    }


def test_history_is_read_on_the_model_step_grid_and_readings_end_now() -> None:
    batches = plan([vllm("a", "one")], [], NOW + 0.4, SETTINGS, cache())
    by_kind = {b.kind: b.query for b in batches}
    history, demand, served = by_kind["history"], by_kind["demand"], by_kind["served"]
    assert isinstance(history, RangeQuery) and isinstance(demand, RangeQuery)
    assert isinstance(served, RangeQuery)
    # A fresh cache reads the whole window, ending at the newest multiple of the step.
    assert (history.start, history.end, history.step_s) == (GRID_END - 4 * 60, GRID_END, 60)
    assert (demand.start, demand.end, demand.step_s) == (NOW - 300, NOW, 15)
    assert (served.start, served.end, served.step_s) == (NOW - 300, NOW, 15)
    assert history.promql == demand.promql
    assert "[120s]" in history.promql  # max(step, window): two scrapes at least


def test_an_unbuildable_query_is_an_error_for_its_members_only() -> None:
    services = [
        ServiceQuery("a", "tgi-ttft", preset="tgi", latency_metric="ttft"),
        ServiceQuery("a", "bad-key", selector={"app.kubernetes.io/name": "x"}),
        vllm("a", "fine"),
    ]
    batches = plan(services, [], NOW, SETTINGS, cache())
    errors = {(b.kind, m.name) for b in batches if isinstance(b.query, BadQuery) for m in b.members}
    assert ("latency", "tgi-ttft") in errors
    assert {k for k, name in errors if name == "bad-key"} == {
        "history",
        "demand",
        "served",
        "queue",
        "latency",
    }
    assert not any(name == "fine" for _, name in errors)
    assert ("demand", "tgi-ttft") not in errors and ("history", "tgi-ttft") not in errors


def test_custom_and_training_queries_are_confined_to_their_own_namespace() -> None:
    services = [
        ServiceQuery("team-a", "c", preset="custom", query='sum(rate(x{namespace="team-b"}[1m]))')
    ]
    jobs = [JobQuery("team-c", "train", 'sum(rate(samples_total{namespace=~".*"}[1m]))')]
    batches = plan(services, jobs, NOW, SETTINGS, cache())
    queries = {b.kind: b.query for b in batches}
    throughput = queries["throughput"]
    assert isinstance(throughput, RangeQuery)
    for kind in ("custom_history", "custom_demand"):
        custom = queries[kind]
        assert isinstance(custom, RangeQuery)
        assert selector_namespace_matchers(custom.promql) == [['namespace="team-a"']]
    assert selector_namespace_matchers(throughput.promql) == [['namespace="team-c"']]


@pytest.mark.parametrize(
    ("query", "why"), [(None, "needs demand.query"), ("sum(", "not valid PromQL")]
)
def test_custom_preset_without_a_valid_query_is_a_bad_query(query: str | None, why: str) -> None:
    service = ServiceQuery("a", "c", preset="custom", query=query)
    history = cache()
    [read, probe, gpu] = plan([service], [], NOW, SETTINGS, history)
    assert isinstance(read.query, BadQuery) and why in str(read.query)
    assert probe.query == read.query
    measured = assemble(
        [read, probe, gpu], [read.query, probe.query, []], [service], [], NOW, SETTINGS, history
    )
    assert isinstance(measured.services[service.key].demand, BadQuery)
    assert isinstance(measured.services[service.key].demand_history, BadQuery)


# ---- assembling answers ----------------------------------------------------------------------


def measure(
    services: list[ServiceQuery],
    jobs: list[JobQuery],
    by_kind: dict[str, list[Series] | MetricError],
    history: HistoryCache | None = None,
    now: float = NOW,
) -> Measurements:
    """Plan the tick, answer each batch with its kind's answer ([] when none), assemble."""
    history = history or cache()
    batches = plan(services, jobs, now, SETTINGS, history)
    answers = [by_kind.get(b.kind, []) for b in batches]
    return assemble(batches, answers, services, jobs, now, SETTINGS, history)


def rate_points(
    value: float, start: float, end: float, step: float
) -> tuple[tuple[float, float], ...]:
    n = int((end - start) / step) + 1
    return tuple((start + i * step, value) for i in range(n))


def test_each_service_gets_the_series_of_its_namespace_and_labels() -> None:
    a, b = vllm("team-a", "llm", model="m1"), vllm("team-b", "llm", model="m1")
    team_a, team_b = (
        {"namespace": "team-a", "model_name": "m1"},
        {"namespace": "team-b", "model_name": "m1"},
    )
    history = [
        Series(team_a, rate_points(2.0, GRID_END - 240, GRID_END, 60)),
        Series(team_b, rate_points(7.0, GRID_END - 120, GRID_END, 60)),
        Series({"namespace": "team-a", "model_name": "m2"}, rate_points(99.0, NOW, NOW, 60)),
    ]
    demand = [
        Series(team_a, rate_points(2.0, NOW - 30, NOW, 15)),
        Series(team_b, rate_points(7.0, NOW - 30, NOW, 15)),
    ]
    served = [Series(team_b, ((NOW - 15, 6.5),))]
    measured = measure([a, b], [], {"history": history, "demand": demand, "served": served})
    ma, mb = measured.services[a.key], measured.services[b.key]
    assert ma.demand == Sample(2.0, NOW)
    assert mb.demand == Sample(7.0, NOW)
    assert isinstance(ma.demand_history, History)
    assert ma.demand_history.end == GRID_END
    np.testing.assert_array_equal(ma.demand_history.values, [2.0] * 5)
    assert isinstance(mb.demand_history, History)
    np.testing.assert_array_equal(mb.demand_history.values, [np.nan, np.nan, 7.0, 7.0, 7.0])
    assert mb.served == Sample(6.5, NOW - 15)
    assert ma.served == Empty("no data for served of team-a/llm")
    assert isinstance(ma.queue, Empty) and isinstance(ma.latency, Empty)


def test_a_failed_query_gives_its_error_to_every_member_and_holds_the_history() -> None:
    a, b = vllm("team-a", "x"), vllm("team-b", "y")
    down = Unreachable("cannot reach Prometheus")
    kinds_down: dict[str, list[Series] | MetricError] = {
        kind: down for kind in ("history", "demand", "served", "queue", "latency", "gpu")
    }
    measured = measure([a, b], [], kinds_down)
    for metrics in measured.services.values():
        assert metrics.demand == down and metrics.demand_history == down
        assert metrics.served == down and metrics.gpu_utilisation == down


def test_stale_demand_is_reported_with_its_age_and_the_history_is_kept() -> None:
    a = vllm("team-a", "x")
    labels = {"namespace": "team-a", "model_name": "m"}
    history = Series(labels, rate_points(3.0, GRID_END - 240, GRID_END - 120, 60))
    demand = Series(labels, rate_points(3.0, NOW - 300, NOW - 120, 15))
    measured = measure([a], [], {"history": [history], "demand": [demand]})
    metrics = measured.services[a.key]
    assert metrics.demand == Stale("newest demand of team-a/x is 120s old (limit 90s)")
    assert isinstance(metrics.demand_history, History)
    assert np.count_nonzero(~np.isnan(metrics.demand_history.values)) == 3


def test_no_history_at_all_is_empty() -> None:
    a = vllm("team-a", "x")
    metrics = measure([a], [], {}).services[a.key]
    assert metrics.demand_history == Empty("no data for demand of team-a/x")


def test_the_next_tick_reads_only_the_new_points_and_a_re_read_of_the_last_ones() -> None:
    a, b = vllm("team-a", "x"), vllm("team-b", "y")
    history = HistoryCache(60, 10, 120)  # a window of 9 steps, re-read 2
    labels = {"namespace": "team-a", "model_name": "m"}
    first = Series(labels, rate_points(1.0, GRID_END - 240, GRID_END, 60))
    measure([a], [], {"history": [first]}, history)
    # Two steps later, with b new: a reads from 120 s before its newest point, b the window.
    later = NOW + 120
    batches = plan([a, b], [], later, SETTINGS, history)
    reads = {batch.members[0].name: batch.query for batch in batches if batch.kind == "history"}
    assert isinstance(reads["x"], RangeQuery) and isinstance(reads["y"], RangeQuery)
    assert (reads["x"].start, reads["x"].end) == (GRID_END - 120, GRID_END + 120)
    assert (reads["y"].start, reads["y"].end) == (GRID_END + 120 - 9 * 60, GRID_END + 120)
    matchers = selector_namespace_matchers(reads["y"].promql)
    assert matchers and all(m == ['namespace="team-b"'] for m in matchers)
    # The re-read replaces the points it covers: a late sample raised GRID_END's rate to 1.5.
    answer = Series(
        labels,
        (
            *rate_points(1.0, GRID_END - 120, GRID_END - 60, 60),
            (GRID_END, 1.5),
            (GRID_END + 60, 2.0),
            (GRID_END + 120, 2.5),
        ),
    )
    measured = assemble(
        batches,
        [
            [answer] if batch.kind == "history" and batch.members == (a,) else []
            for batch in batches
        ],
        [a, b],
        [],
        later,
        SETTINGS,
        history,
    )
    held = measured.services[a.key].demand_history
    assert isinstance(held, History) and held.end == GRID_END + 120
    nan = np.nan
    np.testing.assert_array_equal(held.values, [nan, nan, nan, 1, 1, 1, 1, 1.5, 2.0, 2.5])


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
    measured = measure(
        [service],
        [job],
        {"custom_history": series, "custom_demand": series, "throughput": series},
    )
    assert isinstance(measured.services[service.key].demand, expected)
    assert isinstance(measured.jobs[job.key], expected)
    # A custom preset has no served, latency or queue metric: None, not an error.
    assert measured.services[service.key].served is None


def test_gpu_utilisation_is_the_mean_over_the_workloads_own_pods() -> None:
    llm = vllm("team-a", "llm")
    other = vllm("team-a", "llm-big", workload="llm-big")
    gpu = [
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-abcde"}, ((NOW, 0.5),)),
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-fghij"}, ((NOW - 15, 0.9),)),
        Series({"namespace": "team-a", "pod": "llm-big-5f6d7c8b9-klmno"}, ((NOW, 0.1),)),
        Series({"namespace": "team-b", "pod": "llm-7d9f8c6b5-zzzzz"}, ((NOW, 0.0),)),
    ]
    measured = measure([llm, other], [], {"gpu": gpu})
    reading = measured.services[llm.key].gpu_utilisation
    assert isinstance(reading, Sample)
    assert math.isclose(reading.value, 0.7) and reading.time == NOW - 15
    assert measured.services[other.key].gpu_utilisation == Sample(0.1, NOW)


def test_gpu_utilisation_of_a_service_with_a_stale_pod_is_stale() -> None:
    llm = vllm("team-a", "llm")
    gpu = [
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-abcde"}, ((NOW, 0.5),)),
        Series({"namespace": "team-a", "pod": "llm-7d9f8c6b5-fghij"}, ((NOW - 200, 0.9),)),
    ]
    measured = measure([llm], [], {"gpu": gpu})
    assert isinstance(measured.services[llm.key].gpu_utilisation, Stale)
