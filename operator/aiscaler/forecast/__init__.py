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

    With an explicit `path` the checkpoint must load: CheckpointError says why it cannot. Without
    one, the shipped checkpoint is used when it is present and loads; otherwise Holt-Winters, and
    the reason says so.
    """
    from aiscaler.forecast.model import CheckpointError, ModelForecaster

    if path is not None:
        return ModelForecaster.load(path), f"model checkpoint {path}"
    try:
        return ModelForecaster.load(DEFAULT_CHECKPOINT), f"model checkpoint {DEFAULT_CHECKPOINT}"
    except CheckpointError as e:
        return HoltWintersForecaster(), f"{e}: using the holt_winters baseline"


__all__ = ["DEFAULT_CHECKPOINT", "Forecaster", "load_default_forecaster"]
