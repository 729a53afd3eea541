"""Requests in flight: sizing for requests that hold a replica longer than a rate is counted over.

A request holds one of a replica's slots for its duration S (`capacity.requestSeconds`). The
slots busy at a moment serve the requests that arrived within the last S, so when S is longer
than the step a rate is counted over, the load to size for is the rate averaged over the last S,
not its peak per step: a one-minute burst of 30 requests lasting 12 minutes each keeps 30 slots
busy for 12 minutes, not the 360 that 30 requests every minute for 12 minutes would.

- `steps_in_flight(request_s, step_s)`: how many steps of a rate one request spans (1 when S is
  not longer than the step: that rate already counts the requests in flight).
- `in_flight_forecast(forecast, center, steps, known)`: each forecast row becomes the rate
  averaged over the `steps` rows up to it, the rows before the origin at the `known` rate. The
  median path is averaged; each quantile's spread around it is combined as independent from step
  to step (the root of the sum of squares), so a burst that may come in any one minute is not
  planned for in every minute at once.
The reactive floor's counterpart is the mean of the rates observed over the last S (the
planner keeps them in its memory).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from aiscaler.core.types import Forecast

FloatArray = npt.NDArray[np.float64]


def steps_in_flight(request_s: float | None, step_s: float) -> int:
    """Steps of `step_s` seconds one request spans; 1 when unknown or not longer than a step."""
    if request_s is None or request_s <= step_s:
        return 1
    return max(1, round(request_s / step_s))


def in_flight_forecast(
    forecast: Forecast, center: FloatArray, steps: int, known: float
) -> Forecast:
    """The forecast of the mean rate over the last `steps` steps at every row (`center`: the
    forecast's median per row; `known`: the rate before the origin, taken as certain)."""
    if steps <= 1:
        return forecast
    values = np.sort(forecast.values, axis=1)
    spread = values - center[:, None]
    pad = steps - 1
    centers = np.concatenate([np.full(pad, known), center])
    spreads = np.concatenate([np.zeros((pad, values.shape[1])), spread])
    windows = np.lib.stride_tricks.sliding_window_view  # the `steps` rows ending at each row
    mean_center = windows(centers, steps).mean(axis=-1)
    squares = windows(spreads**2, steps, axis=0).sum(axis=-1)
    signs = np.sign(windows(spreads, steps, axis=0).sum(axis=-1))
    combined = mean_center[:, None] + signs * np.sqrt(squares) / steps
    return replace(forecast, values=np.maximum(0.0, combined))
