"""`aiscaler export`: a demand series from Prometheus as a trace CSV that `simulate`, `backtest`
and `train` read (the format of ../shared/data/traces/README.md).

The query gives a rate per second (requests/s, tokens/s), as a custom demand query does. Each
point at time t becomes the bin [t - step, t): `timestamp_s` is its start and the column holds
the count in it (rate x step), an arrival series; `--column value` writes the query's values
as they are, a level series (for a gauge such as GPUs in demand). Points Prometheus does not
have are empty cells (the readers repeat the bin before); leading and trailing ones are cut.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from aiscaler.inputs import InputError, check_trace_values, output_file, positive_count

HELP = "write a demand series from Prometheus as a trace CSV for simulate, backtest and train"
MIN_BINS = 4  # what an arrival trace needs (aiscaler.sim.trace)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", required=True, help="PromQL of the demand rate (per second)")
    add_history_arguments(parser)
    parser.add_argument(
        "--column",
        default="requests",
        help="column name (default requests: counts per bin; value: the query's values as a "
        "level series)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="F.csv", help="trace CSV to write"
    )


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a history read from Prometheus (shared with `recommend`)."""
    parser.add_argument("--prometheus-url", required=True, help="e.g. http://localhost:9090")
    parser.add_argument(
        "--namespace",
        help="confine the query to this namespace, as the operator confines a custom resource's "
        "query (the PromQL tenancy guard, docs/metrics.md)",
    )
    parser.add_argument("--since", default="7d", help="how far back (default 7d; e.g. 36h, 2w)")
    parser.add_argument("--end", help="ISO-8601 end of the range (default: now)")
    parser.add_argument(
        "--step", type=positive_count, default=60, help="seconds between points (default 60)"
    )


def run(args: argparse.Namespace) -> int:
    from aiscaler.metrics.ranges import duration_s, one_series, read_range, timestamp_s

    output_file(args.output, "--output", {".csv"})
    end = timestamp_s(args.end, "--end") if args.end else time.time()
    since = duration_s(args.since)
    start = end - since
    series = one_series(
        read_range(args.prometheus_url, args.query, start, end, args.step, args.namespace),
        args.query,
        args.since,
    )
    known = np.flatnonzero(~np.isnan(series.values))
    values = series.values[known[0] : known[-1] + 1]
    first = series.start_s + known[0] * series.step_s
    if args.column != "value":
        values = values * series.step_s
        first -= series.step_s  # a point closes its bin
    if len(values) < MIN_BINS:
        raise InputError(
            f"--query returned {len(values)} points in the last {args.since}; a trace needs "
            f"{MIN_BINS}: give a longer --since or a shorter --step"
        )
    check_trace_values(values, f"--query {args.query!r} as {args.output}", args.column)
    lines = [f"timestamp_s,{args.column}"]
    for i, value in enumerate(values):
        cell = "" if math.isnan(value) else f"{value:.10g}"
        lines.append(f"{first + i * series.step_s:.0f},{cell}")
    args.output.write_text("\n".join(lines) + "\n")
    missing = int(np.isnan(values).sum())
    print(
        f"wrote {args.output}: {len(values)} bins of {args.step} s from {lines[1].split(',')[0]}"
        f" ({missing} without data); use it with --trace {args.output} --column {args.column}"
    )
    return 0
