"""The reactive autoscalers users would otherwise run, as their real algorithms do it, and the run
loop that drives them (compiled with numba: Knative decides every 2 s, so a month of trace is a
million decisions).

Each sees the service only through `aiscaler.sim.observe` (Prometheus, `scrape_s` stale) and the
replicas and ready pods the API shows. Its metric is the request rate or the concurrency (requests
running + waiting, as vLLM's gauges); its target per replica is a fraction of a replica's
capacity (rate) or of its slots (concurrency). A policy is one `REACTIVE` record: what `--tune`
searches and `--set` fixes are its fields.

Sources of the constants and algorithms (cited per line):
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

import numba
import numpy as np

from aiscaler.sim.cluster import bill_live_pods, scale_to, start_with
from aiscaler.sim.observe import concurrency, last_window, ready_seen, request_rate
from aiscaler.sim.serving import advance, finish
from aiscaler.sim.state import POLICY_MEMORY, Record, Records, Run

HPA, KEDA, KPA, STATIC, SCHEDULE = 0, 1, 2, 3, 4
KINDS = {"hpa": HPA, "keda": KEDA, "kpa": KPA, "static": STATIC, "oracle": SCHEDULE}
RATE, CONCURRENCY = 0, 1
METRICS = {"rate": RATE, "concurrency": CONCURRENCY}

REACTIVE = np.dtype(
    [
        ("kind", np.int64),
        ("metric", np.int64),
        ("target", np.float64),  # per replica, a fraction of its capacity or slots
        ("min_replicas", np.int64),
        ("max_replicas", np.int64),
        ("window_s", np.float64),  # hpa/keda: scale-down stabilisation; kpa: stable window
        ("panic_threshold", np.float64),  # kpa: 2.0 = 200%
        ("period_s", np.float64),
        ("replicas", np.int64),  # at time 0 (static: always)
    ]
)

# The demand metric of HPA and KEDA is a Prometheus rate over this window; one minute is the
# shortest window robust at the usual 15 s scrape interval (a modelling choice).
RATE_WINDOW_S = 60.0
HPA_SYNC_S = 15.0  # --horizontal-pod-autoscaler-sync-period 15s [hpa-config]
HPA_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance 0.1 [hpa-config]
HPA_TARGET = 0.8  # DefaultCPUUtilization = 80 [hpa-defaults]
HPA_DOWN_WINDOW_S = 300.0  # scaleDown stabilizationWindowSeconds 300 [hpa-defaults]
# scaleUp: stabilisation 0, policies max(4 pods, 100%) per 15 s; scaleDown: 100% per 15 s
# [hpa-defaults]
HPA_UP_PODS, HPA_UP_PERCENT, HPA_RATE_PERIOD_S = 4, 100.0, 15.0
KEDA_POLLING_S = 30.0  # pollingInterval default 30 [keda-spec]
KEDA_COOLDOWN_S = 300.0  # cooldownPeriod default 300 [keda-spec]
# KEDA has no default threshold (the trigger requires one); the default variant uses HPA's 80%.
KEDA_TARGET = 0.8
KPA_TICK_S = 2.0  # tick-interval 2s [kpa-config]
KPA_STABLE_WINDOW_S = 60.0  # stable-window 60s [kpa-config]
KPA_PANIC_WINDOW_SHARE = 0.1  # panic-window-percentage 10 [kpa-config]
KPA_PANIC_THRESHOLD = 2.0  # panic-threshold-percentage 200 [kpa-config]
KPA_MAX_SCALE_UP_RATE = 1000.0  # max-scale-up-rate 1000 [kpa-config]
KPA_MAX_SCALE_DOWN_RATE = 2.0  # max-scale-down-rate 2 [kpa-config]
KPA_SCALE_TO_ZERO_GRACE_S = 30.0  # scale-to-zero-grace-period 30s [kpa-config]
# container-concurrency-target-percentage 70 (of containerConcurrency, here the slots); the
# same share of capacity in rps mode [kpa-config]
KPA_TARGET = 0.7


def reactive_policy(kind: str, **knobs: float | int | str) -> Records:
    """A reactive policy's record: its documented defaults, then `knobs` (field names, `metric`
    by name)."""
    defaults: dict[str, dict[str, float | int | str]] = {
        "hpa": {"metric": "rate", "target": HPA_TARGET, "min_replicas": 1,
                "window_s": HPA_DOWN_WINDOW_S, "period_s": HPA_SYNC_S},
        "keda": {"metric": "rate", "target": KEDA_TARGET, "min_replicas": 0,
                 "window_s": HPA_DOWN_WINDOW_S, "period_s": HPA_SYNC_S},
        "kpa": {"metric": "concurrency", "target": KPA_TARGET, "min_replicas": 0,
                "window_s": KPA_STABLE_WINDOW_S, "panic_threshold": KPA_PANIC_THRESHOLD,
                "period_s": KPA_TICK_S},
        "static": {"period_s": 3600.0},
        "oracle": {"period_s": 1.0},
    }  # fmt: skip
    values = {**defaults[kind], **knobs}
    record = np.zeros(1, REACTIVE)
    record[0]["kind"] = KINDS[kind]
    record[0]["max_replicas"] = 1 << 30
    for name, value in values.items():
        if name not in (REACTIVE.names or ()) or name == "kind":
            raise ValueError(f"{kind} has no knob {name!r}")
        record[0][name] = METRICS[str(value)] if name == "metric" else value
    return record


@numba.njit(cache=True)
def run_reactive(run: Run, policy: Records, plan: np.ndarray) -> None:
    """Drive the run from time 0 to the end of the trace with the policy's decisions every
    `period_s`; `plan` is the oracle's replicas per second (empty for the others)."""
    pol = policy[0]
    start_with(run, pol.replicas)
    end = run.p[0].end_s
    k = 0
    t = 0.0
    while t < end:
        advance(run, t)
        scale_to(run, t, decide(run, pol, plan, t))
        k += 1
        t = k * pol.period_s
    advance(run, end)
    finish(run)
    bill_live_pods(run)


@numba.njit(cache=True)
def decide(run: Run, pol: Record, plan: np.ndarray, now: float) -> int:
    if pol.kind == HPA:
        return _hpa(run, pol, now)
    if pol.kind == KEDA:
        return _keda(run, pol, now)
    if pol.kind == KPA:
        return _kpa(run, pol, now)
    if pol.kind == STATIC:
        return pol.replicas
    return plan[min(plan.size - 1, int(now))]


@numba.njit(cache=True)
def _per_replica(run: Run, pol: Record) -> float:
    """The target per replica in the metric's unit."""
    p = run.p[0]
    return pol.target * (p.capacity if pol.metric == RATE else p.slots)


@numba.njit(cache=True)
def _hpa_total(run: Run, pol: Record, now: float) -> float:
    """The metric summed over pods: rate over a minute, or the latest concurrency."""
    if pol.metric == RATE:
        return request_rate(run, now, RATE_WINDOW_S)
    return concurrency(run, now, run.p[0].scrape_s)


@numba.njit(cache=True)
def _hpa(run: Run, pol: Record, now: float) -> int:
    """HPA v2 on a Pods metric with an AverageValue target."""
    current = run.s[0].pods
    if current == 0:  # the HPA does not act on a target scaled to zero [hpa-ctrl]
        return 0
    total = _hpa_total(run, pol, now)
    reporting = ready_seen(run, now)
    if math.isnan(total) or reporting == 0:
        return current  # no pod metrics: the HPA cannot compute and keeps the replicas
    desired = pods_metric_replicas(total, reporting, current, _per_replica(run, pol))
    return normalize(run, pol, now, current, desired, max(1, pol.min_replicas))


@numba.njit(cache=True)
def pods_metric_replicas(total: float, reporting: int, current: int, target: float) -> int:
    """`calcPlainMetricReplicas` [hpa-calc]: the pods that report (ready ones) share the metric;
    pods without a value count at the target on a scale-down and at 0 on a scale-up, and a
    change that would reverse direction or stay within the tolerance keeps the replicas."""
    ratio = total / reporting / target
    missing = max(0, current - reporting)
    if missing == 0:
        if abs(1.0 - ratio) <= HPA_TOLERANCE:
            return current
        return math.ceil(ratio * reporting - 1e-9)
    filled = total + (missing * target if ratio < 1.0 else 0.0)
    new_ratio = filled / current / target
    if (
        abs(1.0 - new_ratio) <= HPA_TOLERANCE
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current
    desired = math.ceil(new_ratio * current - 1e-9)
    if (new_ratio < 1.0 and desired > current) or (new_ratio > 1.0 and desired < current):
        return current
    return desired


@numba.njit(cache=True)
def external_metric_replicas(total: float, current: int, target: float) -> int:
    """`GetExternalPerPodMetricReplicas` [hpa-calc] (how KEDA feeds its triggers): the total over
    the target, readiness plays no part."""
    if current > 0 and abs(1.0 - total / (target * current)) <= HPA_TOLERANCE:
        return current
    return math.ceil(total / target - 1e-9)


@numba.njit(cache=True)
def normalize(run: Run, pol: Record, now: float, current: int, desired: int, low: int) -> int:
    """`normalizeDesiredReplicasWithBehaviors` [hpa-ctrl]: the scale-down stabilisation takes the
    largest recommendation within its window (scale-up's window is 0), then the scale-up limit
    max(period start + 4 pods, 2 x period start) per 15 s (scale-down may remove 100%), then
    min/max."""
    s = run.s[0]
    highest = desired
    for i in range(POLICY_MEMORY):
        if run.rec_time[i] > now - pol.window_s and run.rec_value[i] > highest:
            highest = int(run.rec_value[i])
    value = min(max(current, desired), highest)
    slot = s.records % POLICY_MEMORY
    run.rec_time[slot], run.rec_value[slot] = now, desired
    s.records += 1
    added = 0.0
    for i in range(POLICY_MEMORY):
        if run.event_time[i] > now - HPA_RATE_PERIOD_S and run.event_change[i] > 0:
            added += run.event_change[i]
    start = current - added
    limit = max(start + HPA_UP_PODS, math.ceil(start * (1.0 + HPA_UP_PERCENT / 100.0)))
    value = min(value, max(current, int(limit)))
    value = max(low, min(pol.max_replicas, value))
    if value != current:
        slot = s.events % POLICY_MEMORY
        run.event_time[slot], run.event_change[slot] = now, value - current
        s.events += 1
    return value


@numba.njit(cache=True)
def _keda(run: Run, pol: Record, now: float) -> int:
    """A KEDA ScaledObject: its trigger (the metric's sum) as an External AverageValue metric of
    an HPA with minReplicas max(1, minReplicaCount); KEDA itself activates 0 -> 1 when the
    trigger is active at a polling and deactivates to minReplicaCount after the cooldown without
    activity [keda-exec]. activationThreshold 0: any demand is activity."""
    s = run.s[0]
    current = s.pods
    total = _hpa_total(run, pol, now)
    if math.isnan(total):
        return current
    if now % KEDA_POLLING_S < pol.period_s:
        if total > 0.0:
            s.last_active = now
            if current == 0:
                return max(1, pol.min_replicas)
        elif current > 0 and pol.min_replicas == 0:
            quiet_since = 0.0 if math.isnan(s.last_active) else s.last_active
            if now - quiet_since >= KEDA_COOLDOWN_S:
                return 0
    if current == 0:
        return 0
    desired = external_metric_replicas(total, current, _per_replica(run, pol))
    return normalize(run, pol, now, current, desired, max(1, pol.min_replicas))


@numba.njit(cache=True)
def _kpa(run: Run, pol: Record, now: float) -> int:
    """Knative's KPA on the metric averaged over its stable and panic windows; scale to zero
    after the grace period, and never while requests are running or waiting (the activator
    holds them)."""
    s = run.s[0]
    current = s.pods
    if last_window(run, now) < 0:
        return current
    panic_window = max(run.p[0].scrape_s, KPA_PANIC_WINDOW_SHARE * pol.window_s)
    if pol.metric == RATE:
        stable = request_rate(run, now, pol.window_s)
        panic = request_rate(run, now, panic_window)
    else:
        stable = concurrency(run, now, pol.window_s)
        panic = concurrency(run, now, panic_window)
    desired = kpa_desired(stable, panic, s.ready, _per_replica(run, pol), pol, now, s)
    if desired > 0 or current == 0:
        s.inactive_since = math.nan
        return max(pol.min_replicas, min(pol.max_replicas, desired))
    if concurrency(run, now, run.p[0].scrape_s) > 0.0:
        return current  # requests in flight or queued: no scale to zero
    if math.isnan(s.inactive_since):
        s.inactive_since = now
    if now - s.inactive_since >= KPA_SCALE_TO_ZERO_GRACE_S:
        return pol.min_replicas
    return current


@numba.njit(cache=True)
def kpa_desired(
    stable: float, panic: float, ready: int, target: float, pol: Record, now: float, s: Record
) -> int:
    """Knative's `Scale` [kpa-scale]: stable/panic desired pods bounded by the scale rates
    relative to the ready pods (at least 1); panic mode starts when the panic count reaches the
    threshold times the ready pods, provisions max(stable, panic), never scales down, and ends a
    stable window after the last crossing. `s` holds the panic state between calls."""
    ready_count = max(1.0, float(ready))
    max_up = math.ceil(KPA_MAX_SCALE_UP_RATE * ready_count)
    max_down = math.floor(ready_count / KPA_MAX_SCALE_DOWN_RATE)
    dspc = math.ceil(stable / target - 1e-9)
    dppc = math.ceil(panic / target - 1e-9)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    if dppc / ready_count >= pol.panic_threshold:
        s.panic_since = now
    elif not math.isnan(s.panic_since) and now > s.panic_since + pol.window_s:
        s.panic_since = math.nan
        s.max_panic_pods = 0
    desired = stable_pods
    if not math.isnan(s.panic_since):
        desired = max(desired, panic_pods)
        if desired > s.max_panic_pods:
            s.max_panic_pods = desired
        else:
            desired = s.max_panic_pods
    return desired
