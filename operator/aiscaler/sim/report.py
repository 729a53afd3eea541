"""Run every policy on one trace, side by side, and report (JSON of BENCHMARK.md, a table).

Reactive baselines run at their defaults and, with `tune`, over a sweep of their target
utilisation; the cheapest setting that reaches the attainment goal is reported as "tuned" (the
one with the best attainment when none reaches it, flagged `goal_met: false`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiscaler.forecast.base import Forecaster
from aiscaler.sim.baselines import Hpa, Keda, Kpa, Static
from aiscaler.sim.engine import Demand, Outcome, Policy, SimConfig, evaluate, run_policy
from aiscaler.sim.oracle import oracle_schedule
from aiscaler.sim.predictive import Aiscaler, ForecastTable
from aiscaler.sim.trace import Trace

POLICIES = ("aiscaler", "hpa", "keda", "kpa", "static", "oracle")
REACTIVE: dict[str, Callable[[float], Policy]] = {
    "hpa": lambda target: Hpa(target_utilization=target),
    "keda": lambda target: Keda(target_utilization=target),
    "kpa": lambda target: Kpa(target_utilization=target),
}
DEFAULT_TARGETS = {
    "hpa": Hpa().target_utilization,
    "keda": Keda().target_utilization,
    "kpa": Kpa().target_utilization,
}
TUNE_TARGETS = tuple(round(0.2 + 0.05 * i, 2) for i in range(16))  # 0.20, 0.25, ..., 0.95
ATTAINMENT_SLACK = 0.005  # "equal attainment": within half a point
# aiscaler_at_attainment: the attainment goals it tries, from the configured one down.
GOAL_STEP = 0.005
LOWEST_GOAL = 0.5


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    variant: str  # "default" | "tuned" | "p99" (static) | "sweep" | "equal-attainment"
    params: dict[str, Any]
    outcome: Outcome


@dataclass(frozen=True)
class Report:
    trace: Trace
    config: SimConfig
    results: list[PolicyResult]
    sweeps: dict[str, list[PolicyResult]] = field(default_factory=dict)  # for the Pareto chart

    def find(self, policy: str, variant: str = "default") -> PolicyResult | None:
        return next((r for r in self.results if (r.policy, r.variant) == (policy, variant)), None)

    @property
    def oracle_gpu_hours(self) -> float | None:
        oracle = self.find("oracle")
        return oracle.outcome.gpu_hours if oracle else None

    def best_tuned_reactive(self) -> PolicyResult | None:
        """The cheapest tuned reactive baseline meeting the goal (else the best attainment)."""
        tuned = [r for r in self.results if r.variant == "tuned"]
        meeting = [r for r in tuned if r.params.get("goal_met")]
        if meeting:
            return min(meeting, key=lambda r: r.outcome.gpu_hours)
        return max(tuned, key=lambda r: r.outcome.slo_attainment, default=None)


def simulate(
    trace: Trace,
    config: SimConfig,
    policies: Sequence[str] = POLICIES,
    tune: bool = False,
    forecaster: Forecaster | None = None,
    table: ForecastTable | None = None,
) -> Report:
    """Every requested policy on the same demand. `forecaster` (or a precomputed `table`) is
    needed for "aiscaler"."""
    demand = Demand(trace.rate, trace.bin_s)
    results: list[PolicyResult] = []
    sweeps: dict[str, list[PolicyResult]] = {}

    def run(policy: Policy) -> Outcome:
        return outcome_of(policy, demand, config)

    for name in policies:
        if name == "aiscaler":
            policy = Aiscaler(forecaster, trace.bin_s, table)
            outcome = run(policy)
            assert policy.table is not None
            params = {
                "forecaster": policy.table.source,
                "tick_s": policy.period_s,
                "forecasts_with_fallback": sum(1 for note in policy.table.notes if note),
                "forecasts": len(policy.table.notes),
            }
            results.append(PolicyResult(name, "default", params, outcome))
        elif name in REACTIVE:
            default_target = DEFAULT_TARGETS[name]
            default = PolicyResult(
                name,
                "default",
                {"target_utilization": default_target},
                run(REACTIVE[name](default_target)),
            )
            results.append(default)
            if tune:
                sweep = sweep_targets(run, REACTIVE[name], name, default, config.slo_attainment)
                sweeps[name] = sweep
                results.append(pick_tuned(sweep, config.slo_attainment))
        elif name == "static":
            results.append(PolicyResult(name, "default", {"sized_for": "peak"}, run(Static(1.0))))
            results.append(PolicyResult(name, "p99", {"sized_for": "p99"}, run(Static(0.99))))
        elif name == "oracle":
            schedule = oracle_schedule(demand.rate, demand.dt, config.capacity, config.cold_start_s)
            results.append(PolicyResult(name, "default", {}, evaluate(schedule, demand, config)))
        else:
            raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    return Report(trace, config, results, sweeps)


def outcome_of(policy: Policy, demand: Demand, config: SimConfig) -> Outcome:
    """Run `policy` on the demand and measure the run."""
    return evaluate(run_policy(policy, demand, config), demand, config)


def sweep_targets(
    run: Callable[[Policy], Outcome],
    make: Callable[[float], Policy],
    name: str,
    default: PolicyResult,
    goal: float,
) -> list[PolicyResult]:
    """The highest target of TUNE_TARGETS (the cheapest setting) that reaches the goal: cost and
    attainment fall as the target rises. Returns every run made, by target (the default run is
    reused)."""

    def run_target(target: float) -> PolicyResult:
        return PolicyResult(name, "sweep", {"target_utilization": target}, run(make(target)))

    done = bisect_settings(
        TUNE_TARGETS, run_target, goal, {default.params["target_utilization"]: default}
    )
    return [done[t] for t in sorted(done)]


def bisect_settings(
    settings: Sequence[float],
    run_setting: Callable[[float], PolicyResult],
    level: float,
    known: dict[float, PolicyResult],
) -> dict[float, PolicyResult]:
    """Bisect `settings`, ordered from the most generous to the cheapest (attainment falls along
    them), for the last one whose attainment reaches `level`: about log2(len(settings)) runs.
    When none reaches it, the most generous is run (the best attainment on offer). Returns
    `known` (runs already made, by setting) with every run added."""
    done = dict(known)

    def result(i: int) -> PolicyResult:
        if settings[i] not in done:
            done[settings[i]] = run_setting(settings[i])
        return done[settings[i]]

    meets, fails = -1, len(settings)  # invariant: index `meets` reaches it, `fails` not
    while fails - meets > 1:
        mid = (meets + fails) // 2
        if result(mid).outcome.slo_attainment >= level:
            meets = mid
        else:
            fails = mid
    if meets == -1:
        result(0)
    return done


def aiscaler_at_attainment(
    trace: Trace,
    config: SimConfig,
    forecaster: Forecaster,
    shipped: Outcome,
    level: float,
) -> PolicyResult | None:
    """The aiscaler policy at the lowest attainment goal (config's goal down to
    LOWEST_GOAL, in GOAL_STEP steps) at which it still reaches `level`: the cheapest run at equal
    or better attainment, for comparing with a baseline that cannot reach the goal itself.
    `shipped` is its outcome at config's goal. None when no goal tried reaches `level`."""
    demand = Demand(trace.rate, trace.bin_s)
    count = round((config.slo_attainment - LOWEST_GOAL) / GOAL_STEP) + 1
    goals = [round(config.slo_attainment - GOAL_STEP * i, 6) for i in range(count)]

    def run_goal(goal: float) -> PolicyResult:
        outcome = outcome_of(
            Aiscaler(forecaster, trace.bin_s), demand, replace(config, slo_attainment=goal)
        )
        return PolicyResult("aiscaler", "sweep", {"goal": goal}, outcome)

    known = {goals[0]: PolicyResult("aiscaler", "sweep", {"goal": goals[0]}, shipped)}
    cheapest = cheapest_reaching(bisect_settings(goals, run_goal, level, known).values(), level)
    if cheapest is None:
        return None
    return PolicyResult(
        "aiscaler", "equal-attainment", {**cheapest.params, "level": level}, cheapest.outcome
    )


def cheapest_reaching(results: Iterable[PolicyResult], level: float) -> PolicyResult | None:
    """The run with the fewest GPU-hours among those whose attainment reaches `level`."""
    reaching = [r for r in results if r.outcome.slo_attainment >= level]
    return min(reaching, key=lambda r: r.outcome.gpu_hours, default=None)


def pick_tuned(sweep: Sequence[PolicyResult], goal: float) -> PolicyResult:
    cheapest = cheapest_reaching(sweep, goal)
    best = cheapest or max(sweep, key=lambda r: r.outcome.slo_attainment)
    params = {
        **best.params,
        "goal_met": cheapest is not None,
        "swept": [r.params["target_utilization"] for r in sweep],
    }
    return PolicyResult(best.policy, "tuned", params, best.outcome)


def to_json(report: Report) -> dict[str, Any]:
    """The BENCHMARK.md document, plus the two ratios per policy and the reference runs."""
    cfg, trace = report.config, report.trace
    oracle = report.oracle_gpu_hours
    best = report.best_tuned_reactive()
    policies = []
    for r in report.results:
        o = r.outcome
        policies.append(
            {
                "policy": r.policy,
                "variant": r.variant,
                "params": r.params,
                "gpu_hours": o.gpu_hours,
                "slo_attainment": o.slo_attainment,
                "p99_delay_s": o.p99_delay_s,
                "worst_5min_attainment": o.worst_5min_attainment,
                "scale_events": o.scale_events,
                "cold_starts": o.cold_starts,
                "gpu_hours_vs_oracle": o.gpu_hours / oracle if oracle else None,
                "savings_vs_best_tuned": savings(r, best),
            }
        )
    return {
        "trace": trace.name,
        "column": trace.column,
        "bin_s": trace.bin_s,
        "capacity": cfg.capacity,
        "cold_start_s": cfg.cold_start_s,
        "gpus_per_replica": cfg.gpus_per_replica,
        "slo_delay_s": cfg.slo_delay_s,
        "slo_attainment_target": cfg.slo_attainment,
        "best_tuned_reactive": f"{best.policy}/{best.variant}" if best else None,
        "policies": policies,
    }


def savings(result: PolicyResult, best: PolicyResult | None) -> float | None:
    """1 - GPU-hours / best tuned reactive's, when the attainment is at least equal (within half
    a point); None when it is not (no saving is real at lower attainment) or there is no
    tuned baseline."""
    if best is None or best.outcome.gpu_hours <= 0:
        return None
    if result.outcome.slo_attainment < best.outcome.slo_attainment - ATTAINMENT_SLACK:
        return None
    return 1.0 - result.outcome.gpu_hours / best.outcome.gpu_hours


def format_table(report: Report) -> str:
    doc = to_json(report)
    filled = report.trace.filled_bins
    lines = [
        *(
            [f"note: {filled} missing bins of the trace repeat the bin before them"]
            if filled
            else []
        ),
        f"trace {doc['trace']} ({doc['column']}, bin {doc['bin_s']:g} s), capacity "
        f"{doc['capacity']:.4g}/s per replica, cold start {doc['cold_start_s']:g} s, "
        f"SLO delay {doc['slo_delay_s']:g} s at {doc['slo_attainment_target']:.2%}",
        f"{'policy':<9}{'variant':<9}{'params':<14}{'GPU-h':>10}{'xOracle':>9}{'saving':>8}"
        f"{'attain':>9}{'worst5m':>9}{'p99 s':>8}{'scales':>8}{'cold':>7}",
    ]
    for p in doc["policies"]:
        target = p["params"].get("target_utilization")
        param = (
            f"target {target:g}"
            if target is not None
            else str(p["params"].get("sized_for", p["params"].get("forecaster", "")))
        )
        ratio = f"{p['gpu_hours_vs_oracle']:.2f}" if p["gpu_hours_vs_oracle"] else "-"
        saving = (
            f"{p['savings_vs_best_tuned']:+.0%}" if p["savings_vs_best_tuned"] is not None else "-"
        )
        lines.append(
            f"{p['policy']:<9}{p['variant']:<9}{param:<14}{p['gpu_hours']:>10.1f}{ratio:>9}"
            f"{saving:>8}{p['slo_attainment']:>9.2%}{p['worst_5min_attainment']:>9.2%}"
            f"{p['p99_delay_s']:>8.1f}{p['scale_events']:>8d}{p['cold_starts']:>7d}"
        )
    if doc["best_tuned_reactive"]:
        lines.append(
            f"saving: versus the best tuned reactive baseline "
            f"({doc['best_tuned_reactive']}), only where attainment is within "
            f"{ATTAINMENT_SLACK:.1%} of it or better"
        )
    return "\n".join(lines)
