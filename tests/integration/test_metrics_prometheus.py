"""aiscaler.metrics against a real Prometheus with backfilled history (tests/integration
fixtures). History sits at a fixed past time, and `measure` is asked at chosen `now`s, so
every expected value follows from the samples written here."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from harness.prometheus import PrometheusFactory, PrometheusServer, Series

from aiscaler.metrics.batch import Settings
from aiscaler.metrics.errors import BadQuery, Empty, MetricError, Stale, Unreachable
from aiscaler.metrics.prometheus import PrometheusMetrics
from aiscaler.metrics.source import History, JobQuery, Sample, ServiceQuery

END = 1_700_000_000.0  # the last sample of the history
SCRAPE_S = 15
HOURS = 2
TIMES = [END - SCRAPE_S * i for i in range(HOURS * 3600 // SCRAPE_S, -1, -1)]
SETTINGS = Settings(
    history_step_s=60,
    history_points=60,
    window_s=120,
    probe_s=300,
    probe_step_s=15,
    stale_after_s=90,
)


def counter(name: str, labels: dict[str, str], per_second: float) -> Series:
    return Series(name, labels, [(t, per_second * (t - TIMES[0])) for t in TIMES])


def gauge(name: str, labels: dict[str, str], value: float) -> Series:
    return Series(name, labels, [(t, value) for t in TIMES])


def vllm_history(namespace: str, model: str, rate: float) -> list[Series]:
    labels = {"namespace": namespace, "model_name": model, "pod": f"{model}-6b7c8d9f5-abcde"}
    ttft = "vllm:time_to_first_token_seconds_bucket"
    return [
        counter("vllm:request_success_total", {**labels, "finished_reason": "stop"}, rate),
        counter("vllm:request_success_total", {**labels, "finished_reason": "abort"}, 0.0),
        counter("vllm:generation_tokens_total", labels, rate * 200),
        gauge("vllm:num_requests_waiting", labels, 4.0),
        # 90% of requests within 0.5 s, all within 1 s: p95 interpolates to 0.75 s.
        counter(ttft, {**labels, "le": "0.5"}, rate * 0.9),
        counter(ttft, {**labels, "le": "1.0"}, rate),
        counter(ttft, {**labels, "le": "+Inf"}, rate),
        gauge(
            "DCGM_FI_DEV_GPU_UTIL",
            {"namespace": namespace, "pod": f"{model}-6b7c8d9f5-abcde", "gpu": "0"},
            80.0,
        ),
        gauge(
            "DCGM_FI_DEV_GPU_UTIL",
            {"namespace": namespace, "pod": f"{model}-6b7c8d9f5-fghij", "gpu": "0"},
            40.0,
        ),
    ]


HISTORY = [
    *vllm_history("team-a", "llm", 3.0),
    *vllm_history("team-b", "llm", 10.0),
    # An old vLLM that only has the e2e histogram's count, and a training job's counter.
    counter(
        "vllm:e2e_request_latency_seconds_count", {"namespace": "team-c", "model_name": "old"}, 2.0
    ),
    # Saturated: 5 requests/s finish while the queue grows by 0.5 a second (every slot busy);
    # and one whose queue drains, with no running gauge.
    counter("vllm:request_success_total", {"namespace": "team-d", "model_name": "busy"}, 5.0),
    counter("vllm:num_requests_waiting", {"namespace": "team-d", "model_name": "busy"}, 0.5),
    gauge("vllm:num_requests_running", {"namespace": "team-d", "model_name": "busy"}, 8.0),
    counter("vllm:request_success_total", {"namespace": "team-d", "model_name": "drain"}, 5.0),
    Series(
        "vllm:num_requests_waiting",
        {"namespace": "team-d", "model_name": "drain"},
        [(t, 0.5 * (END - t)) for t in TIMES],
    ),
    counter("train_samples_total", {"namespace": "team-a", "job": "trainer"}, 500.0),
    counter("train_samples_total", {"namespace": "team-b", "job": "trainer"}, 9000.0),
    counter("team_b_only_total", {"namespace": "team-b"}, 1.0),
]

LLM_A = ServiceQuery("team-a", "llm", selector={"model_name": "llm"})
LLM_B = ServiceQuery("team-b", "llm", selector={"model_name": "llm"})


@pytest.fixture
def prometheus(prometheus_factory: PrometheusFactory) -> PrometheusServer:
    return prometheus_factory(history=HISTORY)


@pytest.fixture
def source(prometheus: PrometheusServer) -> Iterator[PrometheusMetrics]:
    metrics = PrometheusMetrics(prometheus.url, timeout_s=5, settings=SETTINGS)
    yield metrics
    metrics.close()


def value(reading: Sample | MetricError | None) -> float:
    assert isinstance(reading, Sample), reading
    return reading.value


def test_readings_and_demand_history_from_backfilled_vllm_metrics(
    source: PrometheusMetrics,
) -> None:
    tokens = ServiceQuery("team-a", "llm", selector={"model_name": "llm"}, unit="tokensPerSecond")
    measured = source.measure([LLM_A, LLM_B], [], END)
    a, b = measured.services[LLM_A.key], measured.services[LLM_B.key]

    assert value(a.demand) == pytest.approx(3.0)
    assert value(b.demand) == pytest.approx(10.0)  # team-b's own series, not the sum
    assert isinstance(a.demand_history, History)
    # The history is on the grid of whole steps: its newest point is the last one before END.
    assert a.demand_history.end == END // 60 * 60 and a.demand_history.step_s == 60
    np.testing.assert_allclose(a.demand_history.values, np.full(60, 3.0))
    assert value(a.served) == pytest.approx(3.0)  # aborted requests excluded (none here)
    assert value(a.queue) == 4.0
    assert value(a.latency) == pytest.approx(0.75)
    assert value(a.gpu_utilisation) == pytest.approx(0.6)  # (80% + 40%) / 2
    assert value(source.measure([tokens], [], END).services[tokens.key].demand) == (
        pytest.approx(600.0)
    )


def test_an_old_engine_version_is_read_through_its_old_metric_name(
    source: PrometheusMetrics,
) -> None:
    old = ServiceQuery("team-c", "old", selector={"model_name": "old"})
    measured = source.measure([old], [], END).services[old.key]
    assert value(measured.demand) == pytest.approx(2.0)


def test_demand_counts_the_requests_a_growing_queue_holds_back(source: PrometheusMetrics) -> None:
    busy, drain = (ServiceQuery("team-d", m, selector={"model_name": m}) for m in ("busy", "drain"))
    measured = source.measure([busy, drain], [], END).services
    # What arrived = what finished + what the engine holds more of (less, as a queue drains).
    assert value(measured[busy.key].demand) == pytest.approx(5.5)
    history = measured[busy.key].demand_history
    assert isinstance(history, History)
    np.testing.assert_allclose(history.values, np.full(60, 5.5))
    assert value(measured[drain.key].demand) == pytest.approx(4.5)


def test_data_that_stopped_arriving_is_stale_then_missing(source: PrometheusMetrics) -> None:
    later = source.measure([LLM_A], [], END + 240).services[LLM_A.key]
    # rate(...[120s]) has points until END + 105 on the 15 s grid of the readings (two samples,
    # END - 15 and END, in its window), the queue gauge's max_over_time until END + 120: both
    # older than 90 s.
    assert later.demand == Stale("newest demand of team-a/llm is 135s old (limit 90s)")
    assert isinstance(later.queue, Stale)
    assert isinstance(later.demand_history, History)  # the history is still there to forecast
    much_later = source.measure([LLM_A], [], END + 3600).services[LLM_A.key]
    assert isinstance(much_later.queue, Empty)


def test_prometheus_stopped_is_unreachable_and_recovers(
    prometheus: PrometheusServer, source: PrometheusMetrics
) -> None:
    prometheus.stop()
    down = source.measure([LLM_A], [JobQuery("team-a", "t", "sum(rate(x[1m]))")], END)
    readings = down.services[LLM_A.key]
    for reading in (
        readings.demand,
        readings.demand_history,
        readings.served,
        readings.latency,
        readings.queue,
        readings.gpu_utilisation,
        down.jobs[("team-a", "t")],
    ):
        assert isinstance(reading, Unreachable)
    prometheus.start()
    assert value(source.measure([LLM_A], [], END).services[LLM_A.key].demand) == (
        pytest.approx(3.0)
    )


@pytest.mark.parametrize(
    "query",
    [
        'sum(rate({__name__="vllm:request_success_total", namespace=~".*"}[2m]))',
        'sum(rate(vllm:request_success_total{namespace="team-b"}[2m]))'
        " or on() sum(rate(vllm:request_success_total[2m]))",
        'sum(rate(vllm:request_success_total{namespace!="team-a"}[2m]))',
    ],
)
def test_a_confined_custom_query_sees_only_its_own_namespace(
    source: PrometheusMetrics, query: str
) -> None:
    custom = ServiceQuery("team-a", "custom", preset="custom", query=query)
    measured = source.measure([custom], [], END).services[custom.key]
    # team-a serves 3/s and team-b 10/s: anything but 3 (or nothing) is a leak.
    assert value(measured.demand) == pytest.approx(3.0)


def test_a_query_naming_another_namespace_reads_its_own_instead(source: PrometheusMetrics) -> None:
    only_b = ServiceQuery(
        "team-a",
        "custom",
        preset="custom",
        query='sum(rate(team_b_only_total{namespace="team-b"}[2m]))',
    )
    job = JobQuery(
        "team-a", "trainer", 'sum(rate(train_samples_total{namespace="team-b", job="trainer"}[2m]))'
    )
    measured = source.measure([only_b], [job], END)
    assert isinstance(measured.services[only_b.key].demand, Empty)
    assert value(measured.jobs[job.key]) == pytest.approx(500.0)  # team-a's, not 9000


def test_every_preset_query_is_accepted_by_the_real_prometheus(source: PrometheusMetrics) -> None:
    services = []
    for engine, metrics in (
        ("vllm", ("ttft", "e2e", "queue")),
        ("sglang", ("ttft", "e2e", "queue")),
        ("tgi", ("e2e", "queue")),
        ("triton", ("ttft", "e2e", "queue")),
    ):
        for metric in metrics:
            services.append(
                ServiceQuery(
                    "team-a",
                    f"{engine}-{metric}",
                    preset=engine,
                    latency_metric=metric,
                    selector={"model_name": "x"},
                )
            )
        if engine != "triton":
            services.append(
                ServiceQuery(
                    "team-a",
                    f"{engine}-tokens",
                    preset=engine,
                    unit="tokensPerSecond",
                    latency_metric="e2e",
                )
            )
    measured = source.measure(services, [], END)
    for key, metrics in measured.services.items():
        for reading in (metrics.demand, metrics.served, metrics.latency, metrics.queue):
            assert not isinstance(reading, BadQuery), (key, reading)


# ---- the demand history kept between ticks ------------------------------------------------


def _fresh_history(url: str, service: ServiceQuery, now: float) -> History:
    """The history an operator started at `now` reads: the whole window, from Prometheus."""
    fresh = PrometheusMetrics(url, timeout_s=5, settings=SETTINGS)
    try:
        history = fresh.measure([service], [], now).services[service.key].demand_history
    finally:
        fresh.close()
    assert isinstance(history, History), history
    return history


def test_history_kept_over_ticks_equals_a_restarted_read_through_gaps_and_counter_resets(
    prometheus_factory: PrometheusFactory,
) -> None:
    # One service's counter: 5/s, a pod restart 50 min before END (the counter starts again at
    # 0), a 10-minute scrape gap 30 min before END, then 2/s.
    samples, total = [], 0.0
    for t in TIMES:
        if END - 1800 <= t < END - 1200:
            continue  # the gap: nothing scraped
        if t == END - 3000:
            total = 0.0  # the reset
        total += (5.0 if t < END - 1200 else 2.0) * SCRAPE_S
        samples.append((t, total))
    labels = {"namespace": "team-a", "model_name": "llm", "pod": "llm-6b7c8d9f5-abcde"}
    server = prometheus_factory(history=[Series("vllm:request_success_total", labels, samples)])
    kept = PrometheusMetrics(server.url, timeout_s=5, settings=SETTINGS)
    try:
        for now in np.arange(END - 3300, END + 1, 30.0):  # ticks every 30 s over 55 minutes
            history = kept.measure([LLM_A], [], float(now)).services[LLM_A.key].demand_history
            assert isinstance(history, History), (now, history)
            fresh = _fresh_history(server.url, LLM_A, float(now))
            assert (history.start, history.end) == (fresh.start, fresh.end)
            np.testing.assert_array_equal(history.values, fresh.values)
    finally:
        kept.close()
    values = history.values  # the last hour at END: rates of 5 and 2, no negative rate anywhere
    finite = values[np.isfinite(values)]
    assert finite.min() >= 0 and np.isclose(finite.max(), 5.0) and np.isclose(finite[-1], 2.0)
    assert np.isnan(values).any()  # the gap


def test_late_samples_are_read_again_within_the_re_read_window(
    prometheus_factory: PrometheusFactory,
) -> None:
    # The last two minutes of samples reach Prometheus only after the operator read them (a slow
    # remote write); here: written as a block of their own while Prometheus is restarted.
    labels = {"namespace": "team-a", "model_name": "llm", "pod": "llm-6b7c8d9f5-abcde"}
    on_time = [(t, 3.0 * (t - TIMES[0])) for t in TIMES if t <= END - 120]
    late = [(t, on_time[-1][1] + 9.0 * (t - (END - 120))) for t in TIMES if t > END - 120]
    server = prometheus_factory(history=[Series("vllm:request_success_total", labels, on_time)])
    kept = PrometheusMetrics(server.url, timeout_s=5, settings=SETTINGS)
    try:
        before = kept.measure([LLM_A], [], END).services[LLM_A.key].demand_history
        server.stop()
        server.backfill([Series("vllm:request_success_total", labels, late)])
        server.start()
        now = END + 60
        after = kept.measure([LLM_A], [], now).services[LLM_A.key].demand_history
    finally:
        kept.close()
    assert isinstance(before, History) and isinstance(after, History)
    fresh = _fresh_history(server.url, LLM_A, now)
    np.testing.assert_array_equal(after.values, fresh.values)
    # What the first read said about the last minutes has changed: the late samples are in.
    shared = after.values[:-1][-3:]  # grid points both reads cover
    assert not np.array_equal(before.values[-3:], shared, equal_nan=True)
