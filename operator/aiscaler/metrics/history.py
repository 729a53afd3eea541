"""The demand history of every service, kept between ticks and read from Prometheus
incrementally. Pure bookkeeping: no I/O.

Each series lives on the absolute grid of multiples of `step_s` (a point at time k * step_s is
the demand rate Prometheus evaluates there), in a ring of the last `points` grid points. A tick
asks Prometheus only for the grid points from `reread_s` before the newest one it holds up to
now: the new points, and a bounded re-read of the latest ones, which Prometheus may have
evaluated before all their samples had arrived (a slow scrape, remote write) and which it
answers with the late samples included when asked again. A service without history, or whose
demand query changed, is read over the whole window once; so is every service after a restart,
from what Prometheus holds. The series of a service that is gone are dropped on the next tick.
Points Prometheus does not answer within a range read are missing (NaN); counter resets are
Prometheus' business (rate() handles them).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiscaler.metrics.readings import Point
from aiscaler.metrics.source import History


@dataclass
class _Series:
    identity: Hashable  # what the service's demand query is: a new one rebuilds the history
    end: float  # grid time of values[-1]
    values: npt.NDArray[np.float64]


class HistoryCache:
    """Per service: the demand rate at the last `points` grid points of `step_s`."""

    def __init__(self, step_s: float, points: int, reread_s: float) -> None:
        self.step_s = step_s
        self.points = points
        self.reread_s = reread_s
        self._series: dict[Hashable, _Series] = {}

    def grid_end(self, now: float) -> float:
        """The newest grid point at or before `now`."""
        return float(math.floor(now / self.step_s) * self.step_s)

    def read_from(self, key: Hashable, identity: Hashable, now: float) -> float:
        """The first grid point the next read of this series must ask for: the start of the
        whole window for a series not held (or held for another query), else `reread_s` before
        the newest point held (never before the window)."""
        window_start = self.grid_end(now) - (self.points - 1) * self.step_s
        held = self._series.get(key)
        if held is None or held.identity != identity:
            return window_start
        return max(window_start, held.end - self.reread_s)

    def store(
        self,
        key: Hashable,
        identity: Hashable,
        start: float,
        end: float,
        points: Sequence[Point],
    ) -> None:
        """Prometheus' answer for the grid points from `start` to `end`: they replace what was
        held there (missing where it has no point); the ring moves on to `end`."""
        held = self._series.get(key)
        if held is None or held.identity != identity or end < held.end:
            held = _Series(identity, end, np.full(self.points, np.nan))
            self._series[key] = held
        shift = round((end - held.end) / self.step_s)
        if shift >= self.points:
            held.values[:] = np.nan
        elif shift > 0:
            held.values[:-shift] = held.values[shift:]
            held.values[-shift:] = np.nan
        held.end = end
        first = max(0, self.points - 1 - round((end - start) / self.step_s))
        held.values[first:] = np.nan
        for time, value in points:
            index = self.points - 1 - round((end - time) / self.step_s)
            if first <= index < self.points and math.isfinite(value):
                held.values[index] = value

    def history(self, key: Hashable) -> History | None:
        """A copy of the series (the next tick moves the ring), or None when nothing of it is
        held or every point is missing."""
        held = self._series.get(key)
        if held is None or not np.isfinite(held.values).any():
            return None
        start = held.end - (self.points - 1) * self.step_s
        return History(start, self.step_s, held.values.copy())

    def retain(self, keys: Collection[Hashable]) -> None:
        """Keep only the series of `keys` (the services of this tick): a deleted service's
        history goes at once, not after a whole window (hours, at the default step) of churn.
        A service that comes back is read over the whole window again."""
        self._series = {k: held for k, held in self._series.items() if k in keys}
