"""Forecaster benchmark: speed on one CPU core, and the decision value of the model.

    .venv/bin/python bench/forecast_bench.py [--model model/checkpoint] [--traces DIR]
        [--decision-trace FILE:COLUMN ...] [--skip-speed | --skip-decision]

1. Speed (one thread): loading the checkpoint, the network alone on 1,000 series (numpy, and
   torch when it is installed), and one batched forecast of 1,000 series (1 day + 3 h of
   history at 60 s, 30 steps, 4 quantiles; the model's includes its calibration on 16 past
   origins per series) for the model (numpy network, and torch's), seasonal naive and
   Holt-Winters; medians of 5 runs.
2. Decision value: `aiscaler simulate` machinery (aiscaler.sim, protocol v2, one seed) with
   the `aiscaler` policy fed by the model and by Holt-Winters, next to the oracle, on a few
   traces (or those given with --decision-trace, e.g. the service a checkpoint was fine-tuned
   on) at the default cold start (120 s), SLO attainment goal 0.99, scored on the trace's test
   part only (the last 25%, which no checkpoint trained on; the policy sees the history
   before it).
Accuracy is model/evaluate.py. Not a test: nothing is asserted; the output goes to
bench/RESULTS.md with the command.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from aiscaler.forecast import DEFAULT_CHECKPOINT
from aiscaler.forecast.base import Forecaster
from aiscaler.forecast.baselines import HoltWintersForecaster, SeasonalNaiveForecaster
from aiscaler.forecast.model import ModelForecaster, gather_lags, input_lags, make_inputs

QUANTILES = (0.5, 0.9, 0.95, 0.99)
DECISION_TRACES = (
    ("servegen_language_m_mid_10min.csv", "requests"),
    ("alibaba_genai_lora_requests_1min.csv", "requests"),
    ("helios_earth_gpu_demand_1min.csv", "value"),
)


def median_seconds(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(model_path: Path) -> None:
    load_s = median_seconds(lambda: ModelForecaster.load(model_path))
    model = ModelForecaster.load(model_path)
    rng = np.random.default_rng(0)
    n, length = 1000, 1440 + 180
    t = np.arange(length)
    level = rng.uniform(1, 1000, (n, 1))
    y = level * (1 + 0.4 * np.sin(2 * np.pi * t / 1440)) * rng.gamma(20, 1 / 20, (n, length))
    histories = list(y)
    print(f"checkpoint load (numpy): {load_s * 1000:.1f} ms")
    forecasters: dict[str, Forecaster] = {"model": model}
    recent, seasonal = input_lags(model.cfg, 60.0)
    rows, origins = np.arange(n), np.full(n, length - 1)
    x, _, _ = make_inputs(
        gather_lags(y, rows, origins, recent), gather_lags(y, rows, origins, seasonal), model.cfg
    )
    networks = {"numpy": model.net}
    try:
        import torch

        from aiscaler.forecast.network import load_network, torch_forward

        torch.set_num_threads(1)
        networks["torch"] = torch_forward(load_network(model_path)[1])
        forecasters["model (torch network)"] = ModelForecaster(model.cfg, networks["torch"])
    except ModuleNotFoundError:
        print("torch is not installed: the torch network is not timed")
    for name, network in networks.items():
        s = median_seconds(lambda network=network: network(x))
        print(f"network alone ({name:<5}) 1000 series: {s * 1000:8.1f} ms")
    forecasters |= {
        "seasonal_naive": SeasonalNaiveForecaster(),
        "holt_winters": HoltWintersForecaster(),
    }
    base = None
    for name, f in forecasters.items():
        s = median_seconds(lambda f=f: f.forecast(histories, 60.0, 30, QUANTILES))
        base = base or s
        print(f"{name:<21} 1000 series x 30 steps: {s * 1000:8.1f} ms ({s / base:.1f}x the model)")


def decision_value(model_path: Path, traces: Path, files: Sequence[tuple[str, str]]) -> None:
    from aiscaler.forecast.data import first_test_index
    from aiscaler.sim.runs import PolicyConfig, Scenario, run_config
    from aiscaler.sim.state import SimConfig, default_slots, step_rates
    from aiscaler.sim.trace import as_requests, default_capacity, load_trace

    model = ModelForecaster.load(model_path)
    print(f"\n{'trace':<38}{'forecaster':<14}{'GPU-h':>9}{'/oracle':>9}{'attain':>9}  (test part)")
    for file, column in files:
        trace = load_trace(traces / file, column)
        requests = as_requests(trace, default_capacity(trace.rate), traces / file)
        config = SimConfig(capacity=requests.capacity, slots=default_slots(requests.capacity))
        rates = step_rates(requests.rate, trace.bin_s)
        split = first_test_index(len(trace.rate)) * trace.bin_s
        oracle = None
        for name, forecaster in (("model", model), ("holt_winters", HoltWintersForecaster())):
            scenario = Scenario(file, rates, config, (0,), split, trace.bin_s, forecaster)
            if oracle is None:
                oracle = run_config(scenario, PolicyConfig("oracle"), 0).evaluate.gpu_hours
            o = run_config(scenario, PolicyConfig("aiscaler"), 0).evaluate
            print(
                f"{file.removesuffix('.csv'):<38}{name:<14}{o.gpu_hours:>9.1f}"
                f"{o.gpu_hours / oracle:>9.3f}{o.slo_attainment:>9.4f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--traces", type=Path, default=Path("../shared/data/traces"))
    parser.add_argument(
        "--decision-trace",
        type=file_and_column,
        action="append",
        metavar="FILE:COLUMN",
        help="a trace under --traces for the decision value (repeatable; default: "
        + ", ".join(f"{f}:{c}" for f, c in DECISION_TRACES)
        + ")",
    )
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-decision", action="store_true", help="speed only")
    skip.add_argument("--skip-speed", action="store_true", help="decision value only")
    args = parser.parse_args()
    if not args.skip_speed:
        speed(args.model)
    if not args.skip_decision:
        decision_value(args.model, args.traces, args.decision_trace or DECISION_TRACES)
    return 0


def file_and_column(text: str) -> tuple[str, str]:
    file, sep, column = text.rpartition(":")
    if not sep or not file or not column:
        raise argparse.ArgumentTypeError(f"expected FILE:COLUMN, got {text!r}")
    return file, column


if __name__ == "__main__":
    raise SystemExit(main())
