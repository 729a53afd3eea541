"""Demand series for training and backtesting: reading a trace CSV, resampling, the time split.

The CSV format is the one of ../shared/data/traces/README.md: a `timestamp_s` column (start of
each bin, on a regular grid; bins missing from the file become NaN) and numeric columns such as
`requests` (count per bin) or `value` (a level). Values are used as they are in the file: every
forecaster normalises per series and every accuracy metric is scale-free, so counts per bin and
rates give the same results.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aiscaler.inputs import InputError, check_trace_values

FloatArray = npt.NDArray[np.float64]

# The later quarter of every trace is the test part; training sees only the earlier part.
TEST_FRACTION = 0.25


class TraceError(InputError):
    """A trace that cannot be used: missing, empty, malformed, unknown column, too short, values
    that are no demand."""


@dataclass(frozen=True)
class Series:
    """One evenly spaced demand series; `values[i]` covers [start_s + i*step_s, + step_s)."""

    name: str
    column: str
    step_s: float
    start_s: float
    values: FloatArray

    def __len__(self) -> int:
        return int(self.values.shape[0])


def read_trace(path: str | Path, column: str = "requests") -> Series:
    """Read one numeric column of a trace CSV; raise TraceError saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise TraceError(f"trace {path} is a directory, not a CSV file")
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror or e}") from e
    if not rows:
        raise TraceError(f"trace {path} is empty")
    header = [h.strip() for h in rows[0]]
    if "timestamp_s" not in header:
        raise TraceError(f"trace {path} has no 'timestamp_s' column (columns: {header})")
    if column not in header:
        numeric = [h for h in header if h != "timestamp_s"]
        raise TraceError(
            f"trace {path} has no column {column!r}; choose one of {numeric} "
            "(level series use 'value')"
        )
    ti, vi = header.index("timestamp_s"), header.index(column)
    times = np.empty(len(rows) - 1)
    values = np.empty(len(rows) - 1)
    for n, row in enumerate(rows[1:]):
        try:
            times[n] = float(row[ti])
            values[n] = float(row[vi]) if row[vi].strip() else math.nan
        except (IndexError, ValueError) as e:
            raise TraceError(f"trace {path} line {n + 2}: malformed row {row!r}") from e
    if len(values) < 2:
        raise TraceError(f"trace {path} has {len(values)} data rows; at least 2 are needed")
    try:
        check_trace_values(values, f"trace {path}", column)
    except InputError as error:
        raise TraceError(str(error)) from None
    steps = np.diff(times)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 3
        raise TraceError(f"trace {path}: timestamps are not increasing (line {bad})")
    # Missing bins (a gap in the timestamps) become NaN points on the regular grid.
    step_s = float(np.min(steps))
    slots = (times - times[0]) / step_s
    if not np.allclose(slots, np.round(slots)):
        bad = int(np.argmax(~np.isclose(slots, np.round(slots)))) + 2
        raise TraceError(f"trace {path}: timestamp at line {bad} is off the {step_s:g} s grid")
    grid = np.full(int(np.round(slots[-1])) + 1, math.nan)
    grid[np.round(slots).astype(np.int64)] = values
    values = grid
    values[~np.isfinite(values)] = math.nan
    return Series(path.name, column, step_s, float(times[0]), values)


def resample(series: Series, step_s: float) -> Series:
    """Average the series over coarser bins of `step_s` (a whole multiple of its step)."""
    factor = step_s / series.step_s
    if factor < 1 or not math.isclose(factor, round(factor)):
        raise TraceError(
            f"cannot resample {series.name} from {series.step_s:g} s to {step_s:g} s: "
            "the new step must be a whole multiple of the old one"
        )
    k = round(factor)
    if k == 1:
        return series
    n = len(series) // k
    blocks = series.values[: n * k].reshape(n, k)
    with np.errstate(invalid="ignore"):
        observed = np.sum(~np.isnan(blocks), axis=1)
        means = np.where(observed > 0, np.nansum(blocks, axis=1) / np.maximum(observed, 1), np.nan)
    return Series(f"{series.name}@{step_s:g}s", series.column, step_s, series.start_s, means)


def first_test_index(n: int, test_fraction: float = TEST_FRACTION) -> int:
    """Index of the first test point of a series of `n` points (earlier points train)."""
    return n - math.ceil(n * test_fraction)
