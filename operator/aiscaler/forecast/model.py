"""The demand model: a small quantile MLP, its self-describing checkpoint, a batched predictor.

Inputs, per series, at a forecast origin (the last observed point):
- the recent context: the last `context_steps` points;
- the seasonal window: the points one season (a day) earlier, from `season_before_steps` before
  the origin to `horizon` after it, i.e. what happened "yesterday" around the times forecast.
Both are divided by the series' own scale (mean absolute value of the observed recent context),
clipped, passed through log1p, and sent with a 0/1 mask per point, so missing points (NaN,
a history shorter than a season) are explicit. The network outputs, per horizon, a median and
positive gaps to the other quantiles, so quantiles never cross; outputs are multiplied back by
the scale. Everything is step-relative (the season in steps is season_s / step_s), so one model
serves series of any scale and of the steps it was trained on.

The network runs in numpy (`QuantileNetwork`) from the checkpoint's safetensors file: the
operator needs no torch. Training, and the torch form of the network, are in
`aiscaler.forecast.network` and `aiscaler.forecast.training` (the `aiscaler[train]` extra).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from threadpoolctl import ThreadpoolController

from aiscaler.core.types import Forecast
from aiscaler.forecast.base import Forecaster
from aiscaler.forecast.baselines import (
    HoltWintersForecaster,
    SeasonalNaiveForecaster,
    check_request,
    forward_fill,
    row_quantiles,
    season_steps,
    seasonal_naive_points,
    stack_histories,
    to_forecasts,
)

FloatArray = npt.NDArray[np.float64]

CHECKPOINT_FORMAT = "aiscaler-forecast-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# How inputs are normalised; a checkpoint trained with another normalisation is incompatible.
NORMALISATION = {
    "scale": "mean absolute value of the observed recent context (else of the seasonal window)",
    "inputs": "log1p(clip(x / scale, 0, input_clip)), NaN -> 0 with a 0/1 mask per point",
    "outputs": "quantiles of y / scale",
}


ZERO_NOTE = "no demand in the model's input window: forecast 0"
MIN_CALIBRATION_POINTS = 20
CALIBRATED_INTERVAL = (0.1, 0.9)  # scaled to cover 80% of each series' recent targets
CALIBRATION_LIMITS = (0.5, 4.0)
# A shadow (seasonal naive, Holt-Winters) replaces the model on a series only when the model's
# recent error is clearly larger: a few dozen targets are a noisy comparison.
SHADOW_MARGIN = 1.1
NETWORK_ROWS = 2048  # samples (series x origin) whose inputs are built at a time
KEEP_MODEL, SEASONAL_NAIVE, HOLT_WINTERS = 0, 1, 2  # which forecaster a series gets


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing or that this code cannot use."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network and its inputs (written to config.json)."""

    step_s: float = 60.0  # the step the operator should query history at
    context_steps: int = 120
    season_s: float = 86_400.0
    season_before_steps: int = 30
    horizon: int = 30
    quantiles: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
    hidden: int = 256
    blocks: int = 4
    input_clip: float = 50.0
    min_history_steps: int = 16  # observed points in the recent context; fewer -> fallback
    calibration_origins: int = 16  # past origins per series for interval calibration; 0 = off
    training: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def n_inputs(self) -> int:
        return 2 * (self.context_steps + self.season_before_steps + self.horizon)

    @property
    def median_index(self) -> int:
        return self.quantiles.index(0.5)

    @property
    def holdout_fraction(self) -> float:
        """Latest share of each series' training part that was held out of training
        (`training.holdout_fraction` in config.json). Checkpoints written before the hold-out
        existed lack it: they trained on all of it, 0.0."""
        return float(self.training.get("holdout_fraction", 0.0))

    def validate(self) -> None:
        q = self.quantiles
        if 0.5 not in q or list(q) != sorted(set(q)) or not all(0 < x < 1 for x in q):
            raise CheckpointError(f"quantiles must be increasing in (0, 1) and contain 0.5: {q}")
        for name in ("context_steps", "horizon", "hidden", "blocks", "min_history_steps"):
            if getattr(self, name) < 1:
                raise CheckpointError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.calibration_origins < 0:
            raise CheckpointError("calibration_origins must not be negative")
        if self.season_before_steps < 0 or self.step_s <= 0 or self.season_s <= 0:
            raise CheckpointError("season_before_steps, step_s and season_s must be positive")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["quantiles"] = list(self.quantiles)
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "normalisation": NORMALISATION,
            **d,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str) -> ModelConfig:
        if d.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{where}: not an aiscaler forecast checkpoint config")
        if d.get("format_version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{where}: checkpoint format version {d.get('format_version')!r}; this aiscaler "
                f"reads version {CHECKPOINT_VERSION} (retrain with `aiscaler train`)"
            )
        if d.get("normalisation") != NORMALISATION:
            raise CheckpointError(f"{where}: checkpoint uses a normalisation this code lacks")
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(names - set(d) - {"training"})
        if missing:
            raise CheckpointError(f"{where}: config lacks {missing}")
        try:
            cfg = cls(
                step_s=float(d["step_s"]),
                context_steps=int(d["context_steps"]),
                season_s=float(d["season_s"]),
                season_before_steps=int(d["season_before_steps"]),
                horizon=int(d["horizon"]),
                quantiles=tuple(float(q) for q in d["quantiles"]),
                hidden=int(d["hidden"]),
                blocks=int(d["blocks"]),
                input_clip=float(d["input_clip"]),
                min_history_steps=int(d["min_history_steps"]),
                calibration_origins=int(d["calibration_origins"]),
                training=dict(d.get("training", {})),
            )
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: malformed config value: {e}") from e
        cfg.validate()
        return cfg


# --- inputs -------------------------------------------------------------------------------


def input_lags(cfg: ModelConfig, step_s: float) -> tuple[npt.NDArray[np.int64], ...]:
    """Lags (steps before the origin) of the recent context and of the seasonal window.

    The seasonal window is left out (empty) when the season is not longer than the horizon:
    "yesterday" would then overlap the future.
    """
    recent = np.arange(cfg.context_steps - 1, -1, -1, dtype=np.int64)
    m = season_steps(cfg.season_s, step_s)
    ahead = np.arange(-cfg.season_before_steps + 1, cfg.horizon + 1, dtype=np.int64)
    seasonal = m - ahead if m > cfg.horizon else np.array([], dtype=np.int64)
    return recent, seasonal


def gather_lags(
    y: FloatArray,
    rows: npt.NDArray[np.int64],
    origins: npt.NDArray[np.int64],
    lags: npt.NDArray[np.int64],
) -> FloatArray:
    """y[rows[i], origins[i] - lags[k]] as (n, K); NaN before the start of the series."""
    idx = origins[:, None] - lags[None, :]
    out = y[rows[:, None], np.maximum(idx, 0)]
    return np.where(idx >= 0, out, np.nan)


def make_inputs(
    recent: FloatArray, seasonal: FloatArray, cfg: ModelConfig
) -> tuple[npt.NDArray[np.float32], FloatArray, npt.NDArray[np.int64]]:
    """Network inputs (n, n_inputs), each series' scale (0: nothing non-zero seen) and the
    number of observed recent points."""
    n = recent.shape[0]
    if seasonal.shape[1] == 0:  # no seasonal window at this step: all of it missing
        seasonal = np.full((n, cfg.season_before_steps + cfg.horizon), np.nan)
    observed = np.sum(~np.isnan(recent), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # mean of an all-NaN row
        scale = np.nanmean(np.abs(recent), axis=1)
        scale = np.where(
            np.isnan(scale) | (scale == 0), np.nanmean(np.abs(seasonal), axis=1), scale
        )
    scale = np.where(np.isnan(scale), 0.0, scale)
    divisor = np.where(scale > 0, scale, 1.0)[:, None]
    parts = []
    for block in (recent, seasonal):
        mask = ~np.isnan(block)
        z = np.log1p(np.clip(np.where(mask, block, 0.0) / divisor, 0.0, cfg.input_clip))
        parts += [z, mask.astype(np.float64)]
    x = np.concatenate(parts, axis=1).astype(np.float32)
    return x, scale, observed.astype(np.int64)


# --- network ------------------------------------------------------------------------------


def weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The tensors of a checkpoint's weights file, by name: those of the torch network
    `aiscaler.forecast.network.QuantileMLP` (an input Linear; per block a LayerNorm, a Linear
    and GELU, added to its input; an output Linear)."""
    shapes: dict[str, tuple[int, ...]] = {
        "inp.weight": (cfg.hidden, cfg.n_inputs),
        "inp.bias": (cfg.hidden,),
    }
    for i in range(cfg.blocks):
        shapes[f"blocks.{i}.0.weight"] = (cfg.hidden,)  # LayerNorm scale
        shapes[f"blocks.{i}.0.bias"] = (cfg.hidden,)
        shapes[f"blocks.{i}.1.weight"] = (cfg.hidden, cfg.hidden)
        shapes[f"blocks.{i}.1.bias"] = (cfg.hidden,)
    shapes["out.weight"] = (cfg.horizon * len(cfg.quantiles), cfg.hidden)
    shapes["out.bias"] = (cfg.horizon * len(cfg.quantiles),)
    return shapes


Float32Array = npt.NDArray[np.float32]
Network = Callable[[Float32Array, int], npt.NDArray[np.floating[Any]]]
"""Inputs (n, n_inputs) and the steps ahead wanted (at most the horizon) -> non-crossing
normalised quantiles (n, steps, Q)."""

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which the network was trained with
# erf(x) = 1 - t * poly(t) * exp(-x^2), t = 1 / (1 + p x), for x >= 0 (Abramowitz and Stegun
# 7.1.26; absolute error below 1.5e-7, under float32's resolution of GELU's output).
_ERF_P = np.float32(0.3275911 / math.sqrt(2))  # for erf(a / sqrt 2)
_ERF_HALF_POLY = [  # the polynomial's coefficients, halved: GELU takes half of erfc
    np.float32(c / 2) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
]


class QuantileNetwork:
    """The trained network in numpy (float32), from a checkpoint's weights: what the operator
    runs, so that it needs no torch. It computes what `QuantileMLP.forward` computes (tested
    equal within 1e-5 on every shipped checkpoint).

    Each LayerNorm's scale and shift are folded into the Linear after it (exact algebra), rows
    are processed `CHUNK` at a time so the intermediate arrays stay in the CPU's cache, and the
    matrix products run on one BLAS thread: on two shared cores OpenBLAS' default of a thread per
    core made these small products 5x slower (bench/RESULTS.md, operator section).
    """

    CHUNK = 512

    def __init__(self, cfg: ModelConfig, weights: Mapping[str, npt.NDArray[Any]]) -> None:
        """`weights` as `read_weights` returns them: the tensors `weight_shapes` names."""
        self.horizon = cfg.horizon
        self.n_quantiles = len(cfg.quantiles)
        self.median = cfg.median_index

        def f32(name: str) -> Float32Array:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self.inp = (np.ascontiguousarray(f32("inp.weight").T), f32("inp.bias"))
        self.blocks = []
        for i in range(cfg.blocks):
            scale = weights[f"blocks.{i}.0.weight"].astype(np.float64)
            shift = weights[f"blocks.{i}.0.bias"].astype(np.float64)
            weight = weights[f"blocks.{i}.1.weight"].astype(np.float64)
            bias = weights[f"blocks.{i}.1.bias"].astype(np.float64)
            # Linear(scale * n + shift) = n @ (weight * scale).T + (bias + weight @ shift)
            self.blocks.append(
                (
                    np.ascontiguousarray((weight * scale[None, :]).T, dtype=np.float32),
                    (bias + weight @ shift).astype(np.float32),
                )
            )
        # Rows of the output layer are (horizon, quantile) pairs, horizon-major: reorder them
        # quantile-major.
        order = np.arange(cfg.horizon * len(cfg.quantiles)).reshape(cfg.horizon, -1).T.ravel()
        self.out = (
            np.ascontiguousarray(f32("out.weight")[order].T),
            f32("out.bias")[order],
        )
        self._threads = ThreadpoolController()

    def __call__(self, x: Float32Array, steps: int | None = None) -> Float32Array:
        """Quantiles (n, steps, Q) of the first `steps` steps ahead (all of the horizon by
        default): the output layer computes only those."""
        steps = self.horizon if steps is None else steps
        if not 0 < steps <= self.horizon:
            raise ValueError(f"steps {steps} outside 1..{self.horizon}")
        # The output layer's columns are quantile-major: level q's step s is column q * H + s.
        columns = (np.arange(self.n_quantiles)[:, None] * self.horizon + np.arange(steps)).ravel()
        out = np.ascontiguousarray(self.out[0][:, columns]), self.out[1][columns]
        with self._threads.limit(limits=1, user_api="blas"):
            # An empty x is one empty chunk, so that the result has the right shape.
            return np.concatenate(
                [
                    self._forward(np.asarray(x[i : i + self.CHUNK], dtype=np.float32), out)
                    for i in range(0, max(len(x), 1), self.CHUNK)
                ]
            )

    def _forward(
        self, x: Float32Array, out_layer: tuple[Float32Array, Float32Array]
    ) -> Float32Array:
        h = x @ self.inp[0]
        h += self.inp[1]
        work = np.empty_like(h), np.empty_like(h)
        for weight, bias in self.blocks:
            normed = h - h.mean(axis=1, keepdims=True)
            variance = np.einsum("ij,ij->i", normed, normed)[:, None] / np.float32(h.shape[1])
            normed *= 1 / np.sqrt(variance + np.float32(LAYER_NORM_EPS))
            z = normed @ weight
            z += bias
            h += _gelu(z, *work)
        # Outputs by quantile level, then step (the output layer's rows were reordered so):
        # each level's values are one contiguous block.
        out_weight, out_bias = out_layer
        raw = cast(Float32Array, h @ out_weight + out_bias).reshape(
            len(x), self.n_quantiles, out_weight.shape[1] // self.n_quantiles
        )
        m = self.median
        median = raw[:, m]
        gaps = _softplus(raw)
        out = np.empty_like(raw)
        out[:, m] = median
        # The median plus (minus) the running sum of the gaps above (below) it, summed in the
        # order torch's cumsum sums them.
        total = np.zeros_like(median)
        for q in range(m + 1, self.n_quantiles):
            total += gaps[:, q]
            np.add(median, total, out=out[:, q])
        total[:] = 0
        for q in range(m - 1, -1, -1):
            total += gaps[:, q]
            np.subtract(median, total, out=out[:, q])
        return out.transpose(0, 2, 1)  # (n, steps, Q)


def _softplus(x: Float32Array) -> Float32Array:
    """log(1 + exp(x)), as max(x, 0) + log1p(exp(-|x|)): no overflow, and several times faster
    than numpy's logaddexp."""
    out = np.abs(x)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(x, np.float32(0))
    return out


def _gelu(z: Float32Array, a: Float32Array, t: Float32Array) -> Float32Array:
    """GELU(z) = z * Phi(z) in place (torch's exact form, through erf), with two work arrays.

    With a = |z| and q = erfc(a / sqrt 2) = t * poly(t) * exp(-a^2 / 2): GELU(z) =
    max(z, 0) - a * q / 2 for either sign of z."""
    np.abs(z, out=a)
    np.multiply(a, _ERF_P, out=t)
    t += np.float32(1)
    np.reciprocal(t, out=t)
    q = t * _ERF_HALF_POLY[4]
    for c in reversed(_ERF_HALF_POLY[:4]):
        q += c
        q *= t
    q *= a
    np.multiply(a, a, out=t)
    t *= np.float32(-0.5)
    np.exp(t, out=t)
    q *= t
    np.maximum(z, np.float32(0), out=z)
    z -= q
    return z


# --- checkpoint ---------------------------------------------------------------------------


def read_config(path: str | Path) -> ModelConfig:
    """The config of a checkpoint folder; CheckpointError says what is missing or incompatible."""
    folder = Path(path)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not folder.is_dir():
        raise CheckpointError(f"no model checkpoint folder at {folder}")
    for p in (config_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint {folder} lacks {p.name}")
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_path}: not readable JSON: {e}") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object")
    return ModelConfig.from_json(raw, str(config_path))


def read_weights(path: str | Path, cfg: ModelConfig) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a checkpoint folder's safetensors file, as numpy arrays, checked against
    the network `cfg` describes."""
    weights_path = Path(path) / WEIGHTS_FILE
    try:
        weights = load_file(str(weights_path))
    except Exception as e:  # safetensors raises its own error types for a corrupt file
        raise CheckpointError(f"{weights_path}: not a readable safetensors file: {e}") from e
    expected = weight_shapes(cfg)
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))
        raise CheckpointError(
            f"{weights_path}: weights do not match the network described by {CONFIG_FILE} "
            f"(differing tensors and shapes: {diff[:6]})"
        )
    return weights


def load_checkpoint(path: str | Path) -> tuple[ModelConfig, QuantileNetwork]:
    """Read a checkpoint folder into the numpy network; CheckpointError says what is missing or
    incompatible."""
    cfg = read_config(path)
    return cfg, QuantileNetwork(cfg, read_weights(path, cfg))


# --- predictor ----------------------------------------------------------------------------


class ModelForecaster:
    """Batched CPU predictor: load once, then one network call per `forecast`.

    Falls back to Holt-Winters, saying so in each Forecast's note, for series with fewer than
    `min_history_steps` observed points in the recent context, and for the whole call when the
    horizon asked for is longer than the model's or a quantile lies outside its trained range.
    Each series' intervals are calibrated on its own recent past, and a series on which seasonal
    naive or Holt-Winters did better than the model over that past gets the better of the two
    (see `_recent_record`).
    """

    name = "model"

    def __init__(self, cfg: ModelConfig, net: Network, fallback: Forecaster | None = None):
        self.cfg = cfg
        self.net = net
        self.holt_winters = HoltWintersForecaster(season_s=cfg.season_s)
        self.fallback: Forecaster = fallback or self.holt_winters
        self.shadow = SeasonalNaiveForecaster(season_s=cfg.season_s)

    @classmethod
    def load(cls, path: str | Path) -> ModelForecaster:
        cfg, net = load_checkpoint(path)
        return cls(cfg, net)

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]:
        check_request(histories, step_s, horizon, quantiles)
        cfg = self.cfg
        lo, hi = cfg.quantiles[0], cfg.quantiles[-1]
        if not histories:
            return []
        # Requests the network cannot answer go to the fallback as a whole, saying why.
        why = ""
        if horizon > cfg.horizon:
            why = f"horizon {horizon} > the model's {cfg.horizon} steps"
        elif quantiles[0] < lo or quantiles[-1] > hi:
            why = f"quantiles {list(quantiles)} outside the model's [{lo}, {hi}]"
        if why:
            fallback = self.fallback.forecast(histories, step_s, horizon, quantiles)
            return [_with_note(f, f"{why}: used {self.fallback.name}") for f in fallback]

        y = stack_histories(histories)
        n = y.shape[0]
        out, use_net, scale, observed = self._network(
            y,
            np.arange(n, dtype=np.int64),
            np.full(n, y.shape[1] - 1, dtype=np.int64),
            step_s,
            horizon,
        )
        short = observed < cfg.min_history_steps
        better = np.full(n, KEEP_MODEL)  # which shadow did better on the series' recent past
        values = np.zeros((n, horizon, len(quantiles)))
        net_rows = [int(i) for i in np.flatnonzero(use_net)]
        hw_forecasts: dict[int, Forecast] = {}
        if net_rows:
            back = [horizon * (k + 1) for k in range(cfg.calibration_origins)]
            hw, hw_past = self.holt_winters.forecast_and_past(
                [histories[i] for i in net_rows], step_s, horizon, quantiles, back
            )
            hw_forecasts = dict(zip(net_rows, hw, strict=True))
            out = out[use_net]
            median = out[:, :, cfg.median_index : cfg.median_index + 1]
            factor, zero_share, better[use_net] = self._recent_record(
                y[use_net], step_s, horizon, hw_past
            )
            out = (median + factor[:, None, None] * (out - median)) * scale[use_net, None, None]
            out = interpolate_quantiles(out, cfg.quantiles, quantiles)
            values[use_net] = with_zero_mass(out, quantiles, zero_share)
        notes = ["" if use_net[i] else ZERO_NOTE for i in range(n)]
        result = to_forecasts(values, step_s, quantiles, self.name, notes)
        if short.any():
            idx = [int(i) for i in np.flatnonzero(short)]
            fb = self.fallback.forecast([histories[i] for i in idx], step_s, horizon, quantiles)
            for i, f in zip(idx, fb, strict=True):
                note = (
                    f"{observed[i]} observed points in the last {cfg.context_steps} steps, "
                    f"below the model's minimum of {cfg.min_history_steps}: used {f.source}"
                )
                result[i] = _with_note(f, note)
        naive_rows = [int(i) for i in np.flatnonzero(better == SEASONAL_NAIVE)]
        naive = self.shadow.forecast([histories[i] for i in naive_rows], step_s, horizon, quantiles)
        shadows = dict(zip(naive_rows, naive, strict=True))
        shadows |= {int(i): hw_forecasts[int(i)] for i in np.flatnonzero(better == HOLT_WINTERS)}
        for i, f in shadows.items():
            name = self.shadow.name if better[i] == SEASONAL_NAIVE else self.holt_winters.name
            note = f"the model's recent error on this series was above {name}'s"
            result[i] = _with_note(f, f"{note}: used {f.source}")
        return result

    def _network(
        self,
        y: FloatArray,
        rows: npt.NDArray[np.int64],
        origins: npt.NDArray[np.int64],
        step_s: float,
        steps: int,
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.int64]]:
        """Normalised quantiles (k, steps, Q) at the given origins of rows of `y` (zero where
        the network is not used), which samples it was used for, their scales and the number of
        observed points in their recent context."""
        cfg = self.cfg
        recent_lags, seasonal_lags = input_lags(cfg, step_s)
        out = np.zeros((len(rows), steps, len(cfg.quantiles)))
        scale = np.zeros(len(rows))
        observed = np.zeros(len(rows), dtype=np.int64)
        usable = np.zeros(len(rows), dtype=np.bool_)
        # NETWORK_ROWS samples at a time bounds the inputs' working memory (a float64 copy of
        # each input window) whatever the number of series and origins.
        for first in range(0, len(rows), NETWORK_ROWS):
            part = slice(first, first + NETWORK_ROWS)
            x, scale[part], observed[part] = make_inputs(
                gather_lags(y, rows[part], origins[part], recent_lags),
                gather_lags(y, rows[part], origins[part], seasonal_lags),
                cfg,
            )
            use = usable[part] = (observed[part] >= cfg.min_history_steps) & (scale[part] > 0)
            if use.any():
                out[part][use] = self.net(x[use], steps)
        return out, usable, scale, observed

    def _recent_record(
        self, y: FloatArray, step_s: float, horizon: int, hw_past: FloatArray
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        """How the model did on each series' own recent past: the interval factor, the share of
        targets that were exactly 0 (see `with_zero_mass`), and which forecaster did better
        (shadow scoring, DESIGN.md §4): KEEP_MODEL, SEASONAL_NAIVE or HOLT_WINTERS, whose point
        forecasts at the same past origins are `hw_past` (n, calibration_origins, horizon).

        The model forecasts from `calibration_origins` past origins, `horizon` steps apart,
        whose targets are all observed history (nothing after the origin is used). The factor
        widens (or narrows) the model's intervals around its median so that its 80% interval
        would have covered 80% of those targets (split conformal: the 0.8 quantile of
        |actual - median| / half-width of [q0.1, q0.9] on that side), clipped to
        CALIBRATION_LIMITS. With fewer than MIN_CALIBRATION_POINTS targets: factor 1, zero share 0,
        model kept.
        """
        n, t = y.shape
        origins = (t - 1 - horizon) - horizon * np.arange(self.cfg.calibration_origins)
        origins = origins[origins >= 0]
        if origins.size == 0:
            return np.ones(n), np.zeros(n), np.full(n, KEEP_MODEL)
        rows = np.repeat(np.arange(n, dtype=np.int64), origins.size)
        past = np.tile(origins, n).astype(np.int64)
        out, usable, scale, _ = self._network(y, rows, past, step_s, horizon)
        low_level, high_level = CALIBRATED_INTERVAL
        band = interpolate_quantiles(out, self.cfg.quantiles, (low_level, 0.5, high_level))
        lo, median, hi = band[..., 0], band[..., 1], band[..., 2]
        divisor = np.where(scale > 0, scale, 1)[:, None]
        steps_ahead = -np.arange(1, horizon + 1, dtype=np.int64)
        actual = gather_lags(y, rows, past, steps_ahead) / divisor
        m = season_steps(self.cfg.season_s, step_s)
        baseline = seasonal_naive_points(forward_fill(y), rows, past, horizon, m) / divisor
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(
                actual >= median,
                (actual - median) / np.maximum(hi - median, 1e-9),
                (median - actual) / np.maximum(median - lo, 1e-9),
            )
        holt = hw_past[:, : origins.size].reshape(n * origins.size, horizon) / divisor
        counted = usable[:, None] & ~np.isnan(actual) & ~np.isnan(baseline) & ~np.isnan(holt)
        ratio = np.where(counted, ratio, np.nan).reshape(n, -1)

        def error(forecast: FloatArray) -> FloatArray:
            per_point = np.where(counted, np.abs(actual - forecast), 0.0)
            summed: FloatArray = per_point.reshape(n, -1).sum(axis=1)
            return summed

        model_error, naive_error, holt_error = error(median), error(baseline), error(holt)
        counts = counted.reshape(n, -1).sum(axis=1)
        enough = counts >= MIN_CALIBRATION_POINTS
        zeros = (counted & (actual == 0)).reshape(n, -1).sum(axis=1)
        zero_share = np.where(enough, zeros / np.maximum(counts, 1), 0.0)
        # Calibrate the interval as it will be issued: where the zero mass puts its lower end at
        # 0 (with_zero_mass), a target of 0 is inside it whatever the factor.
        inside_at_zero = (actual.reshape(n, -1) == 0) & (zero_share >= low_level)[:, None]
        ratio = np.where(inside_at_zero & ~np.isnan(ratio), 0.0, ratio)
        factor = np.clip(row_quantiles(ratio, [0.8])[:, 0], *CALIBRATION_LIMITS)
        # The better shadow (seasonal naive on a tie), if it beat the model by the margin.
        naive_better = naive_error <= holt_error
        shadow_error = np.where(naive_better, naive_error, holt_error)
        shadow = np.where(naive_better, SEASONAL_NAIVE, HOLT_WINTERS)
        better = np.where(enough & (model_error > SHADOW_MARGIN * shadow_error), shadow, KEEP_MODEL)
        return np.where(enough, factor, 1.0), zero_share, better


def with_zero_mass(
    values: FloatArray, quantiles: Sequence[float], zero_share: FloatArray
) -> FloatArray:
    """Quantiles (n, H, Q) with the levels up to the median that series i's share of zeros
    covers (level <= zero_share[i]) set to 0.

    The network's quantiles are continuous, but demand such as arrivals per minute of a rarely
    used service is exactly 0 much of the time: a point mass at 0. When a share p of a series'
    recent targets was 0, its quantiles at levels <= p are 0: with p >= 0.5 that includes the
    median, the point forecast. The levels above the median, which size capacity, are left to
    the network.
    """
    q = np.asarray(quantiles)[None, :]
    zero = (q <= zero_share[:, None]) & (q <= 0.5)
    return np.where(zero[:, None, :], 0.0, values)


def interpolate_quantiles(
    values: FloatArray, have: Sequence[float], want: Sequence[float]
) -> FloatArray:
    """Linear interpolation along the last axis from quantile levels `have` to `want`."""
    have_a = np.asarray(have)
    out = np.empty((*values.shape[:-1], len(want)))
    for j, q in enumerate(want):
        k = int(np.clip(np.searchsorted(have_a, q), 1, len(have_a) - 1))
        w = (q - have_a[k - 1]) / (have_a[k] - have_a[k - 1])
        out[..., j] = values[..., k - 1] * (1 - w) + values[..., k] * w
    return out


def _with_note(f: Forecast, note: str) -> Forecast:
    joined = f"{note}; {f.note}" if f.note else note
    return Forecast(f.step_s, f.quantiles, f.values, f.source, joined)
