"""Rolling-origin backtest of forecasters on the test part of a series (BENCHMARK.md contract).

Origins are spread evenly over the test part (every point when there are few enough); each
forecaster gets, at each origin, the history up to that origin only (bounded to `max_history`
steps), and all origins go to a forecaster in one batched call. Metrics per horizon h:
- MASE: mean |y - median| divided by the in-sample mean absolute error of seasonal naive on the
  training part (daily season when the training part spans more than a day, else naive);
- relative MASE: a forecaster's MASE over seasonal naive's on the same windows;
- sMAPE: mean of 2|y - median| / (|y| + |median|), 0 where both are 0;
- WQL: mean over quantiles 0.5, 0.9, 0.99 of 2 * sum(pinball) / sum(|y|);
- coverage_80: share of actuals inside [q0.1, q0.9].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from aiscaler.forecast.base import Forecaster
from aiscaler.forecast.baselines import DAY_S, season_steps
from aiscaler.forecast.data import Series, TraceError, first_test_index
from aiscaler.table import render

FloatArray = npt.NDArray[np.float64]

DEFAULT_HORIZONS = (1, 5, 15, 30)
WQL_QUANTILES = (0.5, 0.9, 0.99)
QUANTILES = (0.1, 0.5, 0.9, 0.99)  # what every forecaster is asked for
MAX_ORIGINS = 500
# Holt-Winters fits 3 days; a little more keeps every forecaster's input complete.
MAX_HISTORY_DAYS = 3.5


@dataclass(frozen=True)
class Result:
    model: str
    horizon_steps: int
    horizon_s: float
    mase: float
    relative_mase: float
    smape: float
    wql: float
    coverage_80: float


@dataclass(frozen=True)
class Backtest:
    trace: str
    column: str
    step_s: float
    test_start_s: float
    origins: int
    results: list[Result]

    def to_json(self) -> dict[str, object]:
        return {
            "trace": self.trace,
            "column": self.column,
            "step_s": self.step_s,
            "test_start_s": self.test_start_s,
            "results": [asdict(r) for r in self.results],
        }


def origins_for(n: int, horizon: int, max_origins: int = MAX_ORIGINS) -> npt.NDArray[np.int64]:
    """Forecast origins (index of the last observed point) whose targets lie in the test part."""
    first = first_test_index(n) - 1
    last = n - 1 - horizon
    if last < first:
        raise TraceError(
            f"the test part has {n - first_test_index(n)} points; a backtest at horizon "
            f"{horizon} needs at least {horizon + 1} (series of {n} points)"
        )
    count = min(max_origins, last - first + 1)
    return np.unique(np.linspace(first, last, count).round().astype(np.int64))


def mase_scale(train: FloatArray, m: int) -> float:
    """In-sample mean absolute error of seasonal naive with lag m (naive when m >= len)."""
    lag = m if len(train) > m else 1
    errors = np.abs(train[lag:] - train[:-lag])
    scale = float(np.nanmean(errors)) if np.any(~np.isnan(errors)) else float("nan")
    if not scale > 0:
        raise TraceError("the training part is constant: MASE is undefined for this series")
    return scale


def pinball(actual: FloatArray, forecast: FloatArray, q: float) -> FloatArray:
    diff = actual - forecast
    return np.maximum(q * diff, (q - 1) * diff)


def score(
    actual: FloatArray, quantile_fc: FloatArray, quantiles: Sequence[float], scale: float
) -> dict[str, float]:
    """Metrics of one forecaster at one horizon. actual (n,), quantile_fc (n, Q); NaN skipped."""
    ok = ~np.isnan(actual) & ~np.isnan(quantile_fc).any(axis=1)
    a, f = actual[ok], quantile_fc[ok]
    col = {q: f[:, quantiles.index(q)] for q in quantiles}
    median = col[0.5]
    denom = np.abs(a) + np.abs(median)
    smape_terms = np.where(denom > 0, 2 * np.abs(a - median) / np.where(denom > 0, denom, 1), 0)
    total = float(np.sum(np.abs(a)))
    wql = (
        float(np.mean([2 * np.sum(pinball(a, col[q], q)) / total for q in WQL_QUANTILES]))
        if total > 0
        else float("nan")
    )
    return {
        "mase": float(np.mean(np.abs(a - median)) / scale),
        "smape": float(np.mean(smape_terms)),
        "wql": wql,
        "coverage_80": float(np.mean((a >= col[0.1]) & (a <= col[0.9]))),
    }


def backtest(
    series: Series,
    forecasters: Mapping[str, Forecaster],
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    reference: str = "seasonal_naive",
    max_origins: int = MAX_ORIGINS,
) -> Backtest:
    """Score every forecaster on the same rolling origins; `reference` must be among them."""
    if reference not in forecasters:
        raise ValueError(f"the reference forecaster {reference!r} is not among {list(forecasters)}")
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive steps, got {list(horizons)}")
    y = series.values
    n = len(y)
    horizon = max(horizons)
    origins = origins_for(n, horizon, max_origins)
    m = season_steps(DAY_S, series.step_s)
    scale = mase_scale(y[: first_test_index(n)], m)
    keep = max(1, round(MAX_HISTORY_DAYS * DAY_S / series.step_s))
    histories = [y[max(0, o + 1 - keep) : o + 1] for o in origins]
    targets = np.stack([y[origins + h] for h in range(1, horizon + 1)], axis=1)  # (n_o, H)

    metrics: dict[str, dict[int, dict[str, float]]] = {}
    for name, forecaster in forecasters.items():
        fcs = forecaster.forecast(histories, series.step_s, horizon, QUANTILES)
        values = np.stack([f.values for f in fcs])  # (n_o, H, Q)
        metrics[name] = {
            h: score(targets[:, h - 1], values[:, h - 1, :], QUANTILES, scale) for h in horizons
        }
    results = []
    for name in forecasters:
        for h in horizons:
            s = metrics[name][h]
            ref = metrics[reference][h]["mase"]
            results.append(
                Result(
                    model=name,
                    horizon_steps=h,
                    horizon_s=h * series.step_s,
                    mase=s["mase"],
                    relative_mase=s["mase"] / ref if ref > 0 else float("nan"),
                    smape=s["smape"],
                    wql=s["wql"],
                    coverage_80=s["coverage_80"],
                )
            )
    test_start_s = series.start_s + first_test_index(n) * series.step_s
    return Backtest(series.name, series.column, series.step_s, test_start_s, len(origins), results)


def format_table(bt: Backtest) -> str:
    """A plain-text table of a backtest, one row per forecaster and horizon."""
    rows = [
        [
            r.model,
            str(r.horizon_steps),
            f"{r.mase:.3f}",
            f"{r.relative_mase:.3f}",
            f"{r.smape:.3f}",
            f"{r.wql:.3f}",
            f"{r.coverage_80:.2f}",
        ]
        for r in bt.results
    ]
    header = ["model", "h", "MASE", "relMASE", "sMAPE", "WQL", "cov80"]
    title = f"{bt.trace} [{bt.column}] step {bt.step_s:g} s, {bt.origins} origins"
    return title + "\n" + render(header, rows)
