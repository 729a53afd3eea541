"""Training the demand model: windows sampled from the training part of each series, pinball loss.

One script for every machine: the CPU by default; CUDA with bf16 autocast when present; several
processes (GPUs or CPU workers) with DistributedDataParallel when started through torchrun
(WORLD_SIZE > 1). Seeded: the same config, data and world size give the same weights on the CPU.

Each step draws a batch of (series, origin) pairs: series uniformly (so short traces weigh as
much as long ones), origins uniformly inside the training part, so the targets never reach the
test part. Augmentations teach the robustness the operator needs: random gaps (missing scrapes),
short histories (a new service) and a missing seasonal window (less than a day of history).
"""

from __future__ import annotations

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
from aiscaler.forecast.model import (
    ModelConfig,
    QuantileMLP,
    count_parameters,
    gather_lags,
    input_lags,
    load_checkpoint,
    make_inputs,
    pinball_loss,
    save_checkpoint,
)

FloatArray = npt.NDArray[np.float64]
# Normalised targets above this are clipped: one burst must not dominate a batch's loss.
TARGET_CLIP = 100.0


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    gap_probability: float = 0.2  # share of samples that get random missing points
    max_gap_fraction: float = 0.2
    short_history_probability: float = 0.1
    no_season_probability: float = 0.1
    log_every: int = 500
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
        return cls(model=model, **{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class TrainingWindow:
    """Training part of one series, and the origins a window may end at."""

    series: Series
    values: FloatArray
    first_origin: int
    last_origin: int


def training_windows(series: Sequence[Series], cfg: ModelConfig) -> list[TrainingWindow]:
    """Keep the training part of each series; skip (and name) series too short to train on."""
    out = []
    for s in series:
        end = first_test_index(len(s))  # targets stay strictly before the test part
        first, last = cfg.min_history_steps - 1, end - 1 - cfg.horizon
        if last >= first:
            out.append(TrainingWindow(s, s.values[:end], first, last))
    if not out:
        names = ", ".join(s.name for s in series)
        raise ValueError(f"no series is long enough to train on ({names})")
    return out


def sample_batch(
    rng: np.random.Generator,
    windows: Sequence[TrainingWindow],
    tcfg: TrainConfig,
    size: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Inputs (size, n_inputs), normalised targets (size, H) and which samples count."""
    cfg = tcfg.model
    which = rng.integers(0, len(windows), size)
    xs, ts, ok = [], [], []
    for w_idx in np.unique(which):
        w = windows[int(w_idx)]
        k = int(np.sum(which == w_idx))
        origins = rng.integers(w.first_origin, w.last_origin + 1, k).astype(np.int64)
        y = w.values[None, :]
        rows = np.zeros(k, dtype=np.int64)
        recent_lags, seasonal_lags = input_lags(cfg, w.series.step_s)
        recent = gather_lags(y, rows, origins, recent_lags)
        seasonal = gather_lags(y, rows, origins, seasonal_lags)
        augment(rng, recent, seasonal, tcfg)
        target = gather_lags(y, rows, origins, -np.arange(1, cfg.horizon + 1, dtype=np.int64))
        x, scale, observed = make_inputs(recent, seasonal, cfg)
        divisor = np.where(scale > 0, scale, 1.0)[:, None]
        xs.append(x)
        ts.append(np.clip(target / divisor, 0.0, TARGET_CLIP))
        # The predictor does not call the network for these, so they must not train it.
        ok.append((scale > 0) & (observed >= cfg.min_history_steps) & ~np.isnan(target).any(1))
    return (
        np.concatenate(xs),
        np.nan_to_num(np.concatenate(ts)).astype(np.float32),
        np.concatenate(ok),
    )


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


def train(
    series: Sequence[Series],
    tcfg: TrainConfig,
    out_dir: str | Path,
    init_checkpoint: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or fine-tune from `init_checkpoint`) and write the checkpoint folder.

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
        cfg, net = load_checkpoint(init_checkpoint)
        tcfg = replace(tcfg, model=cfg)
    else:
        cfg = tcfg.model
        net = QuantileMLP(cfg)
    windows = training_windows(series, cfg)
    net.train().to(device)
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
        if rank == 0 and (step % tcfg.log_every == 0 or step == tcfg.steps):
            mean = sum(recent_losses) / len(recent_losses)
            log(f"step {step}/{tcfg.steps} pinball {mean:.4f} ({time.monotonic() - started:.0f} s)")
            recent_losses = []

    seconds = time.monotonic() - started
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
        "split": f"earlier {1 - TEST_FRACTION:.0%} of each series trains; the rest tests",
        "fine_tuned_from": str(init_checkpoint) if init_checkpoint else None,
    }
    if rank == 0:
        save_checkpoint(out_dir, replace(cfg, training=record), net.to("cpu").eval())
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return record
