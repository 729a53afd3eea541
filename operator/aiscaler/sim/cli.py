"""`aiscaler simulate`: replay a trace through every policy side by side (BENCHMARK.md contract)."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from aiscaler.inputs import (
    at_most,
    check_replicas_needed,
    fraction,
    non_negative_count,
    non_negative_number,
    output_file,
    positive_count,
    positive_number,
)

HELP = "replay a demand trace through aiscaler and the baseline autoscalers, side by side"
BUNDLED_TRACE = "servegen_language_m_mid_5days_10min.csv"
POLICY_NAMES = ("aiscaler", "hpa", "keda", "kpa", "static", "oracle")
PLOT_SUFFIXES = {".png", ".svg", ".pdf"}
# Bounds of the options: beyond them a run describes no real service (and its numbers would
# not fit the report).
DAY_S = 86_400.0
MAX_GPUS_PER_REPLICA = 64
MAX_FREE_GPUS = 100_000


def _policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICY_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown policies {unknown or text!r}; choose from {','.join(POLICY_NAMES)}"
        )
    return list(dict.fromkeys(names))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="trace CSV (default: a bundled 5-day excerpt of a real LLM trace)",
    )
    parser.add_argument(
        "--column", default=None, help="demand column (default: requests; level series use value)"
    )
    parser.add_argument(
        "--capacity",
        type=positive_number,
        default=None,
        help="units/s one replica serves (default: p50 demand needs 4 replicas)",
    )
    parser.add_argument(
        "--cold-start",
        type=at_most(non_negative_number, DAY_S),
        default=120.0,
        help="seconds from scale-up to ready (default 120)",
    )
    parser.add_argument(
        "--gpus-per-replica", type=at_most(positive_count, MAX_GPUS_PER_REPLICA), default=1
    )
    parser.add_argument(
        "--slo-delay",
        type=at_most(positive_number, DAY_S),
        default=2.0,
        help="queueing delay target in seconds (default 2)",
    )
    parser.add_argument(
        "--slo-attainment",
        type=fraction,
        default=0.99,
        help="fraction of demand to serve within the target (default 0.99)",
    )
    parser.add_argument(
        "--policies",
        type=_policies,
        default=list(POLICY_NAMES),
        help=f"comma-separated, from {','.join(POLICY_NAMES)} (default: all)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="also sweep each reactive baseline's target; report the cheapest "
        "setting reaching the attainment goal as variant 'tuned'",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    parser.add_argument("--plot", type=Path, default=None, metavar="OUT.png")
    parser.add_argument(
        "--node-provision-s",
        type=at_most(non_negative_number, DAY_S),
        default=0.0,
        help="extra wait of a scale-up that finds no free GPU (default 0: off)",
    )
    parser.add_argument(
        "--free-gpus",
        type=at_most(non_negative_count, MAX_FREE_GPUS),
        default=0,
        help="spare GPUs the pool keeps beyond those allocated (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    from aiscaler.forecast import load_default_forecaster
    from aiscaler.sim.engine import SimConfig
    from aiscaler.sim.report import format_table, simulate, to_json
    from aiscaler.sim.trace import TraceError, default_capacity, load_trace

    # Outputs are checked before the run, which may take minutes (aiscaler.inputs).
    if args.json is not None:
        output_file(args.json, "--json", {".json"})
    if args.plot is not None:
        output_file(args.plot, "--plot", PLOT_SUFFIXES)
    column = args.column or "requests"
    try:
        if args.trace is None:
            with resources.as_file(resources.files("aiscaler") / "data" / BUNDLED_TRACE) as path:
                trace = load_trace(path, column)
        else:
            trace = load_trace(args.trace, column)
        capacity = args.capacity or default_capacity(trace.rate)
    except TraceError as e:
        print(f"aiscaler simulate: error: {e}", file=sys.stderr)
        return 2
    check_replicas_needed(float(trace.rate.max()), capacity, "--capacity")
    config = SimConfig(
        capacity=capacity,
        cold_start_s=args.cold_start,
        gpus_per_replica=args.gpus_per_replica,
        slo_delay_s=args.slo_delay,
        slo_attainment=args.slo_attainment,
        node_provision_s=args.node_provision_s,
        free_gpus=args.free_gpus,
    )
    forecaster = None
    if "aiscaler" in args.policies:
        # The shipped model; Holt-Winters when no checkpoint loads (the reason is printed).
        forecaster, why = load_default_forecaster()
        print(f"forecaster: {why}", file=sys.stderr)
    report = simulate(trace, config, args.policies, tune=args.tune, forecaster=forecaster)
    print(format_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(report), indent=1) + "\n")
    if args.plot is not None:
        from aiscaler.sim.plot import write_plot

        write_plot(report, args.plot)
    return 0
