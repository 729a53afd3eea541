"""Baseline forecasters: naive, seasonal naive and Holt-Winters.

All three are batched: the histories are stacked into one end-aligned matrix (shorter series
padded with NaN on the left) and every step is a numpy operation over all series at once, so a
call with thousands of history windows costs about as much as a call with one per time step.

Missing points (NaN) are tolerated: point forecasts use the last observed value where a point is
missing, and residuals are taken only where both ends are observed. Quantiles come from the
empirical quantiles of each series' own in-sample residuals (centred on their median),
widened with the horizon. A series
with no observation at all gets a NaN forecast whose note says so: the planner must hold rather
than act on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from aiscaler.core.types import Forecast

FloatArray = npt.NDArray[np.float64]

DAY_S = 86_400.0
# Residuals are taken from at most this many of the latest steps: recent errors describe the
# current regime, and the cost of the quantile sort stays bounded.
RESIDUAL_WINDOW = 720

NO_DATA_NOTE = "no observed point in the history: forecast unavailable"


def check_request(
    histories: Sequence[npt.NDArray[np.float64]],
    step_s: float,
    horizon: int,
    quantiles: Sequence[float],
) -> None:
    """Raise ValueError, saying what is wrong, for a request no forecaster can answer."""
    if not step_s > 0:
        raise ValueError(f"step_s must be positive, got {step_s}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 step, got {horizon}")
    if len(quantiles) == 0:
        raise ValueError("at least one quantile is required")
    qs = list(quantiles)
    if any(not 0.0 < q < 1.0 for q in qs) or any(a >= b for a, b in pairwise(qs)):
        raise ValueError(f"quantiles must be strictly increasing and inside (0, 1), got {qs}")
    for i, h in enumerate(histories):
        if np.ndim(h) != 1:
            raise ValueError(f"history {i} must be one-dimensional, got shape {np.shape(h)}")


def stack_histories(histories: Sequence[npt.NDArray[np.float64]]) -> FloatArray:
    """End-aligned (n_series, longest) matrix; shorter histories are NaN-padded on the left."""
    longest = max((len(h) for h in histories), default=0)
    out = np.full((len(histories), longest), np.nan)
    for i, h in enumerate(histories):
        if len(h):
            out[i, longest - len(h) :] = np.asarray(h, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan  # +-Inf is as unusable as a missing point
    return out


def forward_fill(y: FloatArray) -> FloatArray:
    """Replace each NaN by the last observed value before it in its row (leading NaN stay)."""
    n, t = y.shape
    observed = ~np.isnan(y)
    idx = np.where(observed, np.arange(t)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = y[np.arange(n)[:, None], idx]
    filled[~np.maximum.accumulate(observed, axis=1)] = np.nan
    return filled


def observed_length(y: FloatArray) -> npt.NDArray[np.int64]:
    """Steps from each row's first observed point to its end (0 when nothing was observed)."""
    observed = ~np.isnan(y)
    if y.shape[1] == 0:
        return np.zeros(y.shape[0], dtype=np.int64)
    first = np.argmax(observed, axis=1)
    return np.where(observed.any(axis=1), y.shape[1] - first, 0).astype(np.int64)


def season_steps(season_s: float, step_s: float) -> int:
    """Season length in steps (at least 2: a one-step season is no season)."""
    return max(2, round(season_s / step_s))


def row_quantiles(x: FloatArray, quantiles: Sequence[float]) -> FloatArray:
    """NaN-ignoring quantiles of each row, linear interpolation; 0 for a row with no values.

    (np.nanquantile loops in Python over rows that contain NaN; this stays vectorised.)
    """
    xs = np.sort(x, axis=1)  # NaN sort to the end
    counts = np.sum(~np.isnan(x), axis=1)
    q = np.asarray(quantiles, dtype=np.float64)
    pos = q[None, :] * np.maximum(counts - 1, 0)[:, None]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(counts - 1, 0)[:, None])
    frac = pos - lo
    lo_v = np.take_along_axis(xs, lo, axis=1)
    hi_v = np.take_along_axis(xs, hi, axis=1)
    out: FloatArray = lo_v + (hi_v - lo_v) * frac
    out[counts == 0] = 0.0
    return out


def residual_spread(residuals: FloatArray, quantiles: Sequence[float]) -> FloatArray:
    """Quantiles of each row's residuals around their median (n, Q).

    Centred, so the median forecast is the point forecast: a baseline states no bias it cannot
    explain (the residual median of a trending series would otherwise be added as a fixed drift).
    """
    return row_quantiles(residuals, quantiles) - row_quantiles(residuals, [0.5])


def assemble(
    point: FloatArray,
    residual_quantiles: FloatArray,
    widening: FloatArray,
    step_s: float,
    quantiles: Sequence[float],
    source: str,
    notes: Sequence[str],
) -> list[Forecast]:
    """Build Forecasts from point forecasts (n, H), residual spread (n, Q) and widening (n, H).

    Quantile j at horizon h is point + spread_j * widening_h, clipped at 0 (demand is
    never negative) and sorted so quantiles never cross.
    """
    values = point[:, :, None] + residual_quantiles[:, None, :] * widening[:, :, None]
    return to_forecasts(values, step_s, quantiles, source, notes)


def to_forecasts(
    values: FloatArray,
    step_s: float,
    quantiles: Sequence[float],
    source: str,
    notes: Sequence[str],
) -> list[Forecast]:
    """One Forecast per row of `values` (n, H, Q), clipped at 0 and sorted along the quantiles."""
    values = np.sort(np.maximum(values, 0.0), axis=2)  # NaN rows stay NaN (sorted to the end)
    qs = tuple(float(q) for q in quantiles)
    return [
        Forecast(step_s=step_s, quantiles=qs, values=values[i], source=source, note=notes[i])
        for i in range(values.shape[0])
    ]


def _one_step_differences(y: FloatArray, lag: int) -> FloatArray:
    """y[t] - y[t - lag] over the latest RESIDUAL_WINDOW steps; NaN where either end is missing."""
    if y.shape[1] <= lag:
        return np.full((y.shape[0], 1), np.nan)
    d = y[:, lag:] - y[:, :-lag]
    return d[:, -RESIDUAL_WINDOW:]


class NaiveForecaster:
    """Tomorrow looks like now: the last observed value, spread widening as sqrt(h)."""

    name = "naive"

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]:
        check_request(histories, step_s, horizon, quantiles)
        if not histories:
            return []
        y = stack_histories(histories)
        return naive_forecasts(y, step_s, horizon, quantiles, self.name, [""] * len(histories))


def naive_forecasts(
    y: FloatArray,
    step_s: float,
    horizon: int,
    quantiles: Sequence[float],
    source: str,
    notes: Sequence[str],
) -> list[Forecast]:
    """Naive forecasts of the stacked histories `y` (shared by the fallbacks of other models)."""
    n = y.shape[0]
    if y.shape[1] == 0:
        point = np.full((n, horizon), np.nan)
        spread = np.zeros((n, len(quantiles)))
    else:
        last = forward_fill(y)[:, -1]
        point = np.repeat(last[:, None], horizon, axis=1)
        spread = residual_spread(_one_step_differences(y, 1), quantiles)
    widening = np.repeat(np.sqrt(np.arange(1, horizon + 1, dtype=np.float64))[None, :], n, axis=0)
    notes = [NO_DATA_NOTE if np.isnan(point[i, 0]) else notes[i] for i in range(n)]
    return assemble(point, spread, widening, step_s, quantiles, source, notes)


class SeasonalNaiveForecaster:
    """The same time one season (a day by default) earlier; naive where the history is shorter.

    For h <= season the error is that of one seasonal step, so the spread does not grow with h
    inside the first season; it grows as sqrt(number of seasons spanned) beyond.
    """

    name = "seasonal_naive"

    def __init__(self, season_s: float = DAY_S) -> None:
        self.season_s = season_s

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]:
        check_request(histories, step_s, horizon, quantiles)
        if not histories:
            return []
        y = stack_histories(histories)
        m = season_steps(self.season_s, step_s)
        n, t = y.shape
        seasonal = observed_length(y) > m
        notes = [
            "" if seasonal[i] else f"history shorter than one season ({m} steps): used naive"
            for i in range(n)
        ]
        fallback = naive_forecasts(y, step_s, horizon, quantiles, self.name, notes)
        if not seasonal.any():
            return fallback

        ys = y[seasonal]
        rows = np.arange(len(ys), dtype=np.int64)
        point = seasonal_naive_points(forward_fill(ys), rows, np.full(len(ys), t - 1), horizon, m)
        seasons_back = np.ceil(np.arange(1, horizon + 1) / m)
        spread = residual_spread(_one_step_differences(ys, m), quantiles)
        widening = np.repeat(np.sqrt(seasons_back)[None, :], len(ys), axis=0)
        notes_s = [""] * len(ys)
        seasonal_fc = assemble(point, spread, widening, step_s, quantiles, self.name, notes_s)
        out = list(fallback)
        for k, i in enumerate(np.flatnonzero(seasonal)):
            out[i] = seasonal_fc[k]
        return out


def seasonal_naive_points(
    filled: FloatArray,
    rows: npt.NDArray[np.int64],
    origins: npt.NDArray[np.int64],
    horizon: int,
    m: int,
) -> FloatArray:
    """Seasonal-naive point forecasts (k, H) of forward-filled rows at the given origins: what
    SeasonalNaiveForecaster says from the history up to each origin (the model's shadow scoring
    compares against exactly this reference, as the backtest does).

    Where more than one season (m steps) was observed up to the origin, step h takes the value
    at origin + h - m * ceil(h / m), the same phase of the latest season before the origin;
    otherwise every step takes the value at the origin (naive).
    """
    first_observed = np.argmax(~np.isnan(filled), axis=1)[rows]  # leading NaN stay in `filled`
    seasonal = origins - first_observed + 1 > m
    h = np.arange(1, horizon + 1)
    source = origins[:, None] + h[None, :] - m * np.ceil(h / m).astype(np.int64)[None, :]
    point = filled[rows[:, None], np.maximum(source, 0)]
    return np.where(seasonal[:, None], point, filled[rows, origins][:, None])


class HoltWintersForecaster:
    """Additive Holt-Winters with damped trend, fitted per series by a small vectorised grid.

    Every series runs every (alpha, gamma) pair of the grid at once; each keeps the pair with the
    lowest in-sample one-step squared error. Series with at least two seasons of history use the
    seasonal model; shorter ones a damped-trend (Holt) model, which the note says. Only the
    latest `fit_seasons` seasons (or `fit_steps_without_season` steps) are fitted, which bounds
    the cost of the time loop.
    """

    name = "holt_winters"
    alphas = (0.05, 0.2, 0.5, 0.9)
    gammas = (0.05, 0.25)
    beta = 0.01
    phi = 0.9

    def __init__(
        self,
        season_s: float = DAY_S,
        fit_seasons: int = 3,
        fit_steps_without_season: int = 1_000,
    ) -> None:
        self.season_s = season_s
        self.fit_seasons = fit_seasons
        self.fit_steps_without_season = fit_steps_without_season

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]:
        return self.forecast_and_past(histories, step_s, horizon, quantiles, ())[0]

    def forecast_and_past(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
        back: Sequence[int],
    ) -> tuple[list[Forecast], FloatArray]:
        """The forecasts, and the point forecasts the same fit made `b` steps before each
        history's end, for each b in `back`: (n, len(back), horizon), NaN where the fitted
        window does not reach back that far (a backtest at no extra pass over the data)."""
        check_request(histories, step_s, horizon, quantiles)
        past = np.full((len(histories), len(back), horizon), np.nan)
        if not histories:
            return [], past
        y = stack_histories(histories)
        m = season_steps(self.season_s, step_s)
        n = y.shape[0]
        seasonal = observed_length(y) >= 2 * m
        out: list[Forecast | None] = [None] * n
        groups = [
            (seasonal, m, self.fit_seasons * m, ""),
            (
                ~seasonal,
                1,
                self.fit_steps_without_season,
                f"history shorter than two seasons ({2 * m} steps): no seasonal component",
            ),
        ]
        for members, period, fit_steps, note in groups:
            if not members.any():
                continue
            ys = y[members][:, -fit_steps:]
            point, spread, widening, past[members] = self._fit_predict(
                ys, period, horizon, quantiles, back
            )
            notes = [NO_DATA_NOTE if np.isnan(point[k, 0]) else note for k in range(len(ys))]
            fcs = assemble(point, spread, widening, step_s, quantiles, self.name, notes)
            for k, i in enumerate(np.flatnonzero(members)):
                out[i] = fcs[k]
        return [f for f in out if f is not None], past

    def _fit_predict(
        self, y: FloatArray, m: int, horizon: int, quantiles: Sequence[float], back: Sequence[int]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Point forecasts (n, H), residual quantiles (n, Q), widening (n, H) and the point
        forecasts made `back` steps before the end (n, len(back), H) for one group."""
        n, t = y.shape
        use_season = m > 1
        gammas = self.gammas if use_season else (0.0,)
        grid = [(a, g) for a in self.alphas for g in gammas]
        alpha = np.array([a for a, _ in grid])[None, :]
        gamma = np.array([g for _, g in grid])[None, :]
        n_grid = len(grid)

        season = np.zeros((n, n_grid, m))
        if use_season:
            season[:] = _initial_season(y, m)[:, None, :]
        level = np.full((n, n_grid), np.nan)
        trend = np.zeros((n, n_grid))
        sse = np.zeros((n, n_grid))
        # Parameters are chosen on the errors before the last `n_resid` steps; the residuals of
        # the chosen pair over those last steps then give the quantile spread.
        n_resid = min(RESIDUAL_WINDOW, max(1, t // 2))
        select_at = t - n_resid
        chosen = np.zeros(n, dtype=np.int64)
        residuals = np.full((n, n_resid), np.nan)
        rows = np.arange(n)
        beta, phi = self.beta, self.phi
        h = np.arange(1, horizon + 1)
        damp_sum = np.cumsum(phi ** h.astype(np.float64))
        # Every grid pair's forecast at each past origin; the pair chosen at the end is kept.
        snapshot_at = {t - 1 - b: k for k, b in enumerate(back) if b < t}
        snapshots = np.full((n, len(back), n_grid, horizon), np.nan)

        for i in range(t):
            if i == select_at:
                chosen = np.argmin(sse, axis=1)
            p = i % m
            s = season[:, :, p]
            obs = y[:, i][:, None]
            valid = ~np.isnan(obs)
            damped = trend * phi
            predicted = level + damped + s
            err = obs - predicted
            seen = valid & ~np.isnan(level)
            if i < select_at:
                # The first season only initialises the seasonal state: do not score it.
                if i >= m or not use_season:
                    sse += np.where(seen, err * err, 0.0)
            else:
                residuals[:, i - select_at] = np.where(seen, err, np.nan)[rows, chosen]
            first = valid & np.isnan(level)
            new_level = alpha * (obs - s) + (1 - alpha) * (level + damped)
            new_level = np.where(first, obs - s, new_level)
            new_trend = np.where(first, 0.0, beta * (new_level - level) + (1 - beta) * damped)
            level = np.where(valid, new_level, level + damped)
            trend = np.where(valid, new_trend, damped)
            if use_season:
                season[:, :, p] = np.where(seen, gamma * (obs - level) + (1 - gamma) * s, s)
            if i in snapshot_at:
                ahead = season[:, :, (i + h) % m] if use_season else 0.0
                snapshots[:, snapshot_at[i]] = _points_ahead(level, trend, damp_sum, ahead)

        lvl = level[rows, chosen]
        trd = trend[rows, chosen]
        seas = season[rows, chosen][:, (t - 1 + h) % m] if use_season else 0.0
        point = _points_ahead(lvl, trd, damp_sum, seas)
        # Variance of an h-step ETS(A,N,A) error: sigma^2 (1 + (h - 1) alpha^2).
        a = alpha[0, chosen]
        widening = np.sqrt(1.0 + (h[None, :] - 1) * (a[:, None] ** 2))
        spread = residual_spread(residuals, quantiles)
        return point, spread, widening, snapshots[rows, :, chosen]


def _points_ahead(
    level: FloatArray, trend: FloatArray, damp_sum: FloatArray, season: FloatArray | float
) -> FloatArray:
    """The h-step point forecasts (..., H) from a state: level + damped trend + the season
    ahead (..., H; 0.0 without a season)."""
    points: FloatArray = level[..., None] + trend[..., None] * damp_sum + season
    return points


def _initial_season(y: FloatArray, m: int) -> FloatArray:
    """Mean deviation of each phase from the series mean, over the fitted window (n, m)."""
    n, t = y.shape
    pad = (-t) % m
    padded = np.concatenate([np.full((n, pad), np.nan), y], axis=1)
    phases = padded.reshape(n, -1, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN phases
        per_phase = np.nanmean(phases, axis=1) - np.nanmean(y, axis=1)[:, None]
    # The phase of column c in `padded` is c % m; roll so index p is time index p of `y`.
    per_phase = np.roll(per_phase, -pad, axis=1)
    return np.where(np.isnan(per_phase), 0.0, per_phase)
