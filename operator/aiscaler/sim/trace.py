"""Loading a demand trace (the CSV format of ../shared/data/traces/README.md).

A trace file has a header with `timestamp_s` (start of each bin, regular spacing) and numeric
columns. An arrival series counts events per bin (`requests`, `tokens_out`, ...): its demand rate
is count / bin_s. A level series (a file with a `value` column) samples a demand level: the value
is the demand itself. Every error says what is wrong with which file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aiscaler.forecast.baselines import forward_fill
from aiscaler.forecast.data import TraceError, read_trace

FloatArray = npt.NDArray[np.float64]

__all__ = ["Trace", "TraceError", "default_capacity", "load_trace"]


@dataclass(frozen=True)
class Trace:
    name: str  # file name, for reports
    column: str
    kind: str  # "arrivals" | "level"
    bin_s: float
    start_s: float  # timestamp of the first bin kept
    rate: FloatArray  # demand rate (units/s) per bin
    filled_bins: int = 0  # missing bins (empty cells, gaps in time) given the previous value

    @property
    def duration_s(self) -> float:
        return self.bin_s * len(self.rate)


def load_trace(path: str | Path, column: str = "requests") -> Trace:
    """Read `column` of the trace at `path` as a demand rate per bin.

    The CSV itself is parsed by the forecasting package's reader (one parser for both); here the
    series becomes a demand, counts turned into rates. A replay needs a demand in every bin: a
    missing one (an empty cell, or a gap in the timestamps such as Philly's ten hours) repeats
    the bin before it and is counted in `filled_bins`. Arrival series drop their first and last
    bin: a capture window that starts or ends inside a bin leaves those two partial (the README
    names the Azure traces), and two bins are nothing against the length of any useful trace.
    """
    path = Path(path)
    series = read_trace(path, column)  # its values are checked there (aiscaler.inputs)
    kind = "level" if "value" in _header(path) else "arrivals"
    values = series.values.copy()
    missing = np.isnan(values)
    if missing.any():
        values = forward_fill(values[None, :])[0]
    if kind == "arrivals":
        if len(values) < 4:
            raise TraceError(f"trace {path} has {len(values)} bins; an arrival series needs 4")
        values, start = values[1:-1] / series.step_s, series.start_s + series.step_s
        filled = int(missing[1:-1].sum())
    else:
        start, filled = series.start_s, int(missing.sum())
    return Trace(path.name, column, kind, series.step_s, start, values, filled)


def _header(path: Path) -> list[str]:
    with path.open() as f:
        return [h.strip() for h in f.readline().split(",")]


def default_capacity(rate: FloatArray) -> float:
    """Capacity per replica that makes the median demand need about 4 replicas.

    Sparse traces have a median of 0; their mean stands in so the scale is still sensible.
    """
    median = float(np.median(rate))
    reference = median if median > 0 else float(np.mean(rate))
    if reference <= 0:
        raise TraceError("the trace has no demand at all: nothing to simulate")
    return reference / 4.0
