"""What the planning tick carries: the operator built once (clients, forecaster, settings) with
its memory between ticks, the report of one tick, and the objects the observe step found."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiscaler.api.inference import InferenceService
from aiscaler.api.training import TrainingJob
from aiscaler.core.types import (
    ClusterPlan,
    Forecast,
    PlannerConfig,
    PoolSpec,
    ScaleMemory,
    ServiceSpec,
    TrainingSpec,
)
from aiscaler.forecast.base import Forecaster
from aiscaler.handlers.mapping import key_of, pool_specs
from aiscaler.handlers.telemetry import Telemetry
from aiscaler.kube.client import KubeApi, ScaleState, TargetRef
from aiscaler.metrics.source import History, MetricsSource
from aiscaler.settings import Settings

# Concurrent API calls (the act step's writes, the observe step's LISTs). Each waits on the API
# server (and, in a real cluster, etcd's disk and the network) much longer than it uses the
# operator's CPU; a tick that changes 1,000 services sends ~3,000 writes, and services in 1,000
# namespaces need 1,000 LISTs. Bounded so a burst stays within the API server's fairness limits
# for one client.
KUBE_CONCURRENCY = 8


@dataclass(frozen=True)
class Forecasted:
    """A service's forecast, with what it was asked for: the same request gets the same one."""

    history: History
    horizon: int
    forecast: Forecast


@dataclass
class Operator:
    """What the operator builds once at start-up, and the memory it carries between ticks."""

    kube: KubeApi
    metrics: MetricsSource
    forecaster: Forecaster
    settings: Settings
    namespace: str  # the operator's own namespace: balloon Deployments live there
    telemetry: Telemetry = field(default_factory=Telemetry)
    memories: dict[str, ScaleMemory] = field(default_factory=dict)
    forecasts: dict[str, Forecasted] = field(default_factory=dict)  # the latest, per service
    last_tick: float | None = None
    left: dict[str, int] = field(default_factory=dict)  # replicas each target was left at
    # key -> (resourceVersion before, object after) of the last status write of each object
    written: dict[tuple[str, str], tuple[str | None, Mapping[str, Any]]] = field(
        default_factory=dict
    )
    seen: set[tuple[str, str]] = field(default_factory=set)  # (kind, key) at the last tick
    # key -> (resourceVersion, pools, what parsing gave): an unchanged object is not validated
    # again (handlers/observe.py)
    parsed: dict[tuple[str, str], tuple[str, tuple[PoolSpec, ...], Any]] = field(
        default_factory=dict
    )
    model_problem: str | None = None  # why the model checkpoint is not in use, if it is not
    # API calls that can run side by side: each object's writes (handlers/act.py), the LISTs
    # that read the current replicas (handlers/observe.py).
    kube_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(KUBE_CONCURRENCY, thread_name_prefix="kube")
    )

    @property
    def config(self) -> PlannerConfig:
        return PlannerConfig(
            tick_s=float(self.settings.tick_seconds),
            slo_window_s=float(self.settings.measurement.window_s),  # latency readings' window
            demand_window_s=float(self.settings.measurement.demand_window_s),
        )

    def latest(self, *kinds: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], ...]:
        """The bodies of each kind, each replaced by what this process's last status write
        returned while the index still has the version from before that write: a watch event
        that is late, or was lost with a broken watch, must not make the next tick decide and
        report again. What was kept of objects that are gone is forgotten first."""
        self.forget_all_but({written_key(b) for bodies in kinds for b in bodies})

        def fresh(body: Mapping[str, Any]) -> Mapping[str, Any]:
            before, after = self.written.get(written_key(body), (None, None))
            stale = body["metadata"].get("resourceVersion") == before
            return after if stale and after is not None else body

        return tuple([fresh(b) for b in bodies] for bodies in kinds)

    def forget_all_but(self, present: set[tuple[str, str]]) -> None:
        """Drop what this process keeps of objects deleted since the last tick: their memory,
        last status write, parsed spec and replica count, and their series in /metrics (a
        dashboard must not show a deleted service as still there, and a churn of names must not
        grow the process)."""
        for kind, key in self.seen - present:
            self.telemetry.forget(kind, *key.split("/"))
        self.seen = present
        services = {key for kind, key in present if kind == "InferenceService"}
        self.memories = {k: v for k, v in self.memories.items() if k in services}
        self.left = {k: v for k, v in self.left.items() if k in services}
        self.written = {k: v for k, v in self.written.items() if k in present}
        self.parsed = {k: v for k, v in self.parsed.items() if k in present}

    def close(self) -> None:
        self.kube_pool.shutdown(wait=True)
        self.metrics.close()

    def pool_specs(self) -> list[PoolSpec]:
        return pool_specs(self.settings.pools)


def written_key(body: Mapping[str, Any]) -> tuple[str, str]:
    """The key of `Operator.written`."""
    return (body["kind"], key_of(body))


@dataclass
class TickReport:
    """What one tick did, for logs, tests and the benchmark."""

    plan: ClusterPlan | None = None
    invalid: dict[str, list[str]] = field(default_factory=dict)
    resized: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (from, to)
    created: list[str] = field(default_factory=list)  # owned workloads created or re-applied
    status_writes: int = 0
    events: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def add(self, other: TickReport) -> None:
        """Count what `other` (the report of one object's writes) did in this report."""
        self.invalid.update(other.invalid)
        self.resized.update(other.resized)
        self.created += other.created
        self.status_writes += other.status_writes
        self.events += other.events
        self.errors += other.errors


@dataclass
class ObservedService:
    body: Mapping[str, Any]
    model: InferenceService
    spec: ServiceSpec
    target: TargetRef
    state: ScaleState | None  # None: an owned Deployment not created yet
    owned: bool


@dataclass
class ObservedTraining:
    body: Mapping[str, Any]
    model: TrainingJob
    spec: TrainingSpec
    target: TargetRef
    workers: int  # current workers (0: an owned Job not created yet)
    job: Mapping[str, Any] | None  # the owned Job, when there is one
    owned: bool
