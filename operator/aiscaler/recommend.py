"""`aiscaler recommend`: what aiscaler would do now for one service, and what it would have done
over the service's own history next to a tuned HPA and its current replicas. Read-only.

The service is an InferenceService file (its demand query built and confined to its namespace
as the operator builds it, its capacity, cold start and SLO) or a demand query confined to
`--namespace` with the same PromQL guard. Two reads of Prometheus:

1. now: the operator's own history (288 points of 60 s ending now), the shipped forecaster and
   the planner (`aiscaler.core.planner.plan_service`) give the replicas and the planner's
   reason, as the operator's next tick would from a fresh start;
2. the replay: the history over `--since` at `--step`, the same trace `aiscaler export` writes
   (and read back the same way), through the simulator with `--tune` semantics: each policy
   tuned on the first part, every figure on the rest (docs/simulate.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiscaler.inputs import (
    MAX_REPLICAS,
    InputError,
    at_most,
    non_negative_count,
    non_negative_number,
    output_file,
    positive_count,
    positive_number,
)
from aiscaler.metrics.export_cli import add_history_arguments
from aiscaler.sim.cli import add_replay_arguments

if TYPE_CHECKING:
    from aiscaler.core.types import ServiceDecision, ServiceObservation, ServiceSpec
    from aiscaler.forecast.base import Forecaster
    from aiscaler.metrics.batch import Settings
    from aiscaler.metrics.ranges import RangeSeries
    from aiscaler.metrics.source import ServiceQuery
    from aiscaler.sim.report import Report
    from aiscaler.sim.trace import Trace

HELP = "what aiscaler would do now on a service's own Prometheus history, and would have done"
DAY_S = 86_400.0
# The replay tunes every policy on the first part of the history and scores it on the rest:
# less than a day leaves half a day or less for each, not a day's cycle of demand.
MIN_HISTORY_S = DAY_S
POLICIES = ("aiscaler", "hpa", "static", "oracle")
TUNE_FRACTION = 0.5  # simulate --tune's default: tuned on half the history, scored on the rest
KIND = "InferenceService"


@dataclass(frozen=True)
class Target:
    """The service recommended for: what the planner and the simulator are given."""

    label: str  # for the report: namespace/name or the query
    spec: ServiceSpec
    query: ServiceQuery
    slo_delay_s: float  # the latency objective the replay scores queueing delay against


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--service",
        type=Path,
        metavar="FILE.yaml",
        help="an InferenceService manifest: its demand query, confined to its namespace as the "
        "operator confines it, its capacity, cold start and SLO",
    )
    source.add_argument(
        "--query", help="PromQL of the demand rate (per second); needs --namespace and --capacity"
    )
    add_history_arguments(parser)
    parser.add_argument(
        "--capacity",
        type=positive_number,
        help="demand one replica serves, per second (default: the service's capacity.perReplica)",
    )
    parser.add_argument(
        "--cold-start",
        type=at_most(non_negative_number, DAY_S),
        help="seconds from scale-up to ready (default: the service's coldStart.seconds, or 120)",
    )
    parser.add_argument(
        "--gpus-per-replica",
        type=at_most(positive_count, 64),
        help="default: the service's resources.gpusPerReplica, or 1",
    )
    parser.add_argument(
        "--current-replicas",
        type=at_most(non_negative_count, MAX_REPLICAS),
        help="the replicas the target runs now: the planner starts from them and the replay holds "
        "them static (default: what the observed demand needs now; the static replay is then "
        "sized with hindsight for the peak)",
    )
    add_replay_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json")


def run(args: argparse.Namespace) -> int:
    from aiscaler.forecast import load_default_forecaster
    from aiscaler.metrics.batch import Settings
    from aiscaler.metrics.ranges import duration_s, timestamp_s

    if args.json is not None:
        output_file(args.json, "--json", {".json"})
    target = _target(args)
    end = timestamp_s(args.end, "--end") if args.end else time.time()
    since = duration_s(args.since)
    points = math.floor(since / args.step) + 1
    history = _demand(args.prometheus_url, target, end, Settings(args.step, points), args.since)
    if history is None:
        raise InputError(
            f"the demand query of {target.label} returned no data in the last {args.since}: "
            "check the metric and the selector, and that Prometheus scrapes the service"
        )
    trace = _trace(history, target.label, args.since)
    recent = _demand(args.prometheus_url, target, end, Settings(), args.since)
    forecaster, why = load_default_forecaster()
    print(f"forecaster: {why}", file=sys.stderr)
    decision, obs = _decide(target.spec, recent, forecaster, end, args.current_replicas)
    report = _replay(trace, target, forecaster, args)
    given = args.current_replicas is not None
    document = _document(target, end, history, decision, obs, given, report)
    print(_format(document, report))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    return 0


def _target(args: argparse.Namespace) -> Target:
    """The service from its file, or from --query and the flags; flags override the file."""
    from aiscaler.core.types import ServiceSpec
    from aiscaler.metrics.source import ServiceQuery

    if args.service is not None:
        if args.namespace is not None:
            raise InputError(
                "--namespace: the service's query is confined to the namespace in its file; "
                "leave --namespace out"
            )
        target = _service_file(args.service)
    else:
        if args.namespace is None:
            raise InputError(
                "--query needs --namespace: the query is confined to it as the operator "
                "confines a custom resource's query"
            )
        if args.capacity is None:
            raise InputError(
                "--query needs --capacity: the demand one replica serves per second "
                "(docs/capacity.md)"
            )
        query = ServiceQuery(args.namespace, "query", preset="custom", query=args.query)
        spec = ServiceSpec(name=f"{args.namespace}/query", max_replicas=MAX_REPLICAS)
        target = Target(f"--query {args.query!r} in {args.namespace}", spec, query, 2.0)
    overrides = {
        "capacity_per_replica": args.capacity,
        "cold_start_s": args.cold_start,
        "gpus_per_replica": args.gpus_per_replica,
    }
    spec = replace(target.spec, **{k: v for k, v in overrides.items() if v is not None})
    if spec.capacity_per_replica is None:
        raise InputError(
            f"{target.label} has no capacity.perReplica: give --capacity, the demand one "
            "replica serves per second (docs/capacity.md)"
        )
    return Target(target.label, spec, target.query, target.slo_delay_s)


def _service_file(path: Path) -> Target:
    """The one InferenceService of a manifest file, checked as `aiscaler validate` checks it."""
    from aiscaler.api.inference import InferenceService
    from aiscaler.handlers.mapping import service_query, service_spec
    from aiscaler.validate import documents, resource_problems

    found = [d for d in documents(path) if isinstance(d.data, dict) and d.data.get("kind") == KIND]
    if len(found) != 1:
        raise InputError(f"--service {path}: holds {len(found)} {KIND}s; give a file with one")
    [document] = found
    problems = resource_problems(document, None)
    if problems:
        raise InputError(f"--service {problems[0]} (aiscaler validate lists every problem)")
    body = {**document.data, "metadata": {"namespace": "default", **document.data["metadata"]}}
    model = InferenceService.model_validate(body)
    meta = body["metadata"]
    key = f"{meta['namespace']}/{meta['name']}"
    target = model.spec.scale_target_ref.name if model.spec.scale_target_ref else meta["name"]
    return Target(
        key,
        service_spec(key, model),
        service_query(body, model, target),
        model.spec.slo.latency.target_seconds,
    )


def _demand(
    url: str, target: Target, end: float, settings: Settings, since: str
) -> RangeSeries | None:
    """The service's demand series as the operator would query it with `settings` (its history
    step and length) up to `end`; None when Prometheus has none for it."""
    from aiscaler.metrics.batch import plan
    from aiscaler.metrics.errors import MetricError
    from aiscaler.metrics.history import HistoryCache
    from aiscaler.metrics.ranges import one_series, read_range

    empty = HistoryCache(settings.history_step_s, settings.history_points, settings.reread_s)
    [batch] = [
        b
        for b in plan([target.query], [], end, settings, empty)
        if b.kind in ("history", "custom_history")
    ]
    if isinstance(batch.query, MetricError):
        raise InputError(f"{target.label}: {batch.query}")
    q = batch.query
    found = read_range(url, q.promql, q.start, q.end, q.step_s)
    # A preset's query answers for every service of the namespace: this one's series carries its
    # namespace and selector values.
    wanted = {**target.query.selector, "namespace": target.query.namespace}
    mine = [s for s in found if all(s.labels.get(k, "") == wanted[k] for k in batch.by)]
    if not mine or all(math.isnan(v) for s in mine for v in s.values):
        return None
    return one_series(mine, f"the demand query of {target.label}", since)


def _trace(history: RangeSeries, label: str, since: str) -> Trace:
    """The history as the trace `aiscaler export` writes and `simulate --trace` reads (through
    the same CSV), so the replay is the one a user would run by hand on the exported file."""
    from aiscaler.metrics.export_cli import trace_lines
    from aiscaler.sim.trace import load_trace

    lines = trace_lines(history, "requests", f"the history of {label}", since)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.csv"
        path.write_text("\n".join(lines) + "\n")
        trace = load_trace(path)
    if trace.duration_s < MIN_HISTORY_S:
        raise InputError(
            f"the history of {label} holds {trace.duration_s / 3600:.1f} h of data in the last "
            f"{since}; the replay needs at least {MIN_HISTORY_S / 3600:.0f} h (the policies are "
            "tuned on its first half and scored on the rest): give a longer --since"
        )
    return trace


def _decide(
    spec: ServiceSpec,
    recent: RangeSeries | None,
    forecaster: Forecaster,
    now: float,
    current: int | None,
) -> tuple[ServiceDecision, ServiceObservation]:
    """The planner's decision at `now` on the operator's own history of the service, as the
    operator's next tick would make it from a fresh start (no stabilisation memory). Without
    `current`, the target is taken to run what the observed demand needs."""
    from aiscaler.core.planner import FORECAST_QUANTILES, plan_service, replicas_for
    from aiscaler.core.types import PlannerConfig, ScaleMemory, ServiceObservation

    config = PlannerConfig()
    if recent is None:  # the planner holds and says why, as the operator would
        obs = ServiceObservation(
            current_replicas=spec.min_replicas if current is None else current,
            demand=None,
            demand_error="the demand query has no data in the operator's history window",
        )
        return plan_service(spec, obs, ScaleMemory(), now, config), obs
    known = np.flatnonzero(~np.isnan(recent.values))
    demand = float(recent.values[known[-1]])
    # Steps covering the lead time, a tick and the scale-down window, as the operator asks.
    ahead = spec.cold_start_s + spec.scale_down.stabilization_window_s + config.tick_s
    horizon = max(1, math.ceil(ahead / recent.step_s) + 1)
    [forecast] = forecaster.forecast([recent.values], recent.step_s, horizon, FORECAST_QUANTILES)
    if current is None:
        assert spec.capacity_per_replica is not None  # checked by _target
        needed = replicas_for(demand, spec.capacity_per_replica)
        current = min(spec.max_replicas, max(spec.min_replicas, needed))
    obs = ServiceObservation(
        current_replicas=current,
        demand=demand,
        demand_time=recent.start_s + known[-1] * recent.step_s,
        forecast=forecast,
        forecast_origin=recent.start_s + (len(recent.values) - 1) * recent.step_s,
    )
    return plan_service(spec, obs, ScaleMemory(), now, config), obs


def _replay(
    trace: Trace, target: Target, forecaster: Forecaster, args: argparse.Namespace
) -> Report:
    """aiscaler and the HPA, each tuned on the first half of the history, the static replicas
    (the current ones, else the peak's) and the oracle, scored on the rest."""
    from aiscaler.inputs import check_replicas_needed
    from aiscaler.sim.report import simulate
    from aiscaler.sim.runs import Scenario
    from aiscaler.sim.state import SimConfig, default_slots, step_rates
    from aiscaler.sim.trace import tune_split

    spec = target.spec
    capacity = spec.capacity_per_replica
    assert capacity is not None  # checked by _target
    check_replicas_needed(float(trace.rate.max()), capacity, "--capacity")
    config = SimConfig(
        capacity=capacity,
        cold_start_s=spec.cold_start_s,
        gpus_per_replica=spec.gpus_per_replica,
        slo_delay_s=target.slo_delay_s,
        slo_attainment=spec.attainment,
        slots=default_slots(capacity),
    )
    scenario = Scenario(
        target.label,
        step_rates(trace.rate, trace.bin_s),
        config,
        tuple(range(args.seeds)),
        tune_split(trace.duration_s, trace.bin_s, TUNE_FRACTION),
        trace.bin_s,
        forecaster,
    )
    held = {} if args.current_replicas is None else {"static": {"replicas": args.current_replicas}}
    report = simulate(scenario, POLICIES, True, held, args.tune_budget, args.jobs)
    if held:  # both static variants hold the current replicas: one row
        report.results = [r for r in report.results if (r.policy, r.variant) != ("static", "p99")]
    return report


def _document(
    target: Target,
    now: float,
    history: RangeSeries,
    decision: ServiceDecision,
    obs: ServiceObservation,
    given: bool,
    report: Report,
) -> dict[str, Any]:
    """Everything `recommend` found, as its --json writes it (the replay: protocol 2)."""
    from aiscaler.sim.report import to_json

    spec = target.spec
    replay = to_json(report)
    rows = {(p["policy"], p["variant"]): p for p in replay["policies"]}
    aiscaler, hpa = rows[("aiscaler", "tuned")], rows[("hpa", "tuned")]
    static = rows[("static", "default")]
    return {
        "service": target.label,
        "capacity": spec.capacity_per_replica,
        "cold_start_s": spec.cold_start_s,
        "gpus_per_replica": spec.gpus_per_replica,
        "now": {
            "time": _iso(now),
            "replicas": decision.replicas,
            "current_replicas": obs.current_replicas,
            "current_replicas_given": given,
            "reason": str(decision.reason),
            "message": decision.message,
            "demand": obs.demand,
            "forecast": decision.forecast_value,
            "forecast_p50": decision.forecast_p50,
            "lead_time_s": decision.lead_time_s,
            "basis": decision.basis.value,
        },
        "history": {
            "start": _iso(history.start_s),
            "end": _iso(history.start_s + (len(history.values) - 1) * history.step_s),
            "step_s": history.step_s,
            "missing_points": int(np.isnan(history.values).sum()),
        },
        "replay": replay,
        "comparison": {
            "static_replicas": static["params"]["replicas"],
            "aiscaler_vs_hpa": _ratio(aiscaler["gpu_hours"], hpa["gpu_hours"]),
            "aiscaler_vs_static": _ratio(aiscaler["gpu_hours"], static["gpu_hours"]),
            "attainment": {
                "aiscaler": aiscaler["slo_attainment"],
                "hpa": hpa["slo_attainment"],
                "static": static["slo_attainment"],
            },
        },
    }


def _format(document: dict[str, Any], report: Report) -> str:
    from aiscaler.sim.report import format_table

    now, comparison = document["now"], document["comparison"]
    if document["now"]["current_replicas_given"]:
        current = f"from the current {now['current_replicas']}"
        static = f"the current {comparison['static_replicas']} replicas held static"
    else:
        current = (
            f"from {now['current_replicas']} (assumed: what the observed demand needs; give "
            "--current-replicas)"
        )
        static = f"{comparison['static_replicas']} static replicas (the peak's, with hindsight)"
    attained = comparison["attainment"]
    demand = "no data" if now["demand"] is None else f"{now['demand']:.4g}/s"
    return "\n".join(
        [
            f"{document['service']}: capacity {document['capacity']:.4g}/s per replica, cold "
            f"start {document['cold_start_s']:g} s, {document['gpus_per_replica']} GPUs per "
            "replica",
            f"now ({now['time']}, demand {demand}): {now['replicas']} replicas {current}",
            f"  reason {now['reason']}: {now['message']}",
            "",
            f"replay of the history ({document['history']['start']} to "
            f"{document['history']['end']}, every {document['history']['step_s']:g} s):",
            format_table(report),
            "",
            f"aiscaler (tuned) uses {_times(comparison['aiscaler_vs_hpa'])} the GPU-hours of the "
            f"tuned HPA at attainment {attained['aiscaler']:.2%} vs {attained['hpa']:.2%}, and "
            f"{_times(comparison['aiscaler_vs_static'])} those of {static} at "
            f"{attained['static']:.2%}",
        ]
    )


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference > 0 else None


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
