"""The cluster simulator: replay a demand series against a policy's replica decisions.

Two halves, so any replica schedule (a policy's, the oracle's, a fixed one) is measured the same
way:

* `run_policy` steps through the policy's decision times (its own period) with only the past
  visible, starts and stops pods (cold start, node provisioning when the pool has no free GPU)
  and returns the pods' lifetimes;
* `evaluate` turns pod lifetimes into ready capacity per simulator step, pushes the demand
  through a FIFO fluid queue (vectorised) and measures GPU-hours and SLO attainment.

Time 0 is the start of the trace. Pods running at time 0 were requested a cold start earlier
(billed, like every other warm-up), so every policy, the oracle included, pays the same start.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MAX_STEP_S = 10.0  # BENCHMARK.md: simulator steps of at most 10 s
SAMPLES_PER_STEP = 4  # arrival instants per step at which the queueing delay is measured
WORST_WINDOW_S = 300.0  # worst_5min_attainment


@dataclass(frozen=True)
class SimConfig:
    capacity: float  # units/s one replica serves
    cold_start_s: float = 120.0
    gpus_per_replica: int = 1
    slo_delay_s: float = 2.0  # a unit meets the SLO when its queueing delay is within this
    slo_attainment: float = 0.99
    # A scale-up that finds no free GPU in the pool waits this long for a node first. 0 = nodes
    # are always there (the default: it isolates the cold start).
    node_provision_s: float = 0.0
    free_gpus: int = 0  # spare GPUs the pool keeps on warm nodes beyond those allocated
    # cluster-autoscaler --scale-down-unneeded-time default (10m): an empty node goes after this.
    node_idle_s: float = 600.0
    drain_s: float = 0.0  # a removed ready pod stays billed this long while it drains
    max_replicas: int = 10_000

    def __post_init__(self) -> None:
        if not (self.capacity > 0 and math.isfinite(self.capacity)):
            raise ValueError(f"capacity must be a positive number, got {self.capacity}")
        if self.cold_start_s < 0 or self.node_provision_s < 0 or self.drain_s < 0:
            raise ValueError("cold start, node provisioning and drain times must be >= 0")
        if self.gpus_per_replica < 1:
            raise ValueError(f"gpus_per_replica must be >= 1, got {self.gpus_per_replica}")
        if not self.slo_delay_s > 0:
            raise ValueError(f"slo_delay_s must be positive, got {self.slo_delay_s}")
        if not 0 < self.slo_attainment < 1:
            raise ValueError(f"slo_attainment must be in (0, 1), got {self.slo_attainment}")


def step_for_bin(bin_s: float) -> float:
    """The largest step of at most 10 s that divides the trace's bin."""
    return bin_s / math.ceil(bin_s / MAX_STEP_S - 1e-9)


class Demand:
    """Demand rate per simulator step (uniform inside each trace bin), with O(1) window means."""

    def __init__(self, rate_per_bin: FloatArray, bin_s: float) -> None:
        self.dt = step_for_bin(bin_s)
        per_bin = round(bin_s / self.dt)
        self.rate: FloatArray = np.repeat(np.asarray(rate_per_bin, dtype=np.float64), per_bin)
        self.n = len(self.rate)
        self.duration_s = self.n * self.dt
        cum = np.concatenate([[0.0], np.cumsum(self.rate * self.dt)])
        self._rate_list: list[float] = self.rate.tolist()
        self._cum_list: list[float] = cum.tolist()

    def arrived(self, t: float) -> float:
        """Units that arrived in [0, t]."""
        i = int(t / self.dt)
        if i >= self.n:
            return self._cum_list[self.n]
        return self._cum_list[i] + self._rate_list[i] * (t - i * self.dt)

    def mean_rate(self, now: float, window_s: float) -> float:
        """Mean arrival rate over the window ending at `now` (only the past)."""
        start = max(0.0, now - window_s)
        if now <= start:
            return self._rate_list[min(int(now / self.dt), self.n - 1)]
        return (self.arrived(now) - self.arrived(start)) / (now - start)


class Policy(Protocol):
    """A replica policy. `start` resets it for a run and returns the replicas at time 0;
    `decide` is called every `period_s` with the state of the service (replicas, of which
    ready, free GPUs in the pool) and returns the replica count wanted now."""

    period_s: float

    def start(self, demand: Demand, config: SimConfig) -> int: ...

    def decide(self, now: float, replicas: int, ready: int, free_gpus: int) -> int: ...


class Pod(NamedTuple):
    requested_s: float
    ready_s: float  # may lie after serving_until_s: stopped before it was ready
    serving_until_s: float
    billed_until_s: float


@dataclass(frozen=True)
class Schedule:
    pods: list[Pod]
    scale_events: int  # decisions that changed the replica count


def run_policy(policy: Policy, demand: Demand, config: SimConfig) -> Schedule:
    """Step the policy through the trace; scale-ups wait the cold start (+ node provisioning when
    the pool has no free GPU); scale-downs remove not-ready pods first, newest first (as the
    ReplicaSet controller ranks pods for deletion), then the most recently ready."""
    end = demand.duration_s
    cold, gpus = config.cold_start_s, config.gpus_per_replica
    n0 = max(0, min(config.max_replicas, policy.start(demand, config)))
    ready: list[tuple[float, float]] = [(-cold, 0.0)] * n0  # (requested, ready) per pod
    starting: list[tuple[float, float]] = []  # (ready, requested), sorted by ready time
    done: list[Pod] = []
    allocated = n0 * gpus
    pool = allocated + config.free_gpus  # GPUs on nodes that exist or are being provisioned
    excess_since: float | None = None
    events = 0
    k = 0
    now = 0.0
    while now < end:
        due = bisect.bisect_right(starting, (now, math.inf))
        if due:
            ready.extend((req, rdy) for rdy, req in starting[:due])
            del starting[:due]
        replicas = len(ready) + len(starting)
        desired = policy.decide(now, replicas, len(ready), pool - allocated)
        desired = max(0, min(config.max_replicas, desired))
        if desired != replicas:
            events += 1
        for _ in range(desired - replicas):
            if pool - allocated >= gpus:
                bisect.insort(starting, (now + cold, now))
            else:
                pool += gpus
                bisect.insort(starting, (now + config.node_provision_s + cold, now))
            allocated += gpus
        for _ in range(replicas - desired):
            if starting:
                rdy, req = starting.pop()
                done.append(Pod(req, rdy, now, now))
            else:
                req, rdy = ready.pop()
                done.append(Pod(req, rdy, now, now + config.drain_s))
            allocated -= gpus
        if pool > allocated + config.free_gpus:
            if excess_since is None:
                excess_since = now
            elif now - excess_since >= config.node_idle_s:
                pool, excess_since = allocated + config.free_gpus, None
        else:
            excess_since = None
        k += 1
        now = k * policy.period_s
    done.extend(Pod(req, rdy, end, end) for req, rdy in ready)
    done.extend(Pod(req, rdy, end, end) for rdy, req in starting)
    return Schedule(done, events)


@dataclass(frozen=True)
class Outcome:
    gpu_hours: float
    slo_attainment: float  # fraction of demand served within the delay target
    p99_delay_s: float  # capped at the trace duration (work never served)
    worst_5min_attainment: float
    scale_events: int
    cold_starts: int  # pods started after time 0
    ready_replicas: FloatArray  # mean ready replicas per step, for plots


def ready_per_step(pods: list[Pod], dt: float, n: int) -> FloatArray:
    """Mean number of ready pods in each step (exact for pods ready mid-step)."""
    if not pods:
        return np.zeros(n)
    arr = np.array(pods, dtype=np.float64)
    end = n * dt
    starts = np.clip(arr[:, 1], 0.0, end)
    stops = np.clip(arr[:, 2], 0.0, end)
    keep = stops > starts
    times = np.concatenate([starts[keep], stops[keep]])
    signs = np.concatenate([np.ones(keep.sum()), -np.ones(keep.sum())])
    idx = np.floor(times / dt).astype(np.int64)
    whole = np.zeros(n + 2)
    part = np.zeros(n + 2)
    np.add.at(whole, idx + 1, signs)  # counts from the step after the event on
    np.add.at(part, idx, signs * ((idx + 1) * dt - times) / dt)  # the share of its own step
    return (np.cumsum(whole) + part)[:n]


def evaluate(
    schedule: Schedule, demand: Demand, config: SimConfig, since_s: float = -math.inf
) -> Outcome:
    """Serve the demand with the schedule's ready pods through a FIFO fluid queue and measure.

    With `since_s` only what happens from then on is measured: the demand arriving at or
    after it, the GPU time billed after it, the pods requested after it (the queue it inherits
    still counts). Forecasters are compared on a trace's test part this way: the policy sees the
    whole history, the score covers only the part no checkpoint was trained on. Scale events
    and `ready_replicas` are always those of the whole run."""
    dt, n = demand.dt, demand.n
    level = ready_per_step(schedule.pods, dt, n)
    arrivals = demand.rate * dt
    served_max = level * config.capacity * dt
    queue = fluid_queue(arrivals - served_max)
    arrived = np.concatenate([[0.0], np.cumsum(arrivals)])
    departed = arrived - np.concatenate([[0.0], queue])
    departed = np.maximum.accumulate(departed)  # guard rounding: departures never go back

    # A unit arriving at fraction f of step i leaves when cumulative departures reach its place
    # in the FIFO order; departures are linear inside a step.
    frac = (np.arange(SAMPLES_PER_STEP) + 0.5) / SAMPLES_PER_STEP
    position = (arrived[:-1, None] + frac[None, :] * arrivals[:, None]).ravel()
    t_arrive = ((np.arange(n)[:, None] + frac[None, :]) * dt).ravel()
    weight = np.repeat(arrivals / SAMPLES_PER_STEP, SAMPLES_PER_STEP)
    tol = 1e-9 * max(1.0, float(arrived[-1]))
    j = np.searchsorted(departed, position - tol, side="left")
    served = j <= n
    jc = np.clip(j, 1, n)
    lo, hi = departed[jc - 1], departed[jc]
    within = np.where(hi > lo, (position - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    t_leave = (jc - 1 + np.clip(within, 0.0, 1.0)) * dt
    delay = np.where(served, t_leave - t_arrive, math.inf)
    delay[delay < 1e-6] = 0.0  # rounding noise of the cumulative sums, not waiting

    hit = delay <= config.slo_delay_s + 1e-9
    measured = t_arrive >= since_s
    weight = np.where(measured, weight, 0.0)
    total = float(weight.sum())
    attainment = float(weight[hit].sum() / total) if total > 0 else 1.0

    window = max(1, round(WORST_WINDOW_S / dt)) * SAMPLES_PER_STEP
    first = int(np.argmax(measured))  # windows start at since_s
    group = np.maximum(0, np.arange(len(weight)) - first) // window
    w_total = np.bincount(group, weights=weight)
    w_hit = np.bincount(group, weights=weight * hit)
    has = w_total > 0
    worst = float(np.min(w_hit[has] / w_total[has])) if has.any() else 1.0

    return Outcome(
        gpu_hours=gpu_hours(schedule.pods, config.gpus_per_replica, since_s),
        slo_attainment=attainment,
        p99_delay_s=weighted_p99(np.minimum(delay, demand.duration_s), weight),
        worst_5min_attainment=worst,
        scale_events=schedule.scale_events,
        cold_starts=sum(1 for p in schedule.pods if p.requested_s >= max(0.0, since_s)),
        ready_replicas=level,
    )


def fluid_queue(net: FloatArray, start: float = 0.0) -> FloatArray:
    """Units waiting at the end of each step of a FIFO fluid queue holding `start` before the
    first, given `net` = arrivals - what the replicas can serve in each step: Lindley's recursion
    q_i = max(0, q_{i-1} + net_i), vectorised on its partial sums."""
    s = np.cumsum(net)
    queue: FloatArray = s - np.minimum(-start, np.minimum.accumulate(s))
    return queue


def gpu_hours(pods: list[Pod], gpus_per_replica: int, since_s: float = -math.inf) -> float:
    """Billing runs from the scale-up request to termination (warm-up and drain are paid); only
    what is billed from `since_s` on counts."""
    billed = sum(max(0.0, p.billed_until_s - max(p.requested_s, since_s)) for p in pods)
    return billed * gpus_per_replica / 3600.0


def weighted_p99(delay: FloatArray, weight: FloatArray) -> float:
    total = float(weight.sum())
    late = delay > 0
    # Most demand waits 0 s; only the delayed part needs sorting.
    if total <= 0 or float(weight[late].sum()) <= 0.01 * total:
        return 0.0
    d, w = delay[late], weight[late]
    order = np.argsort(d)
    cum = np.cumsum(w[order]) + (total - float(w.sum()))
    at = min(int(np.searchsorted(cum, 0.99 * total)), len(d) - 1)
    return float(d[order][at])
