"""The reactive autoscalers users would otherwise run, as their real algorithms do it.

Every policy sees the demand only through `Demand.mean_rate` over a window that ends now, and the
service's current and ready replicas. The metric they scale on is demand per replica (requests or
tokens per second); a replica's "target" is a fraction of its capacity (`target_utilization`),
which is what `--tune` sweeps.

Sources of the constants (cited per line):
  [hpa-defaults]  kubernetes pkg/apis/autoscaling/v2/defaults.go
  [hpa-config]    kubernetes pkg/controller/podautoscaler/config/v1alpha1/defaults.go
                  (kube-controller-manager --horizontal-pod-autoscaler-sync-period, -tolerance)
  [hpa-calc]      kubernetes pkg/controller/podautoscaler/replica_calculator.go
  [hpa-ctrl]      kubernetes pkg/controller/podautoscaler/horizontal.go
  [keda-spec]     kedacore/keda apis/keda/v1alpha1/scaledobject_types.go and the ScaledObject
                  spec docs (pollingInterval 30, cooldownPeriod 300, minReplicaCount 0)
  [keda-exec]     kedacore/keda pkg/scaling/executor/scale_scaledobjects.go
  [kpa-config]    knative serving pkg/autoscaler/config/config.go (defaults)
  [kpa-scale]     knative serving pkg/autoscaler/scaling/autoscaler.go (Scale)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from aiscaler.core.planner import replicas_for
from aiscaler.core.scaling import rate_limit, remember, stabilize
from aiscaler.core.types import ScaleMemory, ScalingRules
from aiscaler.sim.engine import Demand, SimConfig

# The demand metric is a Prometheus rate over this window, evaluated at each decision: one
# minute is the shortest window robust at the usual 15 s scrape interval (a modelling choice).
METRIC_WINDOW_S = 60.0

HPA_SYNC_S = 15.0  # --horizontal-pod-autoscaler-sync-period 15s [hpa-config]
HPA_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance 0.1 [hpa-config]
HPA_TARGET_UTILIZATION = 0.8  # DefaultCPUUtilization = 80 [hpa-defaults]
# scaleUp: stabilisation 0, max(4 pods, 100%) per 15 s; scaleDown: stabilisation 300 s
# (--horizontal-pod-autoscaler-downscale-stabilization), 100% per 15 s [hpa-defaults]
HPA_SCALE_UP = ScalingRules(
    stabilization_window_s=0.0, max_replicas=4, max_percent=100.0, period_s=15.0
)
HPA_SCALE_DOWN = ScalingRules(
    stabilization_window_s=300.0, max_replicas=None, max_percent=100.0, period_s=15.0
)

KEDA_POLLING_S = 30.0  # pollingInterval default 30 [keda-spec]
KEDA_COOLDOWN_S = 300.0  # cooldownPeriod default 300 [keda-spec]
# KEDA has no default threshold (the trigger requires one); the default variant uses HPA's 80%.
KEDA_TARGET_UTILIZATION = 0.8

KPA_TICK_S = 2.0  # tick-interval 2s [kpa-config]
KPA_STABLE_WINDOW_S = 60.0  # stable-window 60s [kpa-config]
KPA_PANIC_WINDOW_S = 6.0  # panic-window-percentage 10% of the stable window [kpa-config]
KPA_PANIC_THRESHOLD = 2.0  # panic-threshold-percentage 200 [kpa-config]
KPA_MAX_SCALE_UP_RATE = 1000.0  # max-scale-up-rate 1000 [kpa-config]
KPA_MAX_SCALE_DOWN_RATE = 2.0  # max-scale-down-rate 2 [kpa-config]
KPA_SCALE_TO_ZERO_GRACE_S = 30.0  # scale-to-zero-grace-period 30s [kpa-config]
# target-utilization / container-concurrency-target-percentage 70% of the per-pod target
# [kpa-config]; the per-pod target here is the replica's capacity.
KPA_TARGET_UTILIZATION = 0.7


def hpa_pods_metric_replicas(
    demand: float, ready: int, starting: int, target_per_pod: float, tolerance: float
) -> int | None:
    """HPA replica calculator for a per-pod metric (`calcPlainMetricReplicas` [hpa-calc]).

    Ready pods each report demand / ready; pods still starting report no metric yet and, like
    pending pods, are counted at 0 when scaling up and left out otherwise. None: no pod has a
    metric, the HPA cannot compute anything and keeps the replicas.
    """
    current = ready + starting
    if ready == 0:
        return None
    ratio = demand / (ready * target_per_pod)
    if not (starting > 0 and ratio > 1.0):
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready)
    # Scale up with unready pods: recompute with them at 0 usage.
    new_ratio = demand / (current * target_per_pod)
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    return max(current, math.ceil(new_ratio * current))


def hpa_external_average_value_replicas(
    total: float, current: int, target_per_pod: float, tolerance: float
) -> int:
    """HPA replica calculator for an External metric with an AverageValue target, which is how
    KEDA feeds its triggers (`GetExternalPerPodMetricReplicas` [hpa-calc]): readiness plays no
    part, the total is divided by the target."""
    if current > 0 and abs(1.0 - total / (target_per_pod * current)) <= tolerance:
        return current
    return math.ceil(total / target_per_pod)


@dataclass
class HpaController:
    """The HPA controller's behaviour step (`normalizeDesiredReplicasWithBehaviors` [hpa-ctrl]):
    stabilisation over recorded recommendations, then the rate limits, then min/max."""

    min_replicas: int
    max_replicas: int
    up: ScalingRules = HPA_SCALE_UP
    down: ScalingRules = HPA_SCALE_DOWN
    memory: ScaleMemory = field(default_factory=ScaleMemory)

    def normalize(self, now: float, current: int, desired: int) -> int:
        value, _ = stabilize(current, desired, self.memory, now, self.up, self.down)
        value, _ = rate_limit(current, value, self.memory, now, self.up, self.down)
        value = max(self.min_replicas, min(self.max_replicas, value))
        self.memory = remember(self.memory, now, desired, value - current, self.up, self.down)
        return value


def initial_replicas(demand: Demand, target_per_pod: float, minimum: int) -> int:
    """Replicas at time 0: what the policy's target asks for the first demand sample."""
    return max(minimum, math.ceil(demand.mean_rate(0.0, 0.0) / target_per_pod))


@dataclass
class Hpa:
    """Kubernetes HPA v2 on a per-pod demand metric (Pods metric, AverageValue target)."""

    target_utilization: float = HPA_TARGET_UTILIZATION
    min_replicas: int = 1  # HPA minReplicas default 1 [hpa-defaults]
    period_s: float = HPA_SYNC_S

    def start(self, demand: Demand, config: SimConfig) -> int:
        self._demand = demand
        self._target = self.target_utilization * config.capacity
        self._ctrl = HpaController(self.min_replicas, config.max_replicas)
        return initial_replicas(demand, self._target, self.min_replicas)

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int:
        if replicas == 0:  # the HPA does not act on a target scaled to zero [hpa-ctrl]
            return 0
        rate = self._demand.mean_rate(now, METRIC_WINDOW_S)
        desired = hpa_pods_metric_replicas(
            rate, ready, replicas - ready, self._target, HPA_TOLERANCE
        )
        if desired is None:
            return replicas
        return self._ctrl.normalize(now, replicas, desired)


@dataclass
class Keda:
    """KEDA ScaledObject: the trigger value (demand) as an External AverageValue metric through
    an HPA with minReplicas 1; KEDA itself activates 0 -> 1 when the trigger is active at a
    polling and deactivates to minReplicaCount 0 after the cooldown without activity
    [keda-exec]."""

    target_utilization: float = KEDA_TARGET_UTILIZATION
    min_replicas: int = 0  # minReplicaCount default 0 [keda-spec]
    polling_s: float = KEDA_POLLING_S
    cooldown_s: float = KEDA_COOLDOWN_S
    period_s: float = HPA_SYNC_S  # the HPA's own sync drives scaling between 1 and max

    def start(self, demand: Demand, config: SimConfig) -> int:
        self._demand = demand
        self._target = self.target_utilization * config.capacity
        self._ctrl = HpaController(max(1, self.min_replicas), config.max_replicas)
        self._last_active = 0.0
        return initial_replicas(demand, self._target, self.min_replicas)

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int:
        rate = self._demand.mean_rate(now, METRIC_WINDOW_S)
        if now % self.polling_s < self.period_s:  # a KEDA polling instant
            # activationThreshold defaults to 0: any demand makes the trigger active.
            if rate > 0:
                self._last_active = now
                if replicas == 0:
                    return 1
            elif replicas > 0 and now - self._last_active >= self.cooldown_s:
                return self.min_replicas
        if replicas == 0:
            return 0
        desired = hpa_external_average_value_replicas(rate, replicas, self._target, HPA_TOLERANCE)
        return self._ctrl.normalize(now, replicas, desired)


@dataclass
class KpaState:
    panic_since: float | None = None  # last time the panic threshold was crossed
    max_panic_pods: int = 0
    inactive_since: float | None = None  # when the desired scale first became 0


def kpa_desired(
    stable_rate: float,
    panic_rate: float,
    ready: int,
    target: float,
    now: float,
    state: KpaState,
) -> int:
    """Knative's KPA `Scale` [kpa-scale]: stable/panic desired pod counts bounded by the scale
    rates relative to ready pods; panic mode (entered when the panic count reaches 200% of the
    ready pods) never scales down and lasts a stable window after the last crossing."""
    ready_count = max(1.0, float(ready))
    max_up = math.ceil(KPA_MAX_SCALE_UP_RATE * ready_count)
    max_down = math.floor(ready_count / KPA_MAX_SCALE_DOWN_RATE)
    dspc = math.ceil(stable_rate / target)
    dppc = math.ceil(panic_rate / target)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    over = dppc / ready_count >= KPA_PANIC_THRESHOLD
    if over:
        state.panic_since = now
    elif state.panic_since is not None and now > state.panic_since + KPA_STABLE_WINDOW_S:
        state.panic_since, state.max_panic_pods = None, 0
    if state.panic_since is None:
        return stable_pods
    state.max_panic_pods = max(state.max_panic_pods, panic_pods)
    return state.max_panic_pods


@dataclass
class Kpa:
    """Knative Pod Autoscaler on requests per second, with scale to zero."""

    target_utilization: float = KPA_TARGET_UTILIZATION
    min_replicas: int = 0  # min-scale 0, enable-scale-to-zero true [kpa-config]
    period_s: float = KPA_TICK_S

    def start(self, demand: Demand, config: SimConfig) -> int:
        self._demand = demand
        self._target = self.target_utilization * config.capacity
        self._max = config.max_replicas
        self._state = KpaState()
        return initial_replicas(demand, self._target, self.min_replicas)

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int:
        stable = self._demand.mean_rate(now, KPA_STABLE_WINDOW_S)
        panic = self._demand.mean_rate(now, KPA_PANIC_WINDOW_S)
        desired = kpa_desired(stable, panic, ready, self._target, now, self._state)
        if desired > 0 or replicas == 0:
            self._state.inactive_since = None
            return max(self.min_replicas, min(self._max, desired))
        # Scale to zero only after the grace period with nothing to serve.
        if self._state.inactive_since is None:
            self._state.inactive_since = now
        if now - self._state.inactive_since >= KPA_SCALE_TO_ZERO_GRACE_S:
            return self.min_replicas
        return replicas


@dataclass
class Static:
    """Fixed replicas sized from the whole trace (capacity planning with hindsight): the peak
    demand, or its 99th percentile."""

    quantile: float = 1.0
    period_s: float = 3600.0  # it never changes its mind; a long period keeps the loop short

    def start(self, demand: Demand, config: SimConfig) -> int:
        level = float(np.quantile(demand.rate, self.quantile))
        self._replicas = max(1, replicas_for(level, config.capacity))
        return self._replicas

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int:
        return self._replicas
