"""`aiscaler backtest`: forecast accuracy of the model against the baselines on one trace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiscaler.forecast.backtest import DEFAULT_HORIZONS, MAX_ORIGINS, backtest, format_table
from aiscaler.forecast.data import TraceError, read_trace, resample

HELP = "rolling-origin forecast accuracy of the model vs seasonal naive and Holt-Winters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, help="trace CSV (../shared/data/traces format)")
    parser.add_argument("--column", default="requests", help="demand column ('value' for levels)")
    parser.add_argument(
        "--horizons",
        default=",".join(str(h) for h in DEFAULT_HORIZONS),
        help="comma-separated horizons in steps of the trace (default %(default)s)",
    )
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--step", type=float, help="resample the trace to this step (s) first")
    parser.add_argument("--model", help="checkpoint folder (default: the shipped one)")
    parser.add_argument(
        "--max-origins", type=int, default=MAX_ORIGINS, help="rolling origins (default %(default)s)"
    )


def parse_horizons(text: str) -> list[int]:
    try:
        horizons = [int(h) for h in text.split(",") if h.strip()]
    except ValueError as e:
        raise ValueError(f"--horizons must be comma-separated integers, got {text!r}") from e
    if not horizons or min(horizons) < 1:
        raise ValueError(f"--horizons must be positive integers, got {text!r}")
    return horizons


def run(args: argparse.Namespace) -> int:
    from aiscaler.forecast import DEFAULT_CHECKPOINT
    from aiscaler.forecast.baselines import HoltWintersForecaster, SeasonalNaiveForecaster
    from aiscaler.forecast.model import CheckpointError, ModelForecaster

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
    except (TraceError, CheckpointError, ValueError) as e:
        print(f"aiscaler backtest: error: {e}")
        return 2
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 0
