"""Typed reasons a metric could not be read.

The planner holds (no scale-down) on any of them and puts `reason` and the message into the
`Degraded` condition, so each message says what was asked and what went wrong.
"""

from __future__ import annotations


class MetricError(Exception):
    """Base class; `reason` is the CamelCase word used in conditions and events."""

    reason = "MetricError"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetricError) and (type(self), self.args) == (
            type(other),
            other.args,
        )

    def __hash__(self) -> int:
        return hash((type(self), self.args))


class Unreachable(MetricError):
    """Prometheus could not be reached or answered with a server-side failure."""

    reason = "PrometheusUnreachable"


class Timeout(MetricError):
    """The request or the query evaluation ran past its time limit."""

    reason = "PrometheusTimeout"


class BadResponse(MetricError):
    """Prometheus (or something in front of it) answered with a body that is not its API."""

    reason = "PrometheusBadResponse"


class BadQuery(MetricError):
    """The query is invalid, cannot be confined to its namespace, or asks for an unknown metric."""

    reason = "BadQuery"


class Empty(MetricError):
    """The query is valid but no series matched it in the window looked at."""

    reason = "MetricsMissing"


class NotFinite(MetricError):
    """The newest value is NaN or +/-Inf (e.g. 0/0 over an idle window)."""

    reason = "MetricNotFinite"


class Stale(MetricError):
    """Data exists but its newest point is older than the staleness limit."""

    reason = "MetricsStale"
