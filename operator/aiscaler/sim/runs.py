"""Running a policy configuration on a scenario, seed by seed, and measuring the run.

A `Scenario` is what every policy shares on one trace: the demand in requests/s per second, the
configuration, the seeds (each one workload, common to every policy: common random numbers), the
tune/evaluate split and, for aiscaler, a forecast table per seed. `run_config` runs one policy
configuration on every seed; `run_configs` runs many, on worker processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing import get_context
from typing import Any

import numpy as np
import numpy.typing as npt

from aiscaler.forecast.base import Forecaster
from aiscaler.sim.oracle import oracle_need, oracle_pods, run_schedule
from aiscaler.sim.predictive import (
    AiscalerKnobs,
    ForecastTable,
    forecast_step,
    forecast_table,
    horizon_steps,
    run_aiscaler,
)
from aiscaler.sim.reactive import reactive_policy, run_reactive
from aiscaler.sim.serving import delay_bin_upper
from aiscaler.sim.state import (
    DT,
    MEASURE_WINDOW_S,
    PART_EVALUATE,
    PART_TUNE,
    Run,
    SimConfig,
    Workload,
    kernel_for,
    make_workload,
    new_run,
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Outcome:
    """One run measured over one part (tune or evaluate) of the trace."""

    gpu_hours: float
    slo_attainment: float  # share of the requests arrived in the part that waited <= SLO
    p99_delay_s: float  # inf when more than 1% never started
    worst_5min_attainment: float
    scale_events: int
    cold_starts: int  # pods requested in the part


@dataclass(frozen=True)
class PolicyConfig:
    policy: str  # aiscaler, hpa, keda, kpa, static, oracle
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SeedRun:
    tune: Outcome | None  # None without a tune window
    evaluate: Outcome
    ready: FloatArray | None  # ready pods per scrape window, when asked for


@dataclass
class Scenario:
    name: str
    rates: FloatArray  # requests/s per DT step
    config: SimConfig
    seeds: tuple[int, ...]
    split_s: float  # start of the evaluation window (0: no tune window)
    bin_s: float
    forecaster: Forecaster | None = None
    tables: dict[int, ForecastTable] = field(default_factory=dict)
    workloads: dict[int, Workload] = field(default_factory=dict)

    @property
    def kernel(self) -> int:
        return kernel_for(self.config, self.rates)

    @property
    def end_s(self) -> float:
        return len(self.rates) * DT

    def workload(self, seed: int) -> Workload:
        if seed not in self.workloads:
            self.workloads[seed] = make_workload(self.rates, self.config, seed, self.kernel)
        return self.workloads[seed]

    @cached_property
    def oracle_need(self) -> npt.NDArray[np.int64]:
        """Replicas the oracle needs per second: the oracle's pods and static sizing use it."""
        return oracle_need(self.rates, self.config)

    def table(self, seed: int) -> ForecastTable:
        """The forecasts of this seed's arrivals, covering the lead time (the quantiles the
        operator asks for: every goal is planned from the same forecast, as in the cluster)."""
        table = self.tables.get(seed)
        if table is None:
            if self.forecaster is None:
                raise ValueError("the aiscaler policy needs a forecaster")
            cfg = self.config
            lead_s = cfg.cold_start_s + cfg.node_provision_s
            horizon = horizon_steps(forecast_step(self.bin_s), lead_s)
            counts = self.workload(seed).counts
            table = forecast_table(counts, self.bin_s, self.forecaster, horizon)
            self.tables[seed] = table
        return table


def measure(run: Run, part: int) -> Outcome:
    split, end = float(run.p[0]["split_s"]), float(run.p[0]["end_s"])
    lo, hi = (0.0, split) if part == PART_TUNE else (split, end)
    first = int(lo // MEASURE_WINDOW_S)
    last = math.ceil(hi / MEASURE_WINDOW_S)
    arrived = run.measured[first:last]
    hit = run.measured_hit[first:last]
    total = float(arrived.sum())
    attainment = float(hit.sum()) / total if total > 0 else 1.0
    busy = arrived > 0
    worst = float(np.min(hit[busy] / arrived[busy])) if busy.any() else 1.0
    return Outcome(
        gpu_hours=float(run.gpu_s[part]) / 3600.0,
        slo_attainment=min(1.0, attainment),
        p99_delay_s=_p99(run.delays[part]),
        worst_5min_attainment=min(1.0, worst),
        scale_events=int(run.scale_events[part]),
        cold_starts=int(run.cold_starts[part]),
    )


def _p99(by_bin: FloatArray) -> float:
    total = float(by_bin.sum())
    if total <= 0:
        return 0.0
    k = int(np.searchsorted(np.cumsum(by_bin), 0.99 * total))
    return delay_bin_upper(k)


def run_config(
    scenario: Scenario, config: PolicyConfig, seed: int, keep_series: bool = False
) -> SeedRun:
    """One policy configuration on one seed."""
    cfg = scenario.config
    workload = scenario.workload(seed)
    run = new_run(cfg, workload, scenario.kernel, scenario.split_s)
    first_rate = float(scenario.rates[: round(scenario.bin_s / DT)].mean())
    if config.policy == "aiscaler":
        knobs = AiscalerKnobs(**{"goal": cfg.slo_attainment, **config.params})
        table = scenario.table(seed)
        run_aiscaler(run, cfg, knobs, table, first_rate)
    elif config.policy == "oracle":
        need = np.minimum(scenario.oracle_need, cfg.max_replicas)
        requested, stops = oracle_pods(need, cfg.cold_start_s)
        run_schedule(run, requested, stops)
    else:
        record = reactive_policy(config.policy, **config.params)
        if config.policy != "static":
            record[0]["replicas"] = initial_replicas(record[0], cfg, first_rate)
        run_reactive(run, record, np.zeros(0, dtype=np.int64))
    tune = measure(run, PART_TUNE) if scenario.split_s > 0 else None
    ready = run.win_ready[: int(run.s[0]["closed_windows"])].copy() if keep_series else None
    return SeedRun(tune, measure(run, PART_EVALUATE), ready)


def check_config(config: PolicyConfig, sim: SimConfig) -> None:
    """Raise ValueError naming a knob the policy does not have or a value out of range, before
    anything runs."""
    if config.policy == "aiscaler":
        AiscalerKnobs(**{"goal": sim.slo_attainment, **config.params})
    elif config.policy == "oracle":
        if config.params:
            raise ValueError(f"the oracle has no knobs, got {sorted(config.params)}")
    else:
        reactive_policy(config.policy, **config.params)


def initial_replicas(policy: np.void, config: SimConfig, rate: float) -> int:
    """Replicas at time 0: what the policy's target asks for the first bin's demand."""
    per_replica = policy["target"] * config.capacity
    return max(int(policy["min_replicas"]), math.ceil(rate / per_replica - 1e-9))


def static_replicas(scenario: Scenario, quantile: float) -> int:
    """Fixed replicas sized with hindsight: the oracle's need at its peak (or a quantile)."""
    return max(1, int(np.ceil(np.quantile(scenario.oracle_need, quantile))))


_SCENARIO: Scenario | None = None  # the scenario worker processes run (inherited by fork)


def _run_in_worker(config: PolicyConfig, keep_series: bool) -> list[SeedRun]:
    assert _SCENARIO is not None
    return [run_config(_SCENARIO, config, seed, keep_series) for seed in _SCENARIO.seeds]


def run_configs(
    scenario: Scenario,
    configs: Sequence[PolicyConfig],
    jobs: int | None = None,
    keep_series: Callable[[PolicyConfig], bool] = lambda c: False,
) -> list[list[SeedRun]]:
    """Every configuration on every seed, on `jobs` worker processes (default: one per CPU).
    Workloads, the oracle's need, forecasts and compiled code are prepared first, so the forked
    workers share them."""
    for seed in scenario.seeds:
        scenario.workload(seed)
    if any(c.policy in ("oracle", "static") for c in configs):
        _ = scenario.oracle_need
    if any(c.policy == "aiscaler" for c in configs):
        for seed in scenario.seeds:
            scenario.table(seed)
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(configs) <= 1:
        return [
            [run_config(scenario, c, seed, keep_series(c)) for seed in scenario.seeds]
            for c in configs
        ]
    _warm_up(scenario)
    global _SCENARIO
    _SCENARIO = scenario
    try:
        with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
            futures = [pool.submit(_run_in_worker, c, keep_series(c)) for c in configs]
            return [f.result() for f in futures]
    finally:
        _SCENARIO = None


def _warm_up(scenario: Scenario) -> None:
    """Compile the kernels once in this process (a few seconds of trace), so that forked workers
    do not each compile them."""
    short = Scenario("warm-up", scenario.rates[:120], scenario.config, (0,), 0.0, scenario.bin_s)
    for policy in ("hpa", "oracle"):
        run_config(short, PolicyConfig(policy), 0)
