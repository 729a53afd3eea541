"""Training under torchrun: several CPU workers (gloo) run the documented command
(`torchrun --nproc_per_node=N model/train.py`), and the gradients are averaged across them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from forecast_helpers import TINY, daily_like, write_trace
from safetensors.torch import load_file

from aiscaler.forecast.model import WEIGHTS_FILE, load_checkpoint

ROOT = Path(__file__).resolve().parents[3]
TORCHRUN = Path(sys.executable).with_name("torchrun")  # installed with torch
BATCH = 32


def _config(tmp_path: Path, batch_size: int) -> Path:
    for seed in (0, 1):
        write_trace(tmp_path / f"s{seed}.csv", daily_like(300, 10, seed))
    model = {k: v for k, v in asdict(TINY).items() if k != "training"}
    model["quantiles"] = list(model["quantiles"])
    config = {
        "traces": [{"file": f"s{seed}.csv", "column": "requests"} for seed in (0, 1)],
        "train": {
            "steps": 6,
            "batch_size": batch_size,
            "seed": 0,
            "log_every": 2,
            "holdout_fraction": 0.2,
            "model": model,
        },
    }
    path = tmp_path / f"batch{batch_size}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(tmp_path: Path, out: str, batch_size: int, workers: int) -> dict[str, torch.Tensor]:
    launcher = (
        [str(TORCHRUN), "--standalone", f"--nproc_per_node={workers}"]
        if workers > 1
        else [sys.executable]
    )
    args = ["model/train.py", "--config", str(_config(tmp_path, batch_size)),
            "--traces-dir", str(tmp_path), "--out", str(tmp_path / out)]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU workers, even on a GPU machine
    done = subprocess.run(
        [*launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # One process (rank 0) reports and writes the checkpoint.
    assert done.stdout.count("checkpoint written") == 1
    cfg, _ = load_checkpoint(tmp_path / out)
    assert cfg.training["world_size"] == workers
    return load_file(tmp_path / out / WEIGHTS_FILE)


def test_two_workers_average_their_gradients_and_are_reproducible(tmp_path: Path) -> None:
    twice = [_train(tmp_path, f"ddp{i}", BATCH, workers=2) for i in (0, 1)]
    # Each worker draws BATCH / 2 samples a step. Without the gradient all-reduce, worker 0 would
    # train exactly as one process with that batch and the same seed does.
    alone = _train(tmp_path, "alone", BATCH // 2, workers=1)
    assert twice[0].keys() == twice[1].keys() == alone.keys()
    assert all(torch.equal(twice[0][k], twice[1][k]) for k in twice[0])
    assert any(not torch.equal(twice[0][k], alone[k]) for k in alone)
