"""Simulation benchmark: every policy on every trace, cold starts 60/120/300 s, in one run.

    .venv/bin/python bench/sim_bench.py [--traces ../shared/data/traces] [--json OUT.json]
        [--forecaster holt_winters|model] [--cold-starts 60,120,300]

Prints, per cold start, GPU-hours relative to the oracle and to the best *tuned* reactive
baseline (the cheapest of hpa/keda/kpa tuned to reach the attainment goal), the attainments,
and a check of the issue 3 targets; then the simulator's speed. Not a test: nothing is asserted,
the numbers go to bench/RESULTS.md with this command.

Daily seasonality (where the 0.85x target applies) is measured, not assumed: the demand's
autocorrelation at a lag of one day, on 10-minute means, over traces of at least 3 days.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from aiscaler.forecast import DEFAULT_CHECKPOINT, Forecaster
from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.sim.engine import Demand, SimConfig
from aiscaler.sim.predictive import (
    forecast_step,
    forecast_table,
    horizon_steps,
    planning_quantiles,
)
from aiscaler.sim.report import Report, aiscaler_at_attainment, simulate, to_json
from aiscaler.sim.trace import Trace, default_capacity, load_trace

COLD_STARTS = (60.0, 120.0, 300.0)
ATTAINMENT = 0.99
SEASONAL_ACF = 0.5
TARGET_RATIO = 0.85
TARGET_GAP = 0.005
DEFAULT_TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "traces"


def demand_column(path: Path) -> str:
    header = path.open().readline().strip().split(",")
    return "value" if "value" in header else "requests"


def daily_autocorrelation(trace: Trace) -> float | None:
    """Autocorrelation at one day of the 10-minute means; None for traces under 3 days."""
    per = max(1, round(600 / trace.bin_s))
    n = len(trace.rate) // per
    x = trace.rate[: n * per].reshape(n, per).mean(axis=1)
    lag = round(86_400 / (per * trace.bin_s))
    if n < 3 * lag:
        return None
    a, b = x[:-lag] - x[:-lag].mean(), x[lag:] - x[lag:].mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--forecaster",
        choices=("holt_winters", "model"),
        default="holt_winters",
        help="the issue 3 targets are stated for the baseline forecaster (the default)",
    )
    parser.add_argument("--cold-starts", default=",".join(f"{d:g}" for d in COLD_STARTS))
    args = parser.parse_args()

    if args.forecaster == "model":
        from aiscaler.forecast.model import ModelForecaster

        forecaster: Forecaster = ModelForecaster.load(DEFAULT_CHECKPOINT)
    else:
        forecaster = HoltWintersForecaster()
    cold_starts = [float(d) for d in args.cold_starts.split(",")]
    reports: dict[float, list[tuple[Report, float | None]]] = {d: [] for d in cold_starts}
    documents = []
    # trace, days, policy runs, seconds for all of them at cold start 120 s
    timing: list[tuple[str, float, int, float]] = []
    for path in sorted(args.traces.glob("*.csv")):
        trace = load_trace(path, demand_column(path))
        acf = daily_autocorrelation(trace)
        capacity = default_capacity(trace.rate)
        demand = Demand(trace.rate, trace.bin_s)
        t0 = time.perf_counter()
        step = forecast_step(trace.bin_s)
        table = forecast_table(
            demand,
            trace.bin_s,
            forecaster,
            horizon_steps(step, max(cold_starts)),
            planning_quantiles(ATTAINMENT),
        )
        forecast_s = time.perf_counter() - t0
        for cold in cold_starts:
            config = SimConfig(capacity=capacity, cold_start_s=cold, slo_attainment=ATTAINMENT)
            t0 = time.perf_counter()
            report = simulate(trace, config, tune=True, table=table)
            if cold == 120.0:
                runs = sum(map(len, report.sweeps.values())) + sum(
                    r.policy not in report.sweeps for r in report.results
                )
                seconds = time.perf_counter() - t0 + forecast_s
                timing.append((trace.name, trace.duration_s / 86_400, runs, seconds))
            add_equal_attainment(report, forecaster)  # not timed: not part of a simulate run
            reports[cold].append((report, acf))
            documents.append(to_json(report))
        print(f"done {trace.name} ({trace.duration_s / 86_400:.1f} days)", flush=True)

    for cold in cold_starts:
        print_table(cold, reports[cold])
    print_speed(timing)
    if args.json:
        args.json.write_text(json.dumps(documents, indent=1) + "\n")
    return 0


def add_equal_attainment(report: Report, forecaster: Forecaster) -> None:
    """Where no tuned baseline reaches the goal, the best of them is compared at its own
    attainment: add aiscaler at the lowest goal that still reaches it (when the shipped goal
    does), so that the GPU-hours are compared at equal attainment."""
    best, ai = report.best_tuned_reactive(), report.find("aiscaler")
    assert best is not None and ai is not None
    level = best.outcome.slo_attainment
    if best.params.get("goal_met") or ai.outcome.slo_attainment < level:
        return
    equal = aiscaler_at_attainment(report.trace, report.config, forecaster, ai.outcome, level)
    if equal is not None:
        report.results.append(equal)


def print_table(cold: float, rows: list[tuple[Report, float | None]]) -> None:
    print(f"\n## cold start {cold:g} s, attainment goal {ATTAINMENT:.0%}")
    print(
        "GPU-hours / oracle (attainment %); best = cheapest tuned reactive meeting the goal;"
        " ai/best = aiscaler GPU-hours / best's; gap = aiscaler attainment - best's (points);"
        " ai@best = aiscaler at the lowest goal reaching best's attainment (where best misses"
        " the goal), eq/best its GPU-hours / best's"
    )
    head = (
        f"{'trace':<40}{'acf1d':>6}{'aiscaler':>15}{'hpa tuned':>15}{'keda tuned':>15}"
        f"{'kpa tuned':>15}{'hpa default':>15}{'static p99':>15}{'best':>12}"
        f"{'ai/best':>8}{'gap':>7}{'ai@best':>26}{'eq/best':>8}  target"
    )
    print(head)
    for report, acf in rows:
        oracle = report.oracle_gpu_hours or float("nan")

        def cell(policy: str, variant: str, rep: Report = report, ref: float = oracle) -> str:
            r = rep.find(policy, variant)
            if r is None:
                return "-"
            return f"{r.outcome.gpu_hours / ref:.2f} ({r.outcome.slo_attainment:.2%})"

        best = report.best_tuned_reactive()
        ai = report.find("aiscaler")
        assert best is not None and ai is not None
        ratio = ai.outcome.gpu_hours / best.outcome.gpu_hours
        gap = ai.outcome.slo_attainment - best.outcome.slo_attainment
        equal = report.find("aiscaler", "equal-attainment")
        equal_ratio = equal.outcome.gpu_hours / best.outcome.gpu_hours if equal else None
        at_goal = f"goal {equal.params['goal']:.3f}: " if equal else ""
        verdict = target_verdict(cold, acf, ratio, gap, equal_ratio)
        print(
            f"{report.trace.name:<40}{acf if acf is not None else float('nan'):>6.2f}"
            f"{cell('aiscaler', 'default'):>15}{cell('hpa', 'tuned'):>15}"
            f"{cell('keda', 'tuned'):>15}{cell('kpa', 'tuned'):>15}"
            f"{cell('hpa', 'default'):>15}{cell('static', 'p99'):>15}"
            f"{best.policy + ('' if best.params.get('goal_met') else '*'):>12}"
            f"{ratio:>8.2f}{gap * 100:>+7.2f}"
            f"{at_goal + cell('aiscaler', 'equal-attainment'):>26}"
            f"{equal_ratio if equal_ratio is not None else float('nan'):>8.2f}  {verdict}"
        )
    if any(not (r.best_tuned_reactive() or r.results[0]).params.get("goal_met") for r, _ in rows):
        print("* no tuned setting reached the goal: the best attainment is the reference")


def target_verdict(
    cold: float, acf: float | None, ratio: float, gap: float, equal_ratio: float | None
) -> str:
    """Issue 3: never more than 0.5 points below the best tuned baseline; on daily-seasonal
    traces at cold start 120 s, at most 0.85x its GPU-hours at equal or better attainment
    (at the shipped goal, or, where the baseline misses the goal, at the baseline's
    attainment: `equal_ratio`)."""
    notes = []
    if gap < -TARGET_GAP:
        notes.append("MISS attainment gap")
    if cold == 120.0 and acf is not None and acf >= SEASONAL_ACF:
        if ratio <= TARGET_RATIO and gap >= 0:
            notes.append("ok 0.85x")
        elif equal_ratio is not None and equal_ratio <= TARGET_RATIO:
            notes.append("ok 0.85x at equal attainment")
        else:
            notes.append("MISS 0.85x")
    return ", ".join(notes) or "ok"


def print_speed(timing: list[tuple[str, float, int, float]]) -> None:
    print(
        "\n## simulator speed at cold start 120 s: every policy run on the trace (aiscaler with "
        "its forecasts, hpa/keda/kpa default + tuning runs, static x2, oracle)"
    )
    for name, days, runs, seconds in timing:
        print(
            f"{name:<40}{days:>6.1f} days {runs:>3d} runs {seconds:>7.1f} s  "
            f"{runs * days / seconds:>7.1f} simulated days/s"
        )


if __name__ == "__main__":
    raise SystemExit(main())
