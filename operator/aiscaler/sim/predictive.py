"""The `aiscaler` policy: the product's planner (aiscaler.core.planner) fed by a forecaster.

The simulator plays the operator's part: every tick it reads what Prometheus would show
(`aiscaler.sim.observe`: the one-minute request rate, the TTFT histogram since the last tick),
the replicas and ready pods from the API, takes the latest forecast and calls `plan_service`,
which decides exactly as it does in the cluster. No planning logic lives here.

Forecasts are computed up front in batched calls, one history window per forecast origin, each
ending at its own origin, so no forecast sees past its origin. The series is the requests the
scrapes counted (the seed's arrivals) per step of 60 s (or the trace's bin when coarser); the
forecaster is re-run every 5 minutes (every step when the step is longer) and the planner
accounts for the forecast's age.

The knobs a user sets on the InferenceService, and so what `--tune` searches: `goal` (the
attainment `slo.attainment` asks for), `min_replicas` (`replicas.min`) and `target` (the share
of a replica's real capacity declared as `capacity.perReplica`: headroom). The request time
(`capacity.requestSeconds`) is set to the simulated mean service time, which a user reads off
vLLM's request latency; it is a property of the service, not a knob.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiscaler.core.planner import FORECAST_QUANTILES, plan_service
from aiscaler.core.types import (
    DEFAULT_SCALE_DOWN,
    Forecast,
    PlannerConfig,
    ScaleMemory,
    ServiceObservation,
    ServiceSpec,
)
from aiscaler.forecast.base import Forecaster
from aiscaler.sim.cluster import bill_live_pods, scale_to, start_with
from aiscaler.sim.observe import last_window, request_rate, share_within, ttft_counts
from aiscaler.sim.reactive import RATE_WINDOW_S
from aiscaler.sim.serving import advance, finish
from aiscaler.sim.state import DT, Run, SimConfig

FloatArray = npt.NDArray[np.float64]

TICK_S = 30.0  # the operator's default planning interval (DESIGN.md §2)
MIN_FORECAST_STEP_S = 60.0
FORECAST_EVERY_S = 300.0
# Holt-Winters fits the latest three daily seasons; a longer context would be ignored.
CONTEXT_S = 3 * 86_400.0
CHUNK = 512  # history windows per forecaster call: bounds memory on long traces


def forecast_step(bin_s: float) -> float:
    return max(MIN_FORECAST_STEP_S, bin_s)


def refresh_interval(step_s: float) -> float:
    return max(FORECAST_EVERY_S, step_s)


def horizon_steps(step_s: float, lead_s: float) -> int:
    """Rows a forecast needs: its age, the lead time, one tick and the scale-down window the
    planner looks through before it lets a replica go."""
    ahead = refresh_interval(step_s) + lead_s + TICK_S + DEFAULT_SCALE_DOWN.stabilization_window_s
    return math.ceil(ahead / step_s) + 1


@dataclass(frozen=True)
class ForecastTable:
    """Forecasts at origins every `every_s` (origin i at (i + 1) * every_s)."""

    step_s: float
    every_s: float
    quantiles: tuple[float, ...]
    values: FloatArray  # (origins, horizon, quantiles)
    source: str  # the forecaster's name
    notes: tuple[str, ...]  # per origin: why the forecaster fell back (e.g. short history)

    def latest(self, now: float) -> tuple[Forecast, float] | None:
        """The newest forecast whose origin is not after `now`, with its origin."""
        i = int(now // self.every_s) - 1
        if i < 0:
            return None
        i = min(i, len(self.values) - 1)
        forecast = Forecast(self.step_s, self.quantiles, self.values[i], self.source, self.notes[i])
        return forecast, (i + 1) * self.every_s


def forecast_table(
    counts: FloatArray,
    bin_s: float,
    forecaster: Forecaster,
    horizon: int,
    quantiles: tuple[float, ...] = FORECAST_QUANTILES,
) -> ForecastTable:
    """Forecasts of the request rate from the arrivals per `DT` step (`counts`)."""
    step = forecast_step(bin_s)
    per_step = round(step / DT)
    n = len(counts) // per_step
    series = counts[: n * per_step].reshape(n, per_step).sum(axis=1) / step
    every = refresh_interval(step)
    every_steps = round(every / step)
    context = math.ceil(CONTEXT_S / step)
    ends = list(range(every_steps, n + 1, every_steps))
    values = np.empty((len(ends), horizon, len(quantiles)))
    notes: list[str] = []
    for lo in range(0, len(ends), CHUNK):
        batch = ends[lo : lo + CHUNK]
        windows = [series[max(0, e - context) : e] for e in batch]
        for k, fc in enumerate(forecaster.forecast(windows, step, horizon, quantiles)):
            values[lo + k] = fc.values
            notes.append(fc.note)
    return ForecastTable(step, every, quantiles, values, forecaster.name, tuple(notes))


@dataclass(frozen=True)
class AiscalerKnobs:
    goal: float  # slo.attainment on the InferenceService
    min_replicas: int = 1  # replicas.min
    target: float = 1.0  # capacity.perReplica declared as this share of the real capacity

    def __post_init__(self) -> None:
        if not 0 < self.goal < 1:
            raise ValueError(f"aiscaler.goal must be in (0, 1), got {self.goal}")
        if self.min_replicas < 0:
            raise ValueError(f"aiscaler.min_replicas must be >= 0, got {self.min_replicas}")
        if not 0 < self.target <= 1:
            raise ValueError(f"aiscaler.target must be in (0, 1], got {self.target}")


def run_aiscaler(
    run: Run, config: SimConfig, knobs: AiscalerKnobs, table: ForecastTable, first_rate: float
) -> None:
    """Drive the run with the planner every TICK_S from time 0 to the end of the trace."""
    declared = config.capacity * knobs.target
    spec = ServiceSpec(
        name="simulated",
        max_replicas=config.max_replicas,
        min_replicas=knobs.min_replicas,
        gpus_per_replica=config.gpus_per_replica,
        capacity_per_replica=declared,
        request_s=config.slots / config.capacity,  # the mean service time (sim.serving)
        cold_start_s=config.cold_start_s,
        attainment=knobs.goal,
    )
    planner = PlannerConfig(
        tick_s=TICK_S, max_forecast_age_s=table.every_s + TICK_S, demand_window_s=RATE_WINDOW_S
    )
    memory = ScaleMemory()
    start_with(run, max(knobs.min_replicas, math.ceil(first_rate / declared - 1e-9)))
    end = float(run.p[0]["end_s"])
    seen = -1  # the last scrape window whose latency the planner has read
    k = 0
    now = 0.0
    while now < end:
        advance(run, now)
        latest = table.latest(now)
        forecast, origin = latest if latest is not None else (None, None)
        window = int(last_window(run, now))
        rate = float(request_rate(run, now, RATE_WINDOW_S))
        s = run.s[0]
        free = int(s["pool_gpus"] - s["allocated_gpus"])
        obs = ServiceObservation(
            current_replicas=int(s["pods"]),
            demand=None if math.isnan(rate) else rate,
            demand_time=(window + 1) * config.scrape_s,
            demand_error="no scrape yet" if math.isnan(rate) else "",
            forecast=forecast,
            forecast_origin=origin,
            ready_replicas=int(s["ready"]),
            free_gpus=free if config.node_provision_s > 0 else None,
            slo_met=_slo_met(run, seen + 1, window, config.slo_delay_s, knobs.goal),
        )
        seen = max(seen, window)
        decision = plan_service(spec, obs, memory, now, planner, config.node_provision_s)
        memory = decision.memory
        scale_to(run, now, decision.replicas)
        k += 1
        now = k * TICK_S
    advance(run, end)
    finish(run)
    bill_live_pods(run)


def _slo_met(run: Run, first: int, last: int, delay_s: float, goal: float) -> bool | None:
    """Whether the requests started in scrape windows [first, last] met the goal, read off the
    TTFT histogram as an operator would (None: nothing started, or no new window)."""
    if last < first:
        return None
    share = share_within(ttft_counts(run, first, last), delay_s)
    return None if share is None else share >= goal
