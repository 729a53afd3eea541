"""`aiscaler train`: train or fine-tune the demand model from trace CSVs or Prometheus history."""

from __future__ import annotations

import argparse
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aiscaler.forecast.data import Series, read_trace, resample
from aiscaler.inputs import (
    InputError,
    fail,
    non_negative_count,
    number,
    output_folder,
    positive_count,
    positive_number,
    read_yaml,
)

HELP = "train or fine-tune the demand forecasting model (trace CSVs or a Prometheus range query)"
DEFAULT_TRACES_DIR = "../shared/data/traces"
# Prometheus refuses range queries of more than 11,000 points per series.
PROMETHEUS_MAX_POINTS = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument(
        "--config", help="YAML file: `traces` (files under --traces-dir) and training settings"
    )
    parser.add_argument("--traces-dir", default=DEFAULT_TRACES_DIR, help="base of config traces")
    parser.add_argument("--trace", action="append", default=[], help="trace CSV (repeatable)")
    parser.add_argument("--column", default="requests", help="demand column of --trace files")
    parser.add_argument(
        "--step", type=positive_number, help="resample --trace files to this step (s)"
    )
    parser.add_argument("--init", help="checkpoint folder to fine-tune from (its shape is kept)")
    parser.add_argument(
        "--steps", type=positive_count, help="optimisation steps (overrides the config)"
    )
    parser.add_argument(
        "--seed", type=non_negative_count, help="random seed (overrides the config)"
    )
    parser.add_argument(
        "--test-fraction",
        type=lambda text: number(text, lambda v: 0 <= v < 1, "in [0, 1)"),
        help="latest share of each series never trained on (default 0.25, kept for evaluation; "
        "0 for a fine-tune that should learn from the most recent history)",
    )
    parser.add_argument("--threads", type=positive_count, default=1, help="CPU threads for torch")
    prom = parser.add_argument_group("Prometheus history (instead of or besides --trace)")
    prom.add_argument("--prometheus-url", help="e.g. http://prometheus:9090")
    prom.add_argument("--query", help="PromQL giving the demand rate, one series per service")
    prom.add_argument("--start", help="ISO-8601 start of the range, e.g. 2026-11-01T00:00:00Z")
    prom.add_argument("--end", help="ISO-8601 end of the range")
    prom.add_argument(
        "--query-step", type=positive_number, default=60.0, help="range query step (s)"
    )


TORCH_MISSING = (
    "training needs torch, which the operator's own install leaves out; "
    "install the training extra: pip install 'aiscaler[train]' (docs/forecast.md)"
)


def run(args: argparse.Namespace) -> int:
    try:
        import torch

        from aiscaler.forecast.training import TrainConfig, train
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        return fail("train", ModuleNotFoundError(TORCH_MISSING))
    from aiscaler.forecast.model import CheckpointError

    output_folder(args.out, "--out")  # before training, which takes minutes
    torch.set_num_threads(args.threads)
    try:
        settings: dict[str, Any] = {}
        series: list[Series] = []
        if args.config:
            config = read_yaml(Path(args.config), "--config ") or {}
            if not isinstance(config, dict):
                raise InputError(f"--config {args.config}: must hold a mapping (traces, train)")
            settings = dict(config.get("train", {}))
            series += traces_from_config(config.get("traces", []), Path(args.traces_dir))
        for path in args.trace:
            s = read_trace(path, args.column)
            series.append(resample(s, args.step) if args.step else s)
        if args.prometheus_url or args.query:
            series += series_from_prometheus(
                args.prometheus_url, args.query, args.start, args.end, args.query_step
            )
        if not series:
            raise ValueError("nothing to train on: give --config, --trace or --query")
        if args.steps is not None:
            settings["steps"] = args.steps
        if args.seed is not None:
            settings["seed"] = args.seed
        if args.test_fraction is not None:
            settings["test_fraction"] = args.test_fraction
        tcfg = TrainConfig.from_dict(settings)
        record = train(series, tcfg, args.out, init_checkpoint=args.init)
    except (ValueError, OSError, CheckpointError) as e:  # InputError is a ValueError
        return fail("train", e)
    if int(os.environ.get("RANK", "0")) == 0:  # one report under torchrun
        print(json.dumps({k: v for k, v in record.items() if k != "series"}, indent=2))
        print(f"trained on {len(record['series'])} series; checkpoint written to {args.out}")
    return 0


def traces_from_config(entries: list[dict[str, Any]], base: Path) -> list[Series]:
    """Read `traces:` entries ({file, column, step_s?}) relative to `base`."""
    out = []
    for entry in entries:
        s = read_trace(base / entry["file"], entry.get("column", "requests"))
        out.append(resample(s, float(entry["step_s"])) if "step_s" in entry else s)
    return out


def series_from_prometheus(
    url: str | None, query: str | None, start: str | None, end: str | None, step_s: float
) -> list[Series]:
    """Range-query Prometheus and put each returned series on a regular grid (NaN = no sample)."""
    if not (url and query and start and end):
        raise ValueError("a Prometheus source needs --prometheus-url, --query, --start and --end")
    from prometheus_api_client import PrometheusConnect
    from prometheus_api_client.exceptions import PrometheusApiClientException

    t0, t1 = _parse_time(start), _parse_time(end)
    if t1 <= t0:
        raise ValueError(f"--end ({end}) must be after --start ({start})")
    n = math.floor((t1 - t0) / step_s) + 1
    prom = PrometheusConnect(url=url)
    grids: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    for chunk_start in range(0, n, PROMETHEUS_MAX_POINTS):
        chunk_end = min(n, chunk_start + PROMETHEUS_MAX_POINTS) - 1
        try:
            result = prom.custom_query_range(
                query=query,
                start_time=datetime.fromtimestamp(t0 + chunk_start * step_s, tz=UTC),
                end_time=datetime.fromtimestamp(t0 + chunk_end * step_s, tz=UTC),
                step=f"{step_s:g}s",
            )
        except (PrometheusApiClientException, OSError) as e:
            raise ValueError(f"Prometheus range query to {url} failed: {e}") from e
        for item in result:
            key = json.dumps(item.get("metric", {}), sort_keys=True)
            grid = grids.setdefault(key, np.full(n, np.nan))
            for ts, value in item.get("values", []):
                i = round((float(ts) - t0) / step_s)
                if 0 <= i < n:
                    grid[i] = float(value)  # "NaN" and "+Inf" parse; non-finite -> NaN below
    if not grids:
        raise ValueError(f"the query returned no series between {start} and {end}: {query}")
    out = []
    for key, grid in grids.items():
        grid[~np.isfinite(grid)] = np.nan
        out.append(Series(f"prometheus{key}", "value", step_s, t0, grid))
    return out


def _parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as e:
        raise ValueError(f"not an ISO-8601 time: {text!r}") from e
