"""Tick step 2, measure and forecast: one batched metrics round and one batched forecast for all
services, turned into the planner's observations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from aiscaler.core.planner import FORECAST_QUANTILES
from aiscaler.core.types import Forecast, PoolSpec, ServiceObservation
from aiscaler.forecast.base import Forecaster
from aiscaler.handlers.mapping import service_query
from aiscaler.handlers.state import (
    Forecasted,
    ObservedService,
    ObservedTraining,
    Operator,
    TickReport,
)
from aiscaler.kube.client import KubeError
from aiscaler.metrics.errors import MetricError
from aiscaler.metrics.source import History, JobQuery, Reading, Sample

# Series per forecaster call. Each series is forecast from its own history, so batching changes
# no forecast; it bounds the forecaster's working memory (Holt-Winters' seasonal state: ~90 KB a
# series with a daily season at 60 s steps; the model bounds its network's inputs itself). Fewer,
# larger calls cost less: Holt-Winters' fit steps through time once per call.
FORECAST_BATCH = 512


def measure_and_forecast(
    op: Operator,
    services: Sequence[ObservedService],
    trainings: Sequence[ObservedTraining],
    pools: Sequence[PoolSpec],
    now: float,
    report: TickReport,
) -> dict[str, ServiceObservation]:
    """One batched metrics round and one batched forecast for all services."""
    queries = [service_query(s.body, s.model, s.target.name) for s in services]
    jobs = [
        JobQuery(
            t.body["metadata"]["namespace"],
            t.body["metadata"]["name"],
            t.model.spec.throughput.query,
        )
        for t in trainings
        if t.model.spec.throughput.query
    ]
    with report.stage("measure"):
        measured = op.metrics.measure(queries, jobs, now)
        free = _free_gpus(op, pools, report)
    histories = {
        s.spec.name: history
        for s, q in zip(services, queries, strict=True)
        if isinstance(history := measured.services[q.key].demand_history, History)
    }
    forecasts: dict[str, tuple[Forecast, float]] = {}
    if histories:
        step_s = next(iter(histories.values())).step_s
        # The history's newest point is on the step's grid: up to one step before now.
        horizon = _horizon_steps(services, pools, op.config.tick_s + step_s, step_s)
        try:
            with report.stage("forecast"):
                forecasts = _forecasts(op, histories, step_s, horizon)
        except (ValueError, ArithmeticError) as exc:  # the planner then holds: ForecastMissing
            op.telemetry.errors.labels("forecast").inc()
            report.errors.append(f"forecast: {exc}")

    observations: dict[str, ServiceObservation] = {}
    for s, q in zip(services, queries, strict=True):
        demand = measured.services[q.key].demand
        forecast = forecasts.get(s.spec.name)
        observed = ServiceObservation(
            current_replicas=s.state.replicas if s.state else 0,
            demand=None,
            forecast=forecast[0] if forecast else None,
            forecast_origin=forecast[1] if forecast else None,
            ready_replicas=s.state.ready_replicas if s.state else 0,
            free_gpus=free.get(s.spec.pool) if s.spec.pool else None,
            slo_met=slo_met(
                measured.services[q.key].latency,
                measured.services[q.key].queue,
                s.model.spec.slo.latency.target_seconds,
            ),
        )
        if isinstance(demand, MetricError):
            op.telemetry.errors.labels("metrics").inc()
            observed = replace(observed, demand_error=f"{demand.reason}: {demand}")
        else:
            observed = replace(observed, demand=demand.value, demand_time=demand.time)
            op.telemetry.observed.labels(*s.spec.name.split("/")).set(demand.value)
        observations[s.spec.name] = observed
    return observations


def slo_met(latency: Reading | None, queue: Reading | None, target_s: float) -> bool | None:
    """Whether the latency at the SLO quantile was within its target, as the planner's SLO margin
    learns from it. None when it was not measured (no metric, an error, or NaN: no request
    finished in the window), and when it missed while no request waited in the window: a slow
    engine or a target it cannot reach, which more replicas would not fix (the margin would
    otherwise climb to its cap). Without a queue reading a miss counts."""
    if latency is None or isinstance(latency, MetricError) or not math.isfinite(latency.value):
        return None
    if latency.value <= target_s:
        return True
    idle = isinstance(queue, Sample) and math.isfinite(queue.value) and queue.value <= 0
    return None if idle else False


def _forecasts(
    op: Operator, histories: Mapping[str, History], step_s: float, horizon: int
) -> dict[str, tuple[Forecast, float]]:
    """Each service's forecast and its origin. The model runs only for the services whose
    history changed since their last forecast (a tick within the same step, with no late
    sample, has the same history): each forecast depends on its own history alone."""
    changed = [
        name
        for name, history in histories.items()
        if not _same_request(op.forecasts.get(name), history, horizon)
    ]
    results = forecast_in_batches(
        op.forecaster, [histories[name].values for name in changed], step_s, horizon
    )
    kept = {name: op.forecasts[name] for name in histories if name not in changed}
    kept |= {
        name: Forecasted(histories[name], horizon, fc)
        for name, fc in zip(changed, results, strict=True)
    }
    op.forecasts = kept  # services without a history this tick are forgotten
    return {name: (f.forecast, f.history.end) for name, f in kept.items()}


def _same_request(previous: Forecasted | None, history: History, horizon: int) -> bool:
    return (
        previous is not None
        and previous.horizon == horizon
        and previous.history.start == history.start
        and np.array_equal(previous.history.values, history.values, equal_nan=True)
    )


def forecast_in_batches(
    forecaster: Forecaster,
    histories: Sequence[npt.NDArray[np.float64]],
    step_s: float,
    horizon: int,
    batch: int = FORECAST_BATCH,
) -> list[Forecast]:
    """One forecast per history, in order, asking the forecaster for `batch` series at a time."""
    results: list[Forecast] = []
    for first in range(0, len(histories), batch):
        results += forecaster.forecast(
            histories[first : first + batch], step_s, horizon, FORECAST_QUANTILES
        )
    return results


def _horizon_steps(
    services: Sequence[ObservedService],
    pools: Sequence[PoolSpec],
    tick_and_age_s: float,
    step_s: float,
) -> int:
    """Steps covering the longest lead time (cold start + node provisioning) + a tick (and the
    age of the forecast's origin) + the scale-down window: the planner keeps replicas the
    forecast needs within all of it."""
    provisioning = max((p.provisioning_s for p in pools), default=0.0)
    ahead = max(
        (s.spec.cold_start_s + s.spec.scale_down.stabilization_window_s for s in services),
        default=0.0,
    )
    return max(1, math.ceil((ahead + provisioning + tick_and_age_s) / step_s) + 1)


def _free_gpus(op: Operator, pools: Sequence[PoolSpec], report: TickReport) -> dict[str, int]:
    if not pools:
        return {}
    selectors = {p.name: p.node_selector for p in op.settings.pools}
    try:
        return {name: g.free for name, g in op.kube.gpu_pools(selectors).items()}
    except KubeError as exc:
        # Unknown free GPUs: the planner then assumes no node wait (the shorter lead time).
        op.telemetry.errors.labels("kube").inc()
        report.errors.append(f"free GPUs: {exc}")
        return {}
