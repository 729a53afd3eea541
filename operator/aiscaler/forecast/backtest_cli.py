"""`aiscaler backtest`: forecast accuracy of the model against the baselines on one trace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiscaler.forecast.backtest import DEFAULT_HORIZONS, MAX_ORIGINS, backtest, format_table
from aiscaler.forecast.data import read_trace, resample
from aiscaler.inputs import InputError, fail, output_file, positive_count, positive_number

HELP = "rolling-origin forecast accuracy of the model vs seasonal naive and Holt-Winters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, help="trace CSV (../shared/data/traces format)")
    parser.add_argument("--column", default="requests", help="demand column ('value' for levels)")
    parser.add_argument(
        "--horizons",
        default=",".join(str(h) for h in DEFAULT_HORIZONS),
        help="comma-separated horizons in steps of the trace (default %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument(
        "--step", type=positive_number, help="resample the trace to this step (s) first"
    )
    parser.add_argument("--model", help="checkpoint folder (default: the shipped one)")
    parser.add_argument(
        "--max-origins",
        type=positive_count,
        default=MAX_ORIGINS,
        help="rolling origins (default %(default)s)",
    )


def parse_horizons(text: str) -> list[int]:
    try:
        horizons = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise InputError(f"--horizons must be comma-separated integers, got {text!r}") from None
    if not horizons or min(horizons) < 1:
        raise InputError(f"--horizons must be positive integers, got {text!r}")
    return horizons


def run(args: argparse.Namespace) -> int:
    from aiscaler.forecast import DEFAULT_CHECKPOINT
    from aiscaler.forecast.baselines import HoltWintersForecaster, SeasonalNaiveForecaster
    from aiscaler.forecast.model import CheckpointError, ModelForecaster

    if args.json is not None:
        output_file(args.json, "--json", {".json"})
    try:
        horizons = parse_horizons(args.horizons)
        series = read_trace(args.trace, args.column)
        if args.step:
            series = resample(series, args.step)
        model = ModelForecaster.load(args.model or DEFAULT_CHECKPOINT)
        result = backtest(
            series,
            {
                "aiscaler": model,
                "seasonal_naive": SeasonalNaiveForecaster(),
                "holt_winters": HoltWintersForecaster(),
            },
            horizons,
            max_origins=args.max_origins,
        )
    except (CheckpointError, ValueError) as e:  # ValueError: the trace is too short, ...
        return fail("backtest", e)
    print(format_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 0
