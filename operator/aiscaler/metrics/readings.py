"""Turn Prometheus HTTP API answers into typed values. Pure: no I/O.

`parse_result` reads the `data.result` member of a query or query_range answer (vector,
matrix, scalar or string); `error_from_http` reads an error answer; `newest` makes a `Reading`
out of a series' points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiscaler.metrics.errors import (
    BadQuery,
    BadResponse,
    Empty,
    MetricError,
    NotFinite,
    Stale,
    Timeout,
    Unreachable,
)
from aiscaler.metrics.source import Reading, Sample

Point = tuple[float, float]  # (unix seconds, value)


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[Point, ...]  # ascending time


def parse_result(result: Any) -> list[Series]:
    """Series of a `data.result`: a matrix (`values`), a vector (`value`) or a scalar/string
    (`[time, "value"]`, one series without labels). Raises BadResponse on anything else."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return [Series({}, (_point(result),))]  # scalar or string
    if not isinstance(result, list):
        raise BadResponse(f"Prometheus result is not a list: {_short(result)}")
    series: list[Series] = []
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
            raise BadResponse(f"Prometheus result item is not a series: {_short(item)}")
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        if "values" in item:
            points = tuple(sorted(_point(p) for p in item["values"]))
        elif "value" in item:
            points = (_point(item["value"]),)
        else:
            raise BadResponse(f"Prometheus series has no value: {_short(item)}")
        series.append(Series(labels, points))
    return series


def _point(raw: Any) -> Point:
    try:
        time, value = raw
        # Prometheus writes values as strings: "1.5", "NaN", "+Inf", "-Inf".
        return (float(time), float(value))
    except (TypeError, ValueError):
        raise BadResponse(f'Prometheus sample is not [time, "value"]: {_short(raw)}') from None


def error_from_http(status: int, body: bytes) -> MetricError:
    """The error of a non-200 answer. Prometheus' body is
    {"status": "error", "errorType": ..., "error": ...}; anything else came from elsewhere."""
    try:
        payload = json.loads(body)
        error_type, message = str(payload["errorType"]), str(payload["error"])
    except (ValueError, TypeError, KeyError):
        text = body[:200].decode("utf-8", "replace")
        if status >= 500:
            return Unreachable(f"Prometheus answered HTTP {status}: {text}")
        return BadResponse(f"Prometheus answered HTTP {status} with a non-API body: {text}")
    if error_type == "timeout":
        return Timeout(f"query timed out in Prometheus: {message}")
    if error_type in ("bad_data", "execution"):
        return BadQuery(f"Prometheus rejected the query ({error_type}): {message}")
    return Unreachable(f"Prometheus failed ({error_type}, HTTP {status}): {message}")


def newest(points: Sequence[Point], now: float, stale_after_s: float, what: str) -> Reading:
    """The newest point as a Sample, or why it is not usable."""
    if not points:
        return Empty(f"no data for {what}")
    time, value = points[-1]
    if not math.isfinite(value):
        return NotFinite(f"{what} is {value} at {time:.0f}")
    age = now - time
    if age > stale_after_s:
        return Stale(f"newest {what} is {age:.0f}s old (limit {stale_after_s:.0f}s)")
    return Sample(value, time)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
