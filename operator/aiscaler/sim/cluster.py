"""Pods of the simulated service: scale-ups that wait the cold start (and a node when the pool has
no free GPU), scale-downs that drain, and the GPU time they are billed (compiled with numba).

- A scale-up's pod is ready a cold start after the request, plus the node provisioning time when
  the pool has no free GPU for it; the pool keeps `free_gpus` spare GPUs and drops nodes that
  stay idle for `node_idle_s` (cluster-autoscaler's scale-down-unneeded-time).
- A scale-down removes starting pods first, newest first, then the most recently ready (as the
  ReplicaSet controller ranks pods for deletion). A removed pod takes no new request and is
  billed until its in-flight requests finish.
- GPU time is billed from the scale-up request to termination, split at the tune/evaluate
  boundary. Pods running at time 0 were requested a cold start earlier, like every warm-up.
"""

from __future__ import annotations

import math

import numba

from aiscaler.sim.state import KERNEL_EXACT, PART_EVALUATE, PART_TUNE, Run

EULER_GAMMA = 0.5772156649015329


@numba.njit(cache=True)
def part_of(run: Run, t: float) -> int:
    return PART_TUNE if t < run.p[0].split_s else PART_EVALUATE


@numba.njit(cache=True)
def bill(run: Run, start: float, stop: float) -> None:
    """GPU-seconds of [start, stop) into the parts they fall in (nothing after the trace)."""
    p = run.p[0]
    stop = min(stop, p.end_s)
    gpus = p.gpus_per_replica
    tune = max(0.0, min(stop, p.split_s) - start)
    run.gpu_s[PART_TUNE] += tune * gpus
    run.gpu_s[PART_EVALUATE] += max(0.0, stop - max(start, p.split_s)) * gpus


@numba.njit(cache=True)
def refresh_ready(run: Run, t: float) -> None:
    """Count the pods ready at `t` once a starting one's time has come."""
    s = run.s[0]
    if t < s.next_ready_s:
        return
    ready = 0
    upcoming = math.inf
    for i in range(run.pod_alive.size):
        if run.pod_alive[i]:
            if run.pod_ready[i] <= t:
                ready += 1
            elif run.pod_ready[i] < upcoming:
                upcoming = run.pod_ready[i]
    s.ready = ready
    s.next_ready_s = upcoming


@numba.njit(cache=True)
def ready_at(run: Run, t: float) -> int:
    """Live pods ready at `t` (a scan: for the windows' records)."""
    ready = 0
    for i in range(run.pod_alive.size):
        if run.pod_alive[i] and run.pod_ready[i] <= t:
            ready += 1
    return ready


@numba.njit(cache=True)
def add_pod(run: Run, now: float, initial: bool) -> None:
    """A scale-up at `now`: ready a cold start later, plus the node provisioning time when the pool
    has no free GPU for it. An `initial` pod runs at time 0 (requested a cold start before, on
    nodes that exist)."""
    s, p = run.s[0], run.p[0]
    gpus = p.gpus_per_replica
    if initial:
        s.pool_gpus += gpus
        new_pod(run, now - p.cold_start_s, now)
        return
    ready = now + p.cold_start_s
    if s.pool_gpus - s.allocated_gpus < gpus:
        s.pool_gpus += gpus
        ready += p.node_provision_s
    run.cold_starts[part_of(run, now)] += 1
    new_pod(run, now, ready)


@numba.njit(cache=True)
def new_pod(run: Run, requested: float, ready: float) -> int:
    """Record a pod (its GPUs allocated from the pool) and its slots; returns its index."""
    s, p = run.s[0], run.p[0]
    index = 0
    while index < run.pod_alive.size and run.pod_alive[index]:
        index += 1
    if index == run.pod_alive.size:  # the callers keep to max_replicas; never write past it
        raise ValueError("more live pods than max_replicas")
    s.allocated_gpus += p.gpus_per_replica
    run.pod_alive[index] = True
    run.pod_requested[index] = requested
    run.pod_ready[index] = ready
    run.pod_done[index] = ready
    s.pods += 1
    if ready <= s.now:
        s.ready += 1
    elif ready < s.next_ready_s:
        s.next_ready_s = ready
    if p.kernel == KERNEL_EXACT:
        for _ in range(p.slots):
            heap_push(run, ready, index)
    return index


@numba.njit(cache=True)
def remove_pod(run: Run, now: float) -> None:
    """Remove the pod the ReplicaSet controller would: a starting one (newest first), else the
    most recently ready."""
    victim = -1
    starting = False
    for i in range(run.pod_alive.size):
        if not run.pod_alive[i]:
            continue
        if run.pod_ready[i] > now:
            if not starting or run.pod_requested[i] > run.pod_requested[victim]:
                victim, starting = i, True
        elif not starting and (victim < 0 or run.pod_ready[i] > run.pod_ready[victim]):
            victim = i
    remove_pod_at(run, now, victim)


@numba.njit(cache=True)
def remove_pod_at(run: Run, now: float, index: int) -> None:
    """Pod `index` takes no new request from `now` and is billed until its requests finish."""
    s, p = run.s[0], run.p[0]
    until = now
    if run.pod_ready[index] <= now:
        if p.kernel == KERNEL_EXACT:
            until = max(now, run.pod_done[index])
        else:
            until = now + _drain_share(run)
        s.ready -= 1
    bill(run, run.pod_requested[index], until)
    run.pod_alive[index] = False
    s.pods -= 1
    s.allocated_gpus -= p.gpus_per_replica
    if p.kernel == KERNEL_EXACT:
        heap_drop_pod(run, index)


@numba.njit(cache=True)
def _drain_share(run: Run) -> float:
    """Approx kernel: move a ready pod's share of the requests in service to the draining ones;
    return how long its last one takes: the mean of the largest of b exponential residual
    times, H_b / mu."""
    s, p = run.s[0], run.p[0]
    slots = p.slots * s.ready
    busy = min(s.queue, float(slots))
    share = busy / s.ready
    s.queue -= share
    s.draining += share
    if share < 1.0:
        return share / p.service_rate
    return (math.log(share) + EULER_GAMMA + 0.5 / share) / p.service_rate


@numba.njit(cache=True)
def scale_to(run: Run, now: float, desired: int) -> None:
    """Apply a policy's decision at `now` (clamped to [0, max_replicas])."""
    s, p = run.s[0], run.p[0]
    refresh_ready(run, now)
    desired = max(0, min(p.max_replicas, desired))
    if desired != s.pods:
        run.scale_events[part_of(run, now)] += 1
    while s.pods < desired:
        add_pod(run, now, False)
    while s.pods > desired:
        remove_pod(run, now)
    # Nodes that stay idle beyond the spare GPUs are removed after node_idle_s.
    if s.pool_gpus > s.allocated_gpus + p.free_gpus:
        if math.isnan(s.excess_since):
            s.excess_since = now
        elif now - s.excess_since >= p.node_idle_s:
            s.pool_gpus = s.allocated_gpus + p.free_gpus
            s.excess_since = math.nan
    else:
        s.excess_since = math.nan


@numba.njit(cache=True)
def start_with(run: Run, replicas: int) -> None:
    """The policy's replicas at time 0, ready and warm."""
    for _ in range(max(0, min(run.p[0].max_replicas, replicas))):
        add_pod(run, 0.0, True)


@numba.njit(cache=True)
def bill_live_pods(run: Run) -> None:
    """At the end of the trace: the pods still there are billed up to it."""
    end = run.p[0].end_s
    for i in range(run.pod_alive.size):
        if run.pod_alive[i]:
            bill(run, run.pod_requested[i], end)


# The exact kernel's slots: a binary min-heap of (time the slot is free, pod).


@numba.njit(cache=True)
def heap_push(run: Run, free: float, pod: int) -> None:
    s = run.s[0]
    i = s.heap_size
    s.heap_size += 1
    while i > 0:
        parent = (i - 1) >> 1
        if run.heap_free[parent] <= free:
            break
        run.heap_free[i] = run.heap_free[parent]
        run.heap_pod[i] = run.heap_pod[parent]
        i = parent
    run.heap_free[i] = free
    run.heap_pod[i] = pod


@numba.njit(cache=True)
def heap_replace_top(run: Run, free: float) -> None:
    """The earliest slot takes a request and is next free at `free`."""
    pod = run.heap_pod[0]
    _sift_down(run, 0, free, pod)


@numba.njit(cache=True)
def _sift_down(run: Run, i: int, free: float, pod: int) -> None:
    n = run.s[0].heap_size
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and run.heap_free[child + 1] < run.heap_free[child]:
            child += 1
        if run.heap_free[child] >= free:
            break
        run.heap_free[i] = run.heap_free[child]
        run.heap_pod[i] = run.heap_pod[child]
        i = child
    run.heap_free[i] = free
    run.heap_pod[i] = pod


@numba.njit(cache=True)
def heap_drop_pod(run: Run, pod: int) -> None:
    """Remove a pod's slots and restore the heap (a removal is rare next to requests)."""
    s = run.s[0]
    kept = 0
    for i in range(s.heap_size):
        if run.heap_pod[i] != pod:
            run.heap_free[kept] = run.heap_free[i]
            run.heap_pod[kept] = run.heap_pod[i]
            kept += 1
    s.heap_size = kept
    for i in range(kept // 2 - 1, -1, -1):
        _sift_down(run, i, run.heap_free[i], run.heap_pod[i])
