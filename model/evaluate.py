"""Score a checkpoint against seasonal naive and Holt-Winters on every trace's test part.

    .venv/bin/python model/evaluate.py [--model model/checkpoint] [--json OUT.json]

One run, same rolling origins for the three forecasters (aiscaler.forecast.backtest), then a
summary against the targets of issue 4: relative MASE <= 0.85 at 5 and 15 steps on most traces and
<= 1.05 everywhere; WQL below Holt-Winters on most traces; 80% interval coverage in [0.75, 0.85].
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from aiscaler.forecast import DEFAULT_CHECKPOINT
from aiscaler.forecast.backtest import Backtest, backtest, format_table
from aiscaler.forecast.base import Forecaster
from aiscaler.forecast.baselines import HoltWintersForecaster, SeasonalNaiveForecaster
from aiscaler.forecast.data import TraceError, read_trace, resample
from aiscaler.forecast.model import ModelForecaster

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "evaluate.yaml"
TARGET_HORIZONS = (5, 15)


def evaluate(config: dict[str, Any], traces_dir: Path, model: ModelForecaster) -> list[Any]:
    """One Backtest per trace, or the error text for a trace that cannot be scored."""
    forecasters: dict[str, Forecaster] = {
        "aiscaler": model,
        "seasonal_naive": SeasonalNaiveForecaster(),
        "holt_winters": HoltWintersForecaster(),
    }
    out: list[Any] = []
    for entry in config["traces"]:
        try:
            series = read_trace(traces_dir / entry["file"], entry.get("column", "requests"))
            if "step_s" in entry:
                series = resample(series, float(entry["step_s"]))
            out.append(backtest(series, forecasters, config["horizons"]))
        except TraceError as e:
            out.append(f"{entry['file']}: not scored: {e}")
    return out


def summary(results: list[Backtest]) -> list[str]:
    """Per trace: the model's relative MASE, WQL vs Holt-Winters, coverage; then target counts."""
    lines = [
        f"{'trace':<38}{'h':>4}{'relMASE':>9}{'relMASE_hw':>11}"
        f"{'WQL':>8}{'WQL_hw':>8}{'WQL_sn':>8}{'cov':>6}{'cov_hw':>7}{'cov_sn':>7}"
    ]
    mase_ok = wql_ok = never_worse = 0
    coverages = []
    for bt in results:
        by = {(r.model, r.horizon_steps): r for r in bt.results}
        horizons = sorted({r.horizon_steps for r in bt.results})
        for h in horizons:
            m, hw, sn = by["aiscaler", h], by["holt_winters", h], by["seasonal_naive", h]
            lines.append(
                f"{bt.trace:<38}{h:>4}{m.relative_mase:>9.3f}{hw.relative_mase:>11.3f}"
                f"{m.wql:>8.3f}{hw.wql:>8.3f}{sn.wql:>8.3f}"
                f"{m.coverage_80:>6.2f}{hw.coverage_80:>7.2f}{sn.coverage_80:>7.2f}"
            )
            coverages.append(m.coverage_80)
        targeted = [by["aiscaler", h] for h in TARGET_HORIZONS if ("aiscaler", h) in by]
        mase_ok += all(r.relative_mase <= 0.85 for r in targeted)
        never_worse += all(r.relative_mase <= 1.05 for r in bt.results if r.model == "aiscaler")
        wql_model = sum(by["aiscaler", h].wql for h in horizons)
        wql_ok += wql_model < sum(by["holt_winters", h].wql for h in horizons)
    n = len(results)
    in_band = sum(0.75 <= c <= 0.85 for c in coverages)
    lines += [
        "",
        f"relative MASE <= 0.85 at h=5 and h=15: {mase_ok}/{n} traces (target: most)",
        f"relative MASE <= 1.05 at every horizon: {never_worse}/{n} traces (target: all)",
        f"WQL (sum over horizons) below Holt-Winters: {wql_ok}/{n} traces (target: most)",
        f"80% interval coverage in [0.75, 0.85]: {in_band}/{len(coverages)} trace-horizons, "
        f"range {min(coverages):.2f}-{max(coverages):.2f}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_CHECKPOINT), help="checkpoint folder")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--traces-dir", default="../shared/data/traces")
    parser.add_argument("--json", help="write every backtest (BENCHMARK.md format) to this file")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    model = ModelForecaster.load(args.model)
    # Calibration windows just after history the network trained on flatter its intervals.
    print(
        f"checkpoint {args.model}: the latest {model.cfg.holdout_fraction:.0%} of each training "
        "series' training part was held out of training\n"
    )
    outcomes = evaluate(config, Path(args.traces_dir), model)
    scored = [o for o in outcomes if isinstance(o, Backtest)]
    for o in outcomes:
        print(o if isinstance(o, str) else format_table(o), end="\n\n")
    print("\n".join(summary(scored)))
    if args.json:
        Path(args.json).write_text(json.dumps([b.to_json() for b in scored], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
