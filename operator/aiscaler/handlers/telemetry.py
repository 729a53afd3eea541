"""The operator's own Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Telemetry:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.decisions = Counter(
            "aiscaler_decisions_total",
            "Decisions that changed a workload's size, by kind and reason.",
            ["kind", "namespace", "name", "reason"],
            registry=r,
        )
        self.desired = Gauge(
            "aiscaler_desired_replicas",
            "Replicas (or training workers) the planner wants now.",
            ["kind", "namespace", "name"],
            registry=r,
        )
        self.forecast = Gauge(
            "aiscaler_forecast_demand",
            "Demand forecast for the lead time at the planning quantile (units/s); compare "
            "with aiscaler_observed_demand offset by the lead time.",
            ["namespace", "name"],
            registry=r,
        )
        self.lead_time = Gauge(
            "aiscaler_lead_time_seconds",
            "Lead time the forecast covers.",
            ["namespace", "name"],
            registry=r,
        )
        self.slo_margin = Gauge(
            "aiscaler_slo_margin",
            "Factor (>= 1) on planned demand, learned from whether the latency objective held.",
            ["namespace", "name"],
            registry=r,
        )
        self.observed = Gauge(
            "aiscaler_observed_demand",
            "Demand observed now (units/s).",
            ["namespace", "name"],
            registry=r,
        )
        self.errors = Counter(
            "aiscaler_errors_total",
            "Failures by stage (kube, metrics, forecast, plan, act, status).",
            ["stage"],
            registry=r,
        )
        self.tick_seconds = Histogram(
            "aiscaler_tick_duration_seconds",
            "Duration of one planning tick (observe, query, forecast, plan, act).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.leader = Gauge(
            "aiscaler_leader", "1 when this replica holds the leader Lease.", registry=r
        )

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Remove every series of a deleted object."""
        self.decisions.remove_by_labels({"kind": kind, "namespace": namespace, "name": name})
        self.desired.remove_by_labels({"kind": kind, "namespace": namespace, "name": name})
        if kind == "InferenceService":
            for gauge in (self.forecast, self.lead_time, self.slo_margin, self.observed):
                gauge.remove_by_labels({"namespace": namespace, "name": name})
