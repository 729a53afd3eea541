"""The Forecaster interface: many series in, quantiles for horizons 1..H out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from aiscaler.core.types import Forecast


class Forecaster(Protocol):
    """Batched quantile forecaster.

    `histories[i]` is series i's demand rate at a regular step of `step_s` seconds, oldest first,
    ending at the forecast origin; it may contain NaN for missing points. The result has one
    `Forecast` per series, each with `horizon` rows and one column per requested quantile.
    """

    name: str

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]: ...
