"""Metrics for the planner: Prometheus adapter, engine presets, PromQL tenancy guard.

The planning loop builds one `PrometheusMetrics` at start-up and calls
`measure(services, jobs, now)` once per tick; see docs/metrics.md.
"""

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
from aiscaler.metrics.guard import confine
from aiscaler.metrics.source import (
    History,
    JobQuery,
    Measurements,
    MetricsSource,
    Reading,
    Sample,
    ServiceMetrics,
    ServiceQuery,
)

__all__ = [
    "BadQuery",
    "BadResponse",
    "Empty",
    "History",
    "JobQuery",
    "Measurements",
    "MetricError",
    "MetricsSource",
    "NotFinite",
    "Reading",
    "Sample",
    "ServiceMetrics",
    "ServiceQuery",
    "Stale",
    "Timeout",
    "Unreachable",
    "confine",
]
