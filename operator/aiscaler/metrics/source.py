"""What the planning loop asks a metrics source for, and what it gets back.

Like a KEDA scaler, a source answers one question per tick for everything at once:
`measure(services, jobs, now)`. Each value is either a `Sample` (value and the time of the
point it comes from) or a `MetricError` saying why there is none, so the planner can hold and
report the reason instead of acting on missing data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from aiscaler.metrics.errors import MetricError


@dataclass(frozen=True)
class Sample:
    value: float
    time: float  # unix seconds of the newest point the value comes from


Reading = Sample | MetricError


@dataclass(frozen=True)
class History:
    """Demand rate at a regular step: `values[i]` is at `start + i * step_s`; NaN = missing."""

    start: float
    step_s: float
    values: npt.NDArray[np.float64]

    @property
    def end(self) -> float:
        return self.start + (len(self.values) - 1) * self.step_s


@dataclass(frozen=True)
class ServiceQuery:
    """What the metrics layer needs to know about one InferenceService."""

    namespace: str
    name: str
    preset: str = "vllm"  # vllm | sglang | tgi | triton | custom
    unit: str = "requestsPerSecond"  # requestsPerSecond | tokensPerSecond
    query: str | None = None  # PromQL, only with preset "custom"
    selector: Mapping[str, str] = field(default_factory=dict)  # extra label equalities
    latency_metric: str = "ttft"  # ttft | e2e | queue
    latency_quantile: float = 0.95
    workload: str = ""  # name of the Deployment whose pods serve it; default: `name`

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def demand_identity(self) -> tuple[object, ...]:
        """What the service's demand series is: when it changes, its history is read anew."""
        return (self.preset, self.unit, self.query, tuple(sorted(self.selector.items())))


@dataclass(frozen=True)
class JobQuery:
    """A TrainingJob's throughput query (PromQL written by its owner)."""

    namespace: str
    name: str
    query: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class ServiceMetrics:
    """One service's readings. `None`: the preset does not provide that metric (custom)."""

    demand: Reading  # newest point of `demand_history`
    demand_history: History | MetricError
    served: Reading | None
    latency: Reading | None  # seconds, at the SLO quantile (Triton e2e/queue: the mean)
    queue: Reading | None
    gpu_utilisation: Reading  # fraction 0..1, mean over the service's pods' GPUs


@dataclass(frozen=True)
class Measurements:
    services: dict[tuple[str, str], ServiceMetrics]
    jobs: dict[tuple[str, str], Reading]  # training throughput


class MetricsSource(Protocol):
    def measure(
        self, services: Sequence[ServiceQuery], jobs: Sequence[JobQuery], now: float
    ) -> Measurements: ...

    def close(self) -> None: ...
