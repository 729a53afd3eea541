"""Builders for decision-core tests: small, explicit inputs that cases change one field of."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aiscaler.core.types import Forecast, ServiceObservation, ServiceSpec

NOW = 10_000.0
STEP_S = 60.0
# Quantile j of step h is per_step[h] * RATIOS[j]: the 0.99 quantile is the series itself.
QUANTILES = (0.5, 0.9, 0.99)
RATIOS = (0.8, 0.9, 1.0)


def forecast(per_step: Sequence[float], step_s: float = STEP_S) -> Forecast:
    """Forecast whose 0.99 quantile at step h (ending h * step_s after the origin) is
    per_step[h - 1]; the 0.5 and 0.9 quantiles are 0.8x and 0.9x of it."""
    values = np.array([[v * r for r in RATIOS] for v in per_step], dtype=np.float64)
    values = values.reshape(len(per_step), len(QUANTILES))
    return Forecast(step_s=step_s, quantiles=QUANTILES, values=values, source="test")


def flat(value: float, steps: int = 20) -> Forecast:
    return forecast([value] * steps)


def spec(**changes: object) -> ServiceSpec:
    """capacity 10/s per replica, cold start 120 s, 1..20 replicas, attainment 0.99."""
    fields: dict[str, object] = {
        "name": "svc",
        "max_replicas": 20,
        "min_replicas": 1,
        "capacity_per_replica": 10.0,
        "cold_start_s": 120.0,
        "attainment": 0.99,
    }
    fields.update(changes)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


def obs(
    current: int,
    demand: float | None,
    fc: Forecast | None,
    *,
    now: float = NOW,
    **changes: object,
) -> ServiceObservation:
    """Observation with a fresh demand sample and a forecast made at `now`."""
    fields: dict[str, object] = {
        "current_replicas": current,
        "demand": demand,
        "demand_time": now,
        "forecast": fc,
        "forecast_origin": now if fc is not None else None,
    }
    fields.update(changes)
    return ServiceObservation(**fields)  # type: ignore[arg-type]
