"""Training the demand model: windows sampled from the training part of each series, pinball loss.

One script for every machine: the CPU by default; CUDA with bf16 autocast when present; several
processes (GPUs or CPU workers) with DistributedDataParallel when started through torchrun
(WORLD_SIZE > 1). Seeded: the same config, data and world size give the same weights on the CPU.

Each series' training part (its earlier 75%; the rest is its test part, for evaluation; a
production fine-tune sets `test_fraction` to 0) is split again by time:
the network trains on the earlier part, and the latest `holdout_fraction` of it is held out of
gradient steps. The held-out tail serves two purposes: the weights kept are those with the
lowest pinball loss on it (checkpoint selection against overfitting), and, as the network never
fitted it, the per-series interval calibration of the predictor (which looks at the history just
before each forecast origin) sees the errors the network makes on data it did not train on.

Each step draws a batch of (series, origin) pairs: series in proportion to their number of
origins (to a configurable power), origins uniformly inside the trained part, so the targets
never reach the held-out tail or the test part. Augmentations teach the robustness the operator
needs: random gaps (missing scrapes), short histories (a new service) and a missing seasonal
window (less than a day of history).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from aiscaler.forecast.data import TEST_FRACTION, Series, first_test_index
from aiscaler.forecast.model import ModelConfig, gather_lags, input_lags, make_inputs
from aiscaler.forecast.network import (
    QuantileMLP,
    count_parameters,
    load_network,
    pinball_loss,
    save_checkpoint,
)

FloatArray = npt.NDArray[np.float64]
# Normalised targets above this are clipped: one burst must not dominate a batch's loss.
TARGET_CLIP = 100.0
# Origins per series in the validation set (evenly spread over its held-out tail).
VALIDATION_ORIGINS = 256


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    # Latest share of each series' training part held out of gradient steps: validation
    # (checkpoint selection) and honest calibration windows. 0: train on all of it, keep the last
    # weights.
    holdout_fraction: float = 0.2
    # A series is drawn with probability proportional to (number of training origins) ** this:
    # 1 draws every origin equally often; 0 every series equally often, so that a short series
    # is seen many times more per point than a long one (on the shipped data: overfitted, and
    # over-confident just after its training part).
    length_weight_power: float = 1.0
    # Latest share of each series kept out of training altogether: its test part, for evaluation
    # (model/evaluate.py, `aiscaler backtest`). 0 for a production fine-tune, which should learn
    # from the most recent history (the hold-out still picks the weights).
    test_fraction: float = TEST_FRACTION
    gap_probability: float = 0.2  # share of samples that get random missing points
    max_gap_fraction: float = 0.2
    short_history_probability: float = 0.1
    no_season_probability: float = 0.1
    log_every: int = 500  # steps between log lines and validation losses
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)} - {"model"}
        unknown = set(d) - known - {"model"}
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        model_fields = {f.name for f in fields(ModelConfig)} - {"training"}
        model_d = dict(d.get("model", {}))
        bad = set(model_d) - model_fields
        if bad:
            raise ValueError(f"unknown model settings: {sorted(bad)}")
        if "quantiles" in model_d:
            model_d["quantiles"] = tuple(model_d["quantiles"])
        model = ModelConfig(**model_d)
        model.validate()
        cfg = cls(model=model, **{k: v for k, v in d.items() if k in known})
        if not 0 <= cfg.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {cfg.holdout_fraction}")
        if not 0 <= cfg.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {cfg.test_fraction}")
        return cfg


@dataclass(frozen=True)
class TrainingWindow:
    """The part of one series a window may read (inputs and targets), and the origins a window
    may end at."""

    series: Series
    values: FloatArray
    first_origin: int
    last_origin: int


def first_holdout_index(n_train: int, holdout_fraction: float) -> int:
    """Index of the first held-out point of a training part of `n_train` points."""
    return n_train - math.ceil(n_train * holdout_fraction)


def split_windows(
    series: Sequence[Series],
    cfg: ModelConfig,
    holdout_fraction: float,
    test_fraction: float = TEST_FRACTION,
) -> tuple[list[TrainingWindow], list[TrainingWindow]]:
    """Per series, by time: the trained window (targets before the held-out tail; it cannot read
    the tail) and the validation window (every target inside the held-out tail; its inputs may
    reach back into the trained part). A series too short for either is left out of it; no
    series to train on at all is an error that names them."""
    trained, validation = [], []
    first = cfg.min_history_steps - 1
    for s in series:
        end = first_test_index(len(s), test_fraction)  # nothing at or after the test part
        cut = first_holdout_index(end, holdout_fraction)
        if cut - 1 - cfg.horizon >= first:
            trained.append(TrainingWindow(s, s.values[:cut], first, cut - 1 - cfg.horizon))
        v_first, v_last = max(first, cut - 1), end - 1 - cfg.horizon
        if cut < end and v_last >= v_first:
            validation.append(TrainingWindow(s, s.values[:end], v_first, v_last))
    if not trained:
        names = ", ".join(s.name for s in series)
        raise ValueError(f"no series is long enough to train on ({names})")
    return trained, validation


def window_samples(
    w: TrainingWindow,
    origins: npt.NDArray[np.int64],
    tcfg: TrainConfig,
    rng: np.random.Generator | None,
) -> tuple[npt.NDArray[np.float32], FloatArray, npt.NDArray[np.bool_]]:
    """Inputs, normalised targets and which samples count, at `origins` of one window;
    augmented when `rng` is given."""
    cfg = tcfg.model
    y = w.values[None, :]
    rows = np.zeros(len(origins), dtype=np.int64)
    recent_lags, seasonal_lags = input_lags(cfg, w.series.step_s)
    recent = gather_lags(y, rows, origins, recent_lags)
    seasonal = gather_lags(y, rows, origins, seasonal_lags)
    if rng is not None:
        augment(rng, recent, seasonal, tcfg)
    target = gather_lags(y, rows, origins, -np.arange(1, cfg.horizon + 1, dtype=np.int64))
    x, scale, observed = make_inputs(recent, seasonal, cfg)
    divisor = np.where(scale > 0, scale, 1.0)[:, None]
    # The predictor does not call the network for these, so they must not train it.
    ok = (scale > 0) & (observed >= cfg.min_history_steps) & ~np.isnan(target).any(1)
    return x, np.clip(target / divisor, 0.0, TARGET_CLIP), ok


def sample_batch(
    rng: np.random.Generator,
    windows: Sequence[TrainingWindow],
    tcfg: TrainConfig,
    size: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Inputs (size, n_inputs), normalised targets (size, H) and which samples count."""
    which = rng.choice(len(windows), size, p=series_probabilities(windows, tcfg))
    xs, ts, ok = [], [], []
    for w_idx in np.unique(which):
        w = windows[int(w_idx)]
        k = int(np.sum(which == w_idx))
        origins = rng.integers(w.first_origin, w.last_origin + 1, k).astype(np.int64)
        x, t, counts = window_samples(w, origins, tcfg, rng)
        xs.append(x)
        ts.append(t)
        ok.append(counts)
    return (
        np.concatenate(xs),
        np.nan_to_num(np.concatenate(ts)).astype(np.float32),
        np.concatenate(ok),
    )


def series_probabilities(windows: Sequence[TrainingWindow], tcfg: TrainConfig) -> FloatArray:
    """How often each window is drawn (see TrainConfig.length_weight_power)."""
    origins = np.array([w.last_origin - w.first_origin + 1 for w in windows], dtype=np.float64)
    weights = np.power(origins, tcfg.length_weight_power)
    out: FloatArray = weights / np.sum(weights)
    return out


def augment(
    rng: np.random.Generator, recent: FloatArray, seasonal: FloatArray, tcfg: TrainConfig
) -> None:
    """In place: random gaps, truncated histories, missing seasonal windows."""
    n, c = recent.shape
    gaps = np.less(rng.random(n), tcfg.gap_probability)
    if gaps.any():
        rate = rng.random((int(gaps.sum()), 1)) * tcfg.max_gap_fraction
        for block in (recent, seasonal):
            if block.shape[1]:
                sub = block[gaps]
                sub[rng.random(sub.shape) < rate] = np.nan
                block[gaps] = sub
    short = np.less(rng.random(n), tcfg.short_history_probability)
    keep = rng.integers(tcfg.model.min_history_steps, c + 1, n)
    cut = short[:, None] & (np.arange(c)[None, :] < (c - keep)[:, None])
    recent[cut] = np.nan
    no_season = short | (rng.random(n) < tcfg.no_season_probability)
    if seasonal.shape[1]:
        seasonal[no_season] = np.nan


class Validation:
    """Fixed, unaugmented samples of every validation window. The loss is the geometric mean
    over series of each series' mean pinball loss: scale-free, so halving the error of a smooth
    series (normalised losses ~0.005) counts as much as halving that of a bursty one (~0.1);
    with an arithmetic mean the bursty series alone would choose the weights."""

    def __init__(
        self, windows: Sequence[TrainingWindow], tcfg: TrainConfig, device: torch.device
    ) -> None:
        self.sets = []
        for w in windows:
            count = min(VALIDATION_ORIGINS, w.last_origin - w.first_origin + 1)
            origins = np.unique(np.linspace(w.first_origin, w.last_origin, count).round())
            x, t, ok = window_samples(w, origins.astype(np.int64), tcfg, None)
            if ok.any():
                self.sets.append(
                    (
                        torch.from_numpy(x[ok]).to(device),
                        torch.from_numpy(t[ok].astype(np.float32)).to(device),
                    )
                )
        self.quantiles = torch.tensor(tcfg.model.quantiles, device=device)

    def loss(self, net: torch.nn.Module) -> float:
        net.eval()
        with torch.no_grad():
            losses = [float(pinball_loss(net(x).float(), t, self.quantiles)) for x, t in self.sets]
        net.train()
        return float(np.exp(np.mean(np.log(np.maximum(losses, 1e-12)))))


def train(
    series: Sequence[Series],
    tcfg: TrainConfig,
    out_dir: str | Path,
    init_checkpoint: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or fine-tune from `init_checkpoint`) and write the checkpoint folder.

    With a held-out tail (`tcfg.holdout_fraction` > 0) the weights written are those with the
    lowest validation loss among the ones every `log_every` steps; without one, the last.
    Returns the training record that is also stored under "training" in config.json.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available()
    if world > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed + rank)
    if init_checkpoint is not None:
        cfg, net = load_network(init_checkpoint)
        tcfg = replace(tcfg, model=cfg)
    else:
        cfg = tcfg.model
        net = QuantileMLP(cfg)
    windows, validation_windows = split_windows(
        series, cfg, tcfg.holdout_fraction, tcfg.test_fraction
    )
    net.train().to(device)
    validation = Validation(validation_windows, tcfg, device)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    model: torch.nn.Module = DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.AdamW(
        model.parameters(), lr=tcfg.learning_rate, weight_decay=tcfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=tcfg.learning_rate, total_steps=tcfg.steps, pct_start=0.05
    )
    qs = torch.tensor(cfg.quantiles, device=device)
    per_rank = max(1, tcfg.batch_size // world)
    started = time.monotonic()
    recent_losses: list[float] = []
    for step in range(1, tcfg.steps + 1):
        x, t, ok = sample_batch(rng, windows, tcfg, per_rank)
        xb = torch.from_numpy(x[ok]).to(device)
        tb = torch.from_numpy(t[ok]).to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            pred = model(xb)
        loss = pinball_loss(pred.float(), tb, qs)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent_losses.append(float(loss.detach()))
        if step % tcfg.log_every == 0 or step == tcfg.steps:
            mean = sum(recent_losses) / len(recent_losses)
            recent_losses = []
            line = f"step {step}/{tcfg.steps} pinball {mean:.4f}"
            if validation.sets:  # every rank holds the same weights and computes the same loss
                v = validation.loss(net)
                line += f" validation {v:.4f}"
                if best is None or v < best[0]:
                    state = {k: t.detach().clone() for k, t in net.state_dict().items()}
                    best = (v, step, state)
            if rank == 0:
                log(f"{line} ({time.monotonic() - started:.0f} s)")

    seconds = time.monotonic() - started
    if best is not None:
        net.load_state_dict(best[2])
    record = {
        "series": [f"{w.series.name}:{w.series.column}" for w in windows],
        "steps": tcfg.steps,
        "batch_size": tcfg.batch_size,
        "learning_rate": tcfg.learning_rate,
        "seed": tcfg.seed,
        "world_size": world,
        "device": torch.cuda.get_device_name(device)
        if cuda
        else f"cpu ({torch.get_num_threads()} threads)",
        "seconds": round(seconds, 1),
        "parameters": count_parameters(net),
        "split": (
            f"earlier {1 - tcfg.test_fraction:.0%} of each series trains, of which the latest "
            f"{tcfg.holdout_fraction:.0%} is held out (validation, never a gradient step); "
            + ("the rest tests" if tcfg.test_fraction else "no test part")
        ),
        "holdout_fraction": tcfg.holdout_fraction,
        "test_fraction": tcfg.test_fraction,
        "validation_series": len(validation.sets),
        "validation_pinball": round(best[0], 5) if best else None,
        "selected_step": best[1] if best else tcfg.steps,
        "weight_decay": tcfg.weight_decay,
        "length_weight_power": tcfg.length_weight_power,
        "fine_tuned_from": str(init_checkpoint) if init_checkpoint else None,
    }
    if rank == 0:
        save_checkpoint(out_dir, replace(cfg, training=record), net.to("cpu").eval())
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return record
