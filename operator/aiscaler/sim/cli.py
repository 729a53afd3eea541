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
    fail,
    fraction,
    non_negative_count,
    non_negative_number,
    output_file,
    positive_count,
    positive_number,
)
from aiscaler.sim.state import MAX_MEAN_SERVICE_S, VLLM_SLOTS, default_slots
from aiscaler.sim.tuning import TUNE_BUDGET

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
        "--queue",
        choices=("stochastic", "fluid"),
        default="stochastic",
        help="stochastic: Poisson arrivals, requests served by slots (default); fluid: the same "
        "model without randomness (fast, optimistic)",
    )
    parser.add_argument(
        "--slots",
        type=at_most(positive_count, 4096),
        default=None,
        help=f"requests one replica serves at once (default {VLLM_SLOTS}, vLLM's --max-num-seqs, "
        f"fewer where a request would last over {MAX_MEAN_SERVICE_S:g} s on average)",
    )
    parser.add_argument(
        "--service-cv",
        type=at_most(non_negative_number, 10),
        default=1.0,
        help="coefficient of variation of a request's service time (default 1: exponential)",
    )
    parser.add_argument(
        "--seeds", type=at_most(positive_count, 100), default=3, help="seeds (default 3)"
    )
    parser.add_argument(
        "--scrape-s",
        type=at_most(positive_count, 3600),
        default=15,
        help="Prometheus scrape interval policies see through, whole seconds (default 15)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="tune aiscaler, hpa, keda and kpa over their knobs on the first part of the trace "
        "and score on the rest (variant 'tuned', the frontier comparison)",
    )
    parser.add_argument(
        "--tune-fraction",
        type=fraction,
        default=0.5,
        help="share of the trace that is the tune window (default 0.5; at least a day)",
    )
    parser.add_argument(
        "--tune-budget",
        type=at_most(positive_count, 1000),
        default=TUNE_BUDGET,
        help=f"configurations per tuned policy (default {TUNE_BUDGET})",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="POLICY.KNOB=VALUE",
        help="fix a knob of a policy's default variant, e.g. hpa.min_replicas=10 (repeatable)",
    )
    parser.add_argument(
        "--jobs",
        type=at_most(positive_count, 64),
        default=None,
        help="worker processes (default: one per CPU)",
    )
    parser.add_argument(
        "--kernel",
        choices=("auto", "exact", "approx"),
        default="auto",
        help="stochastic serving: per request (exact), per second (approx), or by the number "
        "of requests (auto, the default)",
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
    from aiscaler.sim.report import format_table, simulate, to_json
    from aiscaler.sim.runs import Scenario
    from aiscaler.sim.state import SimConfig, step_rates
    from aiscaler.sim.trace import TraceError, as_requests, default_capacity, load_trace, tune_split

    # Outputs are checked before the run, which may take minutes (aiscaler.inputs).
    if args.json is not None:
        output_file(args.json, "--json", {".json"})
    if args.plot is not None:
        output_file(args.plot, "--plot", PLOT_SUFFIXES)
    settings = _settings(args.settings)
    column = args.column or "requests"
    try:
        with resources.as_file(resources.files("aiscaler") / "data" / BUNDLED_TRACE) as bundled:
            path = args.trace or bundled
            trace = load_trace(path, column)
            capacity = args.capacity or default_capacity(trace.rate)
            check_replicas_needed(float(trace.rate.max()), capacity, "--capacity")
            requests = as_requests(trace, capacity, path)
        split = tune_split(trace.duration_s, trace.bin_s, args.tune_fraction) if args.tune else 0.0
        config = SimConfig(
            capacity=requests.capacity,
            cold_start_s=args.cold_start,
            gpus_per_replica=args.gpus_per_replica,
            slo_delay_s=args.slo_delay,
            slo_attainment=args.slo_attainment,
            slots=args.slots or default_slots(requests.capacity),
            service_cv=args.service_cv,
            scrape_s=float(args.scrape_s),
            queue=args.queue,
            kernel=args.kernel,
            node_provision_s=args.node_provision_s,
            free_gpus=args.free_gpus,
        )
        seeds = 1 if args.queue == "fluid" else args.seeds
        scenario = Scenario(
            trace.name, step_rates(requests.rate, trace.bin_s), config, tuple(range(seeds)),
            split, trace.bin_s,
        )  # fmt: skip
    except (TraceError, ValueError) as e:
        return fail("simulate", e)
    if "aiscaler" in args.policies:
        # The shipped model; Holt-Winters when no checkpoint loads (the reason is printed).
        scenario.forecaster, why = load_default_forecaster()
        print(f"forecaster: {why}", file=sys.stderr)
    try:
        report = simulate(
            scenario, args.policies, args.tune, settings, args.tune_budget, args.jobs,
            column, requests.unit,
        )  # fmt: skip
    except ValueError as e:  # a --set knob the policy does not have, or a value out of range
        return fail("simulate", e)
    print(format_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(report), indent=1) + "\n")
    if args.plot is not None:
        from aiscaler.sim.plot import write_plot

        write_plot(report, args.plot)
    return 0


def _setting(text: str) -> tuple[str, str, str]:
    """`POLICY.KNOB=VALUE` as (policy, knob, value)."""
    name, sep, value = text.partition("=")
    policy, dot, knob = name.strip().partition(".")
    if not (sep and dot and policy and knob and value.strip()):
        raise argparse.ArgumentTypeError(f"expected POLICY.KNOB=VALUE, got {text!r}")
    if policy not in POLICY_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown policy {policy!r} in {text!r}; choose from {','.join(POLICY_NAMES)}"
        )
    return policy, knob.strip(), value.strip()


def _settings(items: list[tuple[str, str, str]]) -> dict[str, dict[str, object]]:
    """The --set knobs by policy, numbers as numbers (whole ones as ints)."""
    settings: dict[str, dict[str, object]] = {}
    for policy, knob, text in items:
        try:
            number = float(text)
            value: object = int(number) if number.is_integer() and "." not in text else number
        except ValueError:
            value = text
        settings.setdefault(policy, {})[knob] = value
    return settings
