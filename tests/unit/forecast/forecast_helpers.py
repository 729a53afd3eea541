"""Helpers shared by the forecast tests (a tiny model config, synthetic series)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from aiscaler.forecast.model import ModelConfig, ModelForecaster, load_checkpoint

# Small enough to build in milliseconds; the season (600 s at a 60 s step = 10 steps) is
# longer than the horizon, so the seasonal window is used.
TINY = ModelConfig(
    step_s=60.0,
    context_steps=8,
    season_s=600.0,
    season_before_steps=2,
    horizon=4,
    quantiles=(0.1, 0.5, 0.9, 0.99),
    hidden=8,
    blocks=1,
    min_history_steps=4,
)


def write_trace(path: Path, values: np.ndarray, step_s: int = 60, column: str = "requests") -> Path:
    lines = [f"timestamp_s,{column}"]
    lines += [f"{i * step_s},{v:g}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def daily_like(n: int, period: int, seed: int = 0) -> np.ndarray:
    """Positive periodic demand with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 40 * np.sin(2 * np.pi * t / period) + rng.normal(0, 3, n)


def network_only(checkpoint: Path) -> ModelForecaster:
    """The checkpoint's predictor without calibration and shadow scoring (calibration_origins
    = 0): what the network itself says, for tests of the network path."""
    cfg, net = load_checkpoint(checkpoint)
    return ModelForecaster(replace(cfg, calibration_origins=0), net)
