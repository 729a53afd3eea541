"""Loading a demand trace (the CSV format of ../shared/data/traces/README.md).

A trace file has a header with `timestamp_s` (start of each bin, regular spacing) and numeric
columns. An arrival series counts events per bin (`requests`, `tokens_out`, ...): its demand rate
is count / bin_s. A level series (a file with a `value` column) samples a demand level: the value
is the demand itself. Every error says what is wrong with which file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aiscaler.forecast.baselines import forward_fill
from aiscaler.forecast.data import TraceError, read_trace

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "Requests",
    "Trace",
    "TraceError",
    "as_requests",
    "default_capacity",
    "load_trace",
    "tune_split",
]


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


# A level series (GPUs in demand, nodes busy, CPU use) has no requests: one replica is taken to
# serve this many requests/s (a vLLM replica running 256 requests of about 25 s each), and the
# level is converted at the rate that makes `capacity` units one replica's worth.
LEVEL_REPLICA_RPS = 10.0


@dataclass(frozen=True)
class Requests:
    """A trace's demand in requests, what the serving model replays."""

    rate: FloatArray  # requests/s per bin
    capacity: float  # requests/s one replica serves with every slot busy
    unit: str  # how the trace's column became requests


def as_requests(trace: Trace, capacity: float, path: str | Path | None = None) -> Requests:
    """The trace's demand in requests/s, with `capacity` (in the column's units per second)
    converted alike: `requests` as they are; another count column (tokens) over the trace's mean
    units per request (needs the `requests` column of the same file at `path`); a level series at
    LEVEL_REPLICA_RPS per replica's worth of level."""
    if trace.kind == "level":
        factor = LEVEL_REPLICA_RPS / capacity
        unit = f"level x {factor:.4g}: {capacity:.4g} units = one replica = {LEVEL_REPLICA_RPS:g}/s"
    elif trace.column == "requests":
        factor, unit = 1.0, "requests"
    else:
        if path is None:
            raise TraceError(f"converting {trace.column} to requests needs the trace file")
        requests = load_trace(path, "requests").rate.sum()
        if requests <= 0:
            raise TraceError(f"trace {path} has no requests to convert {trace.column} with")
        per_request = float(trace.rate.sum() / requests)
        factor = 1.0 / per_request
        unit = f"{trace.column} / {per_request:.4g} per request (the trace's mean)"
    return Requests(trace.rate * factor, capacity * factor, unit)


def tune_split(duration_s: float, bin_s: float, fraction: float) -> float:
    """Where the tune window ends: `fraction` of the trace, at least one day when the trace has
    several, on a whole bin and a whole 5-minute window."""
    unit = math.lcm(round(bin_s), 300)
    wanted = duration_s * fraction
    if duration_s >= 2 * 86_400:
        wanted = max(wanted, 86_400.0)
    split = math.floor(wanted / unit) * unit
    if not 0 < split < duration_s:
        raise TraceError(
            f"a {duration_s:g} s trace has no tune window of fraction {fraction:g} "
            f"(whole {unit} s windows)"
        )
    return float(split)
