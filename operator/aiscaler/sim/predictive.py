"""The `aiscaler` policy: the product's planner (aiscaler.core.planner) fed by a forecaster.

The simulator plays the operator's part: every tick it observes the demand (the same one-minute
rate the baselines see), takes the latest forecast and calls `plan_service`, which decides
exactly as it does in the cluster. No planning logic lives here.

Forecasts are computed up front in batched calls, one history window per forecast origin, each
ending at its own origin, so no forecast sees past its origin. The series is the demand averaged
to a step of 60 s (or the trace's bin when coarser); the forecaster is re-run every 5 minutes
(every step when the step is longer) and the planner accounts for the forecast's age.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiscaler.core.planner import plan_service, replicas_for
from aiscaler.core.types import (
    DEFAULT_SCALE_DOWN,
    Forecast,
    PlannerConfig,
    ScaleMemory,
    ServiceObservation,
    ServiceSpec,
)
from aiscaler.forecast.base import Forecaster
from aiscaler.sim.baselines import METRIC_WINDOW_S
from aiscaler.sim.engine import Demand, SimConfig, fluid_queue

FloatArray = npt.NDArray[np.float64]

TICK_S = 30.0  # the operator's default planning interval (DESIGN.md §2)
MIN_FORECAST_STEP_S = 60.0
FORECAST_EVERY_S = 300.0
# Holt-Winters fits the latest three daily seasons; a longer context would be ignored.
CONTEXT_S = 3 * 86_400.0
QUANTILES = (0.5, 0.9, 0.95, 0.99)
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
    demand: Demand,
    bin_s: float,
    forecaster: Forecaster,
    horizon: int,
    quantiles: tuple[float, ...] = QUANTILES,
) -> ForecastTable:
    step = forecast_step(bin_s)
    per_step = round(step / demand.dt)
    n = demand.n // per_step
    series = demand.rate[: n * per_step].reshape(n, per_step).mean(axis=1)
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


class SloProbe:
    """Whether the latency objective held over each tick, as the operator reads it from the
    serving engine's latency histogram: held when at least `slo_attainment` of the tick's
    arrivals queued within the delay target, in a fluid FIFO queue at the simulator's steps
    served by the replicas ready at the start of the tick (a pod ready mid-tick counts from the
    next one)."""

    def __init__(self, demand: Demand, config: SimConfig) -> None:
        self._demand, self._config = demand, config
        self._queue = 0.0  # units waiting
        self._step = 0  # next simulator step to advance
        self._ready = 0

    def observe(self, now: float, ready: int) -> bool | None:
        """Advance to `now` (only the past) and say whether the tick met the objective; None
        when nothing arrived in it."""
        d, c = self._demand, self._config
        end = max(self._step, min(d.n, int(now / d.dt + 1e-9)))
        rate = self._ready * c.capacity  # units/s served
        arrivals = d.rate[self._step : end] * d.dt
        queue = fluid_queue(arrivals - rate * d.dt, self._queue)
        if len(queue):
            self._queue = float(queue[-1])
        self._step, self._ready = end, ready
        arrived = float(arrivals.sum())
        if arrived <= 0:
            return None
        # A step's arrivals wait behind the queue at its end: queue / rate seconds.
        within = float(arrivals[queue <= c.slo_delay_s * rate].sum())
        return within >= c.slo_attainment * arrived


def planning_quantiles(attainment: float) -> tuple[float, ...]:
    """The forecast's quantiles, with the attainment target among them (no interpolation)."""
    return tuple(sorted({*QUANTILES, attainment}))


@dataclass
class Aiscaler:
    """`forecaster` is used when no precomputed `table` (covering the lead time) is given."""

    forecaster: Forecaster | None
    bin_s: float
    table: ForecastTable | None = None
    min_replicas: int = 1  # InferenceService replicas.min default
    period_s: float = TICK_S

    def start(self, demand: Demand, config: SimConfig) -> int:
        step = forecast_step(self.bin_s)
        horizon = horizon_steps(step, config.cold_start_s + config.node_provision_s)
        quantiles = planning_quantiles(config.slo_attainment)
        if (
            self.table is None
            or self.table.values.shape[1] < horizon
            or self.table.quantiles != quantiles
        ):
            if self.forecaster is None:
                raise ValueError("the aiscaler policy needs a forecaster or a covering table")
            self.table = forecast_table(demand, self.bin_s, self.forecaster, horizon, quantiles)
        self._demand = demand
        self._config = config
        self._spec = ServiceSpec(
            name="simulated",
            max_replicas=config.max_replicas,
            min_replicas=self.min_replicas,
            gpus_per_replica=config.gpus_per_replica,
            capacity_per_replica=config.capacity,
            cold_start_s=config.cold_start_s,
            attainment=config.slo_attainment,
        )
        self._planner = PlannerConfig(
            tick_s=self.period_s, max_forecast_age_s=self.table.every_s + self.period_s
        )
        self._memory = ScaleMemory()
        self._probe = SloProbe(demand, config)
        first = demand.mean_rate(0.0, 0.0)
        return max(self.min_replicas, replicas_for(first, config.capacity))

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int:
        assert self.table is not None  # set by start()
        latest = self.table.latest(now)
        forecast, origin = latest if latest is not None else (None, None)
        obs = ServiceObservation(
            current_replicas=replicas,
            demand=self._demand.mean_rate(now, METRIC_WINDOW_S),
            demand_time=now,
            forecast=forecast,
            forecast_origin=origin,
            ready_replicas=ready,
            free_gpus=free_gpus if self._config.node_provision_s > 0 else None,
            slo_met=self._probe.observe(now, ready),
        )
        decision = plan_service(
            self._spec, obs, self._memory, now, self._planner, self._config.node_provision_s
        )
        self._memory = decision.memory
        return decision.replicas
