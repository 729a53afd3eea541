"""Long ranges of one PromQL query, for the commands that read a user's history (`export`,
`recommend`, `train --query`): chunked under Prometheus' points limit and put on a regular grid.

Every problem is an `InputError` whose message says what was asked and what went wrong, in one
line: the commands print it and exit with 2.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from aiscaler.inputs import InputError
from aiscaler.metrics.batch import RangeQuery
from aiscaler.metrics.errors import MetricError
from aiscaler.metrics.guard import confine
from aiscaler.metrics.prometheus import PrometheusMetrics

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS = 10_000
_DURATION = re.compile(r"(\d+)(w|d|h|m|s)")
_UNIT_S = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


@dataclass(frozen=True)
class RangeSeries:
    """One series on the grid start_s + i * step_s; NaN where Prometheus had no point."""

    labels: dict[str, str]
    start_s: float
    step_s: float
    values: npt.NDArray[np.float64]


def duration_s(text: str) -> float:
    """A Prometheus-style duration (`7d`, `12h`, `1d12h`, `90m`, `30s`, `2w`) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text or not any(int(n) for n, _ in parts):
        raise InputError(f"{text!r} is not a duration such as 7d, 12h, 1d12h or 90m")
    return float(sum(int(n) * _UNIT_S[u] for n, u in parts))


def timestamp_s(text: str, option: str) -> float:
    """An ISO-8601 time (a trailing Z is UTC; without a zone, UTC) in unix seconds."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{option} {text!r}: not an ISO-8601 time such as 2026-11-01T00:00:00Z"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def read_range(
    url: str,
    query: str,
    start_s: float,
    end_s: float,
    step_s: int,
    namespace: str | None = None,
    timeout_s: float = 60.0,
) -> list[RangeSeries]:
    """Every series `query` returns over [start_s, end_s] at `step_s`, confined to `namespace`
    by the operator's PromQL guard when one is given (the query then sees only its series)."""
    if end_s <= start_s:
        raise InputError("the range is empty: its end must be after its start")
    if namespace is not None:
        try:
            query = confine(query, [namespace])
        except MetricError as error:
            raise InputError(f"--query: {error}") from None
    count = math.floor((end_s - start_s) / step_s) + 1
    source = PrometheusMetrics(url, timeout_s=timeout_s, max_concurrency=1)
    grids: dict[tuple[tuple[str, str], ...], npt.NDArray[np.float64]] = {}
    try:
        for first in range(0, count, MAX_POINTS):
            last = min(count, first + MAX_POINTS) - 1
            chunk = RangeQuery(query, start_s + first * step_s, start_s + last * step_s, step_s)
            answer = source.query_range(chunk)
            if isinstance(answer, MetricError):
                raise InputError(f"Prometheus at {url}: {answer.reason}: {answer}")
            for series in answer:
                key = tuple(sorted(series.labels.items()))
                grid = grids.setdefault(key, np.full(count, math.nan))
                for t, value in series.points:
                    i = round((t - start_s) / step_s)
                    if 0 <= i < count and math.isfinite(value):
                        grid[i] = value
    finally:
        source.close()
    return [RangeSeries(dict(k), start_s, float(step_s), v) for k, v in grids.items()]


def one_series(found: list[RangeSeries], query: str, since: str) -> RangeSeries:
    """The one series a demand query must return (a trace, a service's demand)."""
    if not found or all(np.isnan(s.values).all() for s in found):
        raise InputError(
            f"--query {query!r} returned no data in the last {since}: check the metric name "
            "and labels (with --namespace it sees that namespace's series only) and the range"
        )
    if len(found) > 1:
        labels = "; ".join(",".join(f"{k}={v}" for k, v in s.labels.items()) for s in found[:3])
        raise InputError(
            f"--query returned {len(found)} series ({labels}{'; ...' if len(found) > 3 else ''}) "
            "where one demand series is needed: aggregate them, e.g. sum(...)"
        )
    return found[0]
