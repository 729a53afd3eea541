"""The oracle (BENCHMARK.md): perfect knowledge of the future rate, the same cold start D.

Per second, the least replicas whose steady-state queue meets the attainment goal at that
moment's load (`aiscaler.core.queueing`: Erlang C, Allen-Cunneen for other service-time
variability). The load is the modified offered load of Feldman, Mandelbaum, Massey and Whitt
(2008): da/dt = rate - a / mean service time, the requests an infinite-server queue would hold;
it equals rate x mean service time wherever the rate changes slowly next to a service time (the
protocol's "steady-state queue at that rate"), and keeps the oracle a lower bound where requests
outlast a trace bin. Then replica slot k is kept warm through an idle gap g when g <= D, or
stopped and restarted otherwise, every start requested D before the slot is needed: GPU-time
= sum_k [busy_k + D + sum_gaps min(g, D)] x gpusPerReplica. Its pods are run through the same
serving kernel as every policy, so its attainment and billing are measured, not assumed. It is a
lower bound in practice, not a policy: it is never tuned.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from aiscaler.core import queueing
from aiscaler.sim.cluster import bill_live_pods, new_pod, part_of, remove_pod_at
from aiscaler.sim.serving import advance, finish
from aiscaler.sim.state import DT, Run, SimConfig


def _compiled(module: types.ModuleType, names: tuple[str, ...]) -> dict[str, Any]:
    """numba-compiled copies of pure functions of `module` that call each other (the module
    itself stays free of numba)."""
    namespace = dict(vars(module))
    for name in names:
        function = getattr(module, name)
        namespace[name] = numba.njit(cache=True)(
            types.FunctionType(function.__code__, namespace, name)
        )
    return {name: namespace[name] for name in names}


_wait_exceeds = _compiled(queueing, ("erlang_c", "wait_exceeds"))["wait_exceeds"]


@numba.njit(cache=True)
def offered_load(rate: np.ndarray, service_s: float) -> np.ndarray:
    """The modified offered load at the end of each second, starting at the steady state of the
    first second's rate."""
    load = np.empty(rate.size)
    decay = math.exp(-DT / service_s)
    a = rate[0] * service_s if rate.size else 0.0
    for i in range(rate.size):
        target = rate[i] * service_s
        a = target + (a - target) * decay
        load[i] = a
    return load


@numba.njit(cache=True)
def needed_replicas(
    load: np.ndarray, slots: int, service_rate: float, cv: float, delay: float, goal: float
) -> np.ndarray:
    """The least replicas meeting the goal at each second's load (monotone in the load: a table
    of the most load each count carries, filled as the peak requires)."""
    need = np.zeros(load.size, dtype=np.int64)
    carries = np.zeros(0)  # carries[n - 1]: most load n replicas serve at the goal
    for i in range(load.size):
        a = load[i]
        if a <= 0.0:
            continue
        n = 1
        while True:
            if n > carries.size:
                grown = np.zeros(max(8, 2 * carries.size))
                grown[: carries.size] = carries
                for m in range(carries.size + 1, grown.size + 1):
                    grown[m - 1] = _most_load(m, slots, service_rate, cv, delay, goal)
                carries = grown
            if carries[n - 1] >= a:
                break
            n += 1
        need[i] = n
    return need


@numba.njit(cache=True)
def _most_load(
    n: int, slots: int, service_rate: float, cv: float, delay: float, goal: float
) -> float:
    servers = n * slots
    lo, hi = 0.0, float(servers)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _wait_exceeds(servers, mid, service_rate, cv, delay) <= 1.0 - goal:
            lo = mid
        else:
            hi = mid
    return lo


def oracle_pods(need: npt.NDArray[np.int64], cold_start_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(requested, stop) of every pod: slot k runs its busy seconds, kept warm across gaps of at
    most D, each start requested D before it is needed."""
    requested: list[float] = []
    stops: list[float] = []
    for k in range(1, int(need.max(initial=0)) + 1):
        busy = need >= k
        edges = np.diff(np.concatenate([[0], busy.astype(np.int8), [0]]))
        starts = np.flatnonzero(edges == 1) * DT
        ends = np.flatnonzero(edges == -1) * DT
        keep = np.concatenate([[True], starts[1:] - ends[:-1] > cold_start_s])
        first = np.flatnonzero(keep)
        last = np.concatenate([first[1:] - 1, [len(starts) - 1]])
        requested.extend((starts[first] - cold_start_s).tolist())
        stops.extend(ends[last].tolist())
    order = np.argsort(requested, kind="stable")
    return np.asarray(requested)[order], np.asarray(stops)[order]


def oracle_need(rates: np.ndarray, config: SimConfig) -> npt.NDArray[np.int64]:
    """Replicas the oracle needs per second of the trace (rates per second)."""
    return needed_replicas(
        offered_load(rates, config.service_s),
        config.slots,
        1.0 / config.service_s,
        config.service_cv,
        config.slo_delay_s,
        config.slo_attainment,
    )


@numba.njit(cache=True)
def run_schedule(run: Run, requested: np.ndarray, stops: np.ndarray) -> None:
    """Serve the trace with exactly these pods (sorted by request time), each ready a cold start
    after its request and removed at its stop."""
    cold = run.p[0].cold_start_s
    end = run.p[0].end_s
    index = np.full(requested.size, -1, dtype=np.int64)
    by_stop = np.argsort(stops)
    next_start, next_stop = 0, 0
    last_change = -math.inf
    while next_start < requested.size or next_stop < stops.size:
        t_start = max(0.0, requested[next_start]) if next_start < requested.size else math.inf
        t_stop = stops[by_stop[next_stop]] if next_stop < stops.size else math.inf
        t = min(t_start, t_stop)
        if t >= end:
            break
        advance(run, math.floor(t))
        if t > last_change and t >= 0.0:  # changes at one instant are one scale event
            run.scale_events[part_of(run, t)] += 1
            last_change = t
        if t_start <= t_stop:
            index[next_start] = new_pod(run, requested[next_start], requested[next_start] + cold)
            if requested[next_start] >= 0.0:
                run.cold_starts[part_of(run, t)] += 1
            next_start += 1
        else:
            remove_pod_at(run, t, index[by_stop[next_stop]])
            next_stop += 1
    advance(run, end)
    finish(run)
    bill_live_pods(run)
