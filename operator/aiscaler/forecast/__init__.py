"""Demand forecasters: baselines (naive, seasonal naive, Holt-Winters) and the model.

The model's network runs in numpy (`aiscaler.forecast.model`); torch is needed only to train it
(`aiscaler.forecast.network`, `aiscaler.forecast.training`: the `aiscaler[train]` extra).
"""

from __future__ import annotations

from pathlib import Path

from aiscaler.forecast.base import Forecaster
from aiscaler.forecast.baselines import HoltWintersForecaster

# The shipped checkpoint: model/checkpoint in the source tree (the container image copies it to
# the same place relative to the package). AISCALER_MODEL_PATH / settings.model_path override it.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "model" / "checkpoint"


def load_default_forecaster(path: str | Path | None = None) -> tuple[Forecaster, str]:
    """The forecaster to use, and why it was chosen (for a condition or a log line).

    The checkpoint at `path` (default: the shipped one) when it loads; otherwise Holt-Winters,
    and the reason says why the checkpoint could not be used. An operator whose checkpoint is
    missing or corrupt still scales (on the baseline) and says so, rather than stopping.
    """
    from aiscaler.forecast.model import CheckpointError, ModelForecaster

    checkpoint = Path(path) if path is not None else DEFAULT_CHECKPOINT
    try:
        return ModelForecaster.load(checkpoint), f"model checkpoint {checkpoint}"
    except CheckpointError as e:
        return HoltWintersForecaster(), f"{e}: using the holt_winters baseline"


__all__ = ["DEFAULT_CHECKPOINT", "Forecaster", "load_default_forecaster"]
