"""Every policy on one trace, side by side (BENCHMARK.md protocol v2): runs, tuning, the
comparison at equal attainment, the JSON document and the table.

- Every policy runs at its defaults (`--set` fixes knobs of a default); static twice (peak, p99);
  the oracle once.
- With `tune`, each of aiscaler, hpa, keda and kpa also runs every configuration of its grid
  (`aiscaler.sim.tuning`) and the selection rule picks one on the tune window: variant `tuned`.
- Figures are evaluation-window means over the seeds, with their spread (max - min).
- The comparison: each tuned policy's GPU-hours at the goal on its frontier (its configurations
  on the evaluation window), the best reactive one's, and aiscaler's gap closed towards the
  oracle: (best_reactive - aiscaler) / (best_reactive - oracle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from aiscaler.sim.runs import (
    Outcome,
    PolicyConfig,
    Scenario,
    SeedRun,
    check_config,
    run_configs,
    static_replicas,
)
from aiscaler.sim.tuning import REACTIVE, TUNED, configurations, frontier_cost, pick
from aiscaler.table import render

POLICIES = ("aiscaler", "hpa", "keda", "kpa", "static", "oracle")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Summary:
    """Means over seeds of an Outcome's fields, and their spreads (max - min)."""

    mean: dict[str, float]
    spread: dict[str, float]

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Summary:
        names = [f.name for f in fields(Outcome)]
        values = {n: [float(getattr(o, n)) for o in outcomes] for n in names}
        return cls(
            {n: float(np.mean(v)) for n, v in values.items()},
            {n: _spread(v) for n, v in values.items()},
        )

    def __getattr__(self, name: str) -> float:
        try:
            return self.mean[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    variant: str  # "default" | "tuned" | "p99" (static)
    params: dict[str, Any]
    summary: Summary  # evaluation window
    ready: FloatArray | None = None  # ready pods per scrape window, first seed (for plots)


@dataclass(frozen=True)
class ConfigResult:
    policy: str
    params: dict[str, Any]
    tune: Summary
    evaluate: Summary


@dataclass
class Report:
    scenario: Scenario
    column: str
    unit: str  # how the column became requests
    results: list[PolicyResult]
    configs: list[ConfigResult] = field(default_factory=list)

    def find(self, policy: str, variant: str = "default") -> PolicyResult | None:
        return next((r for r in self.results if (r.policy, r.variant) == (policy, variant)), None)

    @property
    def oracle_gpu_hours(self) -> float | None:
        oracle = self.find("oracle")
        return oracle.summary.gpu_hours if oracle else None

    def frontier(self, policy: str) -> float | None:
        """GPU-hours at the goal on the policy's evaluation-window frontier."""
        points = [
            (c.evaluate.gpu_hours, c.evaluate.slo_attainment)
            for c in self.configs
            if c.policy == policy
        ]
        return frontier_cost(points, self.scenario.config.slo_attainment) if points else None

    def best_reactive(self) -> tuple[str, float] | None:
        """The reactive baseline cheapest at the goal on its frontier."""
        costs = [(p, self.frontier(p)) for p in REACTIVE]
        reached = [(p, c) for p, c in costs if c is not None]
        return min(reached, key=lambda pc: pc[1]) if reached else None

    def gap_closed(self) -> float | None:
        best, ai, oracle = self.best_reactive(), self.frontier("aiscaler"), self.oracle_gpu_hours
        if best is None or ai is None or oracle is None or best[1] <= oracle:
            return None
        return (best[1] - ai) / (best[1] - oracle)


def simulate(
    scenario: Scenario,
    policies: Sequence[str] = POLICIES,
    tune: bool = False,
    settings: dict[str, dict[str, Any]] | None = None,
    budget: int = 48,
    jobs: int | None = None,
    column: str = "requests",
    unit: str = "requests",
) -> Report:
    """Every requested policy on the scenario; `settings` fixes knobs of the default variants
    (`--set`)."""
    settings = settings or {}
    unknown = [p for p in (*policies, *settings) if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    cfg = scenario.config
    runs: list[tuple[str, str, PolicyConfig]] = []  # (policy, variant, configuration)
    for name in policies:
        params = dict(settings.get(name, {}))
        if name == "static":
            for variant, quantile in (("default", 1.0), ("p99", 0.99)):
                replicas = params.get("replicas", static_replicas(scenario, quantile))
                runs.append((name, variant, PolicyConfig(name, {**params, "replicas": replicas})))
        else:
            runs.append((name, "default", PolicyConfig(name, params)))
    for _, _, c in runs:
        check_config(c, cfg)
    grids: list[PolicyConfig] = []
    if tune:
        tune_rates = scenario.rates[: round(scenario.split_s)]
        for name in policies:
            if name in TUNED:
                grids += [
                    PolicyConfig(name, params)
                    for params in configurations(name, tune_rates, cfg.capacity, budget)
                ]
    done = run_configs(
        scenario,
        [c for _, _, c in runs] + grids,
        jobs,
        keep_series=lambda c: any(c is r for _, _, r in runs),
    )
    results = [
        PolicyResult(p, v, c.params, Summary.of([s.evaluate for s in seeds]), seeds[0].ready)
        for (p, v, c), seeds in zip(runs, done, strict=False)
    ]
    configs = [
        ConfigResult(
            c.policy, c.params, _tune_summary(seeds), Summary.of([s.evaluate for s in seeds])
        )
        for c, seeds in zip(grids, done[len(runs) :], strict=True)
    ]
    for name in policies:
        mine = [c for c in configs if c.policy == name]
        if mine:
            chosen = mine[pick([(c.tune.gpu_hours, c.tune.slo_attainment) for c in mine],
                               cfg.slo_attainment)]  # fmt: skip
            goal_met = chosen.tune.slo_attainment >= cfg.slo_attainment
            params = {**chosen.params, "goal_met_in_tune_window": goal_met}
            results.append(PolicyResult(name, "tuned", params, chosen.evaluate))
    return Report(scenario, column, unit, results, configs)


def _tune_summary(seeds: Sequence[SeedRun]) -> Summary:
    tune = [s.tune for s in seeds]
    if any(t is None for t in tune):
        raise ValueError("tuning needs a tune window")
    return Summary.of([t for t in tune if t is not None])


OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))


def to_json(report: Report) -> dict[str, Any]:
    """The BENCHMARK.md document (protocol 2), plus each policy's ratio to the oracle and the
    comparison at equal attainment."""
    scenario, cfg = report.scenario, report.scenario.config
    oracle = report.oracle_gpu_hours
    policies = []
    for r in report.results:
        row: dict[str, Any] = {"policy": r.policy, "variant": r.variant, "params": r.params}
        for name in OUTCOME_FIELDS:
            row[name] = r.summary.mean[name]
            row[f"{name}_spread"] = r.summary.spread[name]
        row["gpu_hours_vs_oracle"] = r.summary.gpu_hours / oracle if oracle else None
        policies.append(row)
    best = report.best_reactive()
    frontiers = {p: report.frontier(p) for p in TUNED if any(c.policy == p for c in report.configs)}
    return {
        "protocol": 2,
        "trace": scenario.name,
        "column": report.column,
        "unit": report.unit,
        "bin_s": scenario.bin_s,
        "capacity": cfg.capacity,
        "cold_start_s": cfg.cold_start_s,
        "gpus_per_replica": cfg.gpus_per_replica,
        "slo_delay_s": cfg.slo_delay_s,
        "slo_attainment_target": cfg.slo_attainment,
        "queue": cfg.queue,
        "slots": cfg.slots,
        "service_cv": cfg.service_cv,
        "scrape_s": cfg.scrape_s,
        "seeds": len(scenario.seeds),
        "kernel": "exact" if scenario.kernel == 0 else "approx",
        "windows": {
            "tune": [0.0, scenario.split_s] if scenario.split_s > 0 else None,
            "evaluate": [scenario.split_s, scenario.end_s],
        },
        "policies": policies,
        "configs": [
            {
                "policy": c.policy,
                "params": c.params,
                "tune": {"gpu_hours": c.tune.gpu_hours, "slo_attainment": c.tune.slo_attainment},
                "evaluate": {
                    "gpu_hours": c.evaluate.gpu_hours,
                    "slo_attainment": c.evaluate.slo_attainment,
                },
            }
            for c in report.configs
        ],
        "comparison": {
            "frontier_gpu_hours_at_goal": frontiers,
            "best_reactive": best[0] if best else None,
            "best_reactive_gpu_hours": best[1] if best else None,
            "aiscaler_vs_best_reactive": (
                ai / best[1] if best and (ai := frontiers.get("aiscaler")) is not None else None
            ),
            "gap_closed": report.gap_closed(),
        },
    }


def format_table(report: Report) -> str:
    doc = to_json(report)
    head = (
        f"trace {doc['trace']} ({doc['column']} as {doc['unit']}, bin {doc['bin_s']:g} s), "
        f"capacity {doc['capacity']:.4g} requests/s per replica of {doc['slots']} slots, "
        f"cold start {doc['cold_start_s']:g} s, SLO: wait <= {doc['slo_delay_s']:g} s for "
        f"{doc['slo_attainment_target']:.2%} of requests; {doc['queue']} queue "
        f"({doc['kernel']} kernel), {doc['seeds']} seeds"
    )
    window = doc["windows"]["evaluate"]
    scope = (
        f"evaluation window {window[0] / 3600:.1f}-{window[1] / 3600:.1f} h "
        f"(tuned on 0-{window[0] / 3600:.1f} h)"
        if doc["windows"]["tune"]
        else "whole trace"
    )
    columns: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("policy", lambda p: p["policy"]),
        ("variant", lambda p: p["variant"]),
        ("GPU-h", lambda p: f"{p['gpu_hours']:.1f}"),
        ("±", lambda p: f"{p['gpu_hours_spread']:.1f}"),
        ("xOracle", lambda p: _ratio(p["gpu_hours_vs_oracle"])),
        ("attain", lambda p: f"{p['slo_attainment']:.2%}"),
        ("±", lambda p: f"{p['slo_attainment_spread'] * 100:.2f}"),
        ("worst5m", lambda p: f"{p['worst_5min_attainment']:.1%}"),
        ("p99 wait", lambda p: _seconds(p["p99_delay_s"])),
        ("scales", lambda p: f"{p['scale_events']:.0f}"),
        ("cold", lambda p: f"{p['cold_starts']:.0f}"),
        ("params", lambda p: _params(p["params"])),
    ]
    rows = [[get(p) for _, get in columns] for p in doc["policies"]]
    lines = [head, scope, render([name for name, _ in columns], rows, left=2)]
    lines.append(
        "GPU-h: GPU-hours billed from scale-up request to termination; xOracle: / the oracle's; "
        "attain: share of requests that waited <= the SLO; ±: spread over seeds; worst5m: the "
        "worst 5-minute attainment; p99 wait: 99th percentile queueing delay; scales: replica "
        "changes; cold: pods started"
    )
    comparison = doc["comparison"]
    oracle = report.oracle_gpu_hours
    if comparison["frontier_gpu_hours_at_goal"] and oracle:
        costs = ", ".join(
            f"{p} {_ratio(c / oracle) if c is not None else 'not reached'}"
            for p, c in comparison["frontier_gpu_hours_at_goal"].items()
        )
        goal = doc["slo_attainment_target"]
        lines.append(f"GPU-hours / oracle at {goal:.2%} attainment on each frontier: {costs}")
        if comparison["aiscaler_vs_best_reactive"] is not None:
            gap = comparison["gap_closed"]
            lines.append(
                f"aiscaler / best reactive ({comparison['best_reactive']}) at equal attainment: "
                f"{comparison['aiscaler_vs_best_reactive']:.3f}x; gap to the oracle closed: "
                + (f"{gap:.0%}" if gap is not None else "-")
            )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _seconds(value: float) -> str:
    return "never" if value == float("inf") else f"{value:.3g}"


def _spread(values: Sequence[float]) -> float:
    """Largest minus smallest; 0 when all are equal, infinities included."""
    low, high = min(values), max(values)
    return 0.0 if low == high else high - low


def _params(params: dict[str, Any]) -> str:
    text = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    return text or "-"
