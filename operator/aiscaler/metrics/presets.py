"""What each serving engine calls its metrics, and the PromQL built from them.

Every query here is written for a batch of services: it aggregates `by (namespace, <the
service selector's label keys>)`, so one query answers for every service of the same engine and
selector shape, and each result series is attributed to the service whose namespace and label
values it carries. The caller confines the query with `guard.confine` to the namespaces of the
batch before sending it.

Engines renamed metrics across versions; a preset lists the names newest first and joins the
per-name expressions with `or`, which keeps, per (namespace, labels) group, the first name that
has data. Queries are pure strings: nothing here talks to Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiscaler.metrics.errors import BadQuery

# Label names Prometheus accepts (Kubernetes label keys such as `app.kubernetes.io/name` are
# exported by Prometheus with `.` and `/` replaced by `_`).
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Histogram:
    """Latency as a Prometheus histogram; `names` without `_bucket`, `to_seconds` multiplies."""

    names: tuple[str, ...]
    to_seconds: float = 1.0


@dataclass(frozen=True)
class MeanOfCounters:
    """Latency only as cumulative duration / count counters (Triton): the mean, not a quantile."""

    duration: str
    count: str
    to_seconds: float


LatencySource = Histogram | MeanOfCounters


@dataclass(frozen=True)
class EnginePreset:
    """Metric names of one serving engine. Selector texts may carry label matchers."""

    requests: tuple[str, ...]  # counter of requests arriving or finishing (demand, req/s)
    requests_at_finish: bool  # `requests` counts a request when it finishes, not when it arrives
    served: tuple[str, ...]  # counter of requests served successfully
    tokens: tuple[str, ...]  # counter of generated tokens (demand, tokens/s); () if none
    queue: tuple[str, ...]  # gauge of requests waiting
    running: tuple[str, ...]  # gauge of requests being served; () if none
    latency: dict[str, LatencySource]  # "ttft" | "e2e" | "queue" -> source


PRESETS: dict[str, EnginePreset] = {
    # vLLM: docs/source/design/v1/metrics.md in vllm-project/vllm lists the v0 names kept by the
    # V1 engine. It has no arrival counter, so demand is measured as finished requests plus the
    # change of the requests it holds, waiting and running (`demand_query`). Finished requests are
    # `vllm:request_success_total` (label finished_reason=stop|length|abort, since v0.4); older
    # releases only have the e2e latency histogram's `_count`. The queue-time histogram
    # `vllm:request_queue_time_seconds` superseded `vllm:time_in_queue_requests` (same doc,
    # "Duplicated - Queue Time").
    "vllm": EnginePreset(
        requests=("vllm:request_success_total", "vllm:e2e_request_latency_seconds_count"),
        requests_at_finish=True,
        served=(
            'vllm:request_success_total{finished_reason!="abort"}',
            "vllm:e2e_request_latency_seconds_count",
        ),
        tokens=("vllm:generation_tokens_total",),
        queue=("vllm:num_requests_waiting",),
        running=("vllm:num_requests_running",),
        latency={
            "ttft": Histogram(("vllm:time_to_first_token_seconds",)),
            "e2e": Histogram(("vllm:e2e_request_latency_seconds",)),
            "queue": Histogram(("vllm:request_queue_time_seconds", "vllm:time_in_queue_requests")),
        },
    ),
    # SGLang: python/sglang/srt/metrics/collector.py in sgl-project/sglang
    # (`sglang:num_requests_total` counts requests processed, i.e. finished;
    # `sglang:queue_time_seconds` exists in newer releases only) and
    # docs/references/production_metrics.md (`sglang:num_queue_reqs`, TTFT and e2e histograms).
    "sglang": EnginePreset(
        requests=("sglang:num_requests_total", "sglang:e2e_request_latency_seconds_count"),
        requests_at_finish=True,
        served=("sglang:num_requests_total", "sglang:e2e_request_latency_seconds_count"),
        tokens=("sglang:generation_tokens_total",),
        queue=("sglang:num_queue_reqs",),
        running=("sglang:num_running_reqs",),
        latency={
            "ttft": Histogram(("sglang:time_to_first_token_seconds",)),
            "e2e": Histogram(("sglang:e2e_request_latency_seconds",)),
            "queue": Histogram(("sglang:queue_time_seconds",)),
        },
    ),
    # TGI: docs/source/reference/metrics.md in huggingface/text-generation-inference.
    # `tgi_request_count` counts requests on arrival, the only true arrival counter of the four.
    # Generated tokens are a per-request histogram; its `_sum` counts tokens. TGI has no TTFT
    # histogram.
    "tgi": EnginePreset(
        requests=("tgi_request_count",),
        requests_at_finish=False,
        served=("tgi_request_success",),
        tokens=("tgi_request_generated_tokens_sum",),
        queue=("tgi_queue_size",),
        running=(),
        latency={
            "e2e": Histogram(("tgi_request_duration",)),
            "queue": Histogram(("tgi_request_queue_duration",)),
        },
    ),
    # Triton: docs/user_guide/metrics.md in triton-inference-server/server. Requests are
    # success + failure counters; durations are cumulative microsecond counters (so e2e and queue
    # latency are means); time to first response is a millisecond histogram (decoupled models).
    # Triton has no token counter.
    "triton": EnginePreset(
        requests=('{__name__=~"nv_inference_request_success|nv_inference_request_failure"}',),
        requests_at_finish=True,
        served=("nv_inference_request_success",),
        tokens=(),
        queue=("nv_inference_pending_request_count",),
        running=(),
        latency={
            "ttft": Histogram(("nv_inference_first_response_histogram_ms",), to_seconds=1e-3),
            "e2e": MeanOfCounters(
                "nv_inference_request_duration_us", "nv_inference_request_success", to_seconds=1e-6
            ),
            "queue": MeanOfCounters(
                "nv_inference_queue_duration_us", "nv_inference_request_success", to_seconds=1e-6
            ),
        },
    ),
}

# DCGM exporter (NVIDIA/dcgm-exporter): GPU utilisation in percent per GPU; with its Kubernetes
# pod mapping it labels each GPU with the `namespace` and `pod` using it (the scrape must keep
# those labels, e.g. `honorLabels: true` on a ServiceMonitor).
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"

ENGINES = tuple(PRESETS)


def group_labels(selector_keys: Sequence[str]) -> tuple[str, ...]:
    """The `by` labels of a batch: namespace first, then the selector's keys, sorted."""
    for key in selector_keys:
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise BadQuery(
                f"selector key {key!r} is not a Prometheus label name "
                "(letters, digits and '_', not starting with a digit or '__')"
            )
        if key == "namespace":
            raise BadQuery(
                "selector key 'namespace' is not allowed: the namespace is the "
                "custom resource's own"
            )
    return ("namespace", *sorted(set(selector_keys)))


def demand_query(engine: str, unit: str, by: Sequence[str], window_s: float) -> str:
    preset = _preset(engine)
    if unit == "tokensPerSecond":
        if not preset.tokens:
            raise BadQuery(
                f"the {engine} preset has no generated-token counter; use unit "
                "requestsPerSecond or a custom query"
            )
        return _rate_of_first(preset.tokens, by, window_s)
    if unit != "requestsPerSecond":
        raise BadQuery(f"unknown demand unit {unit!r}")
    finished = _rate_of_first(preset.requests, by, window_s)
    if not preset.requests_at_finish:
        return finished
    # Requests that arrive while every slot is busy wait and are not counted until they finish,
    # so demand is what finished plus what the engine holds more of than at the window's start
    # (what arrived, by conservation): above the served rate while a backlog builds, below it
    # while one drains. Without the gauges their change counts as 0.
    waiting, running = (
        _or(f"sum by ({_labels(by)}) (delta({name}[{_s(window_s)}]))" for name in names)
        for names in (preset.queue, preset.running)
    )
    held = f"({waiting}) + ({running}) or ({waiting})" if preset.running else waiting
    return f"clamp_min(({finished}) + (({held}) / {round(window_s)} or ({finished}) * 0), 0)"


def served_query(engine: str, by: Sequence[str], window_s: float) -> str:
    return _rate_of_first(_preset(engine).served, by, window_s)


def queue_query(engine: str, by: Sequence[str], window_s: float) -> str:
    """Requests waiting: the most seen at any scrape in the window, per pod, summed (a queue
    that built up and drained within the window still shows)."""
    return _or(
        f"sum by ({_labels(by)}) (max_over_time({name}[{_s(window_s)}]))"
        for name in _preset(engine).queue
    )


def latency_query(
    engine: str, metric: str, quantile: float, by: Sequence[str], window_s: float
) -> str:
    """Latency in seconds at `quantile` (the mean where the engine has no histogram)."""
    source = _preset(engine).latency.get(metric)
    if source is None:
        raise BadQuery(
            f"the {engine} preset has no {metric!r} latency metric; "
            f"it has {sorted(_preset(engine).latency)}"
        )
    if not 0.0 < quantile < 1.0:
        raise BadQuery(f"latency quantile {quantile} is not within (0, 1)")
    w = _s(window_s)
    if isinstance(source, MeanOfCounters):
        return (
            f"sum by ({_labels(by)}) (rate({source.duration}[{w}])) / "
            f"sum by ({_labels(by)}) (rate({source.count}[{w}])) * {source.to_seconds!r}"
        )
    scale = "" if source.to_seconds == 1.0 else f" * {source.to_seconds!r}"
    return _or(
        f"histogram_quantile({quantile!r}, sum by ({_labels([*by, 'le'])}) "
        f"(rate({_bucket(name)}[{w}]))){scale}"
        for name in source.names
    )


def gpu_utilisation_query(window_s: float) -> str:
    """Per pod GPU utilisation as a fraction (0..1), averaged over the pod's GPUs."""
    return f"avg by (namespace, pod) (last_over_time({DCGM_GPU_UTIL}[{_s(window_s)}])) / 100"


def _preset(engine: str) -> EnginePreset:
    try:
        return PRESETS[engine]
    except KeyError:
        raise BadQuery(f"unknown preset {engine!r}; known: {', '.join(ENGINES)}") from None


def _rate_of_first(names: Sequence[str], by: Sequence[str], window_s: float) -> str:
    return _or(f"sum by ({_labels(by)}) (rate({name}[{_s(window_s)}]))" for name in names)


def _bucket(selector: str) -> str:
    name, brace, rest = selector.partition("{")
    return f"{name}_bucket{brace}{rest}"


def _or(parts: Iterable[str]) -> str:
    return " or ".join(parts)


def _labels(by: Sequence[str]) -> str:
    return ", ".join(by)


def _s(seconds: float) -> str:
    return f"{round(seconds)}s"
