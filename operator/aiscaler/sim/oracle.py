"""The oracle: perfect knowledge of the future, the same cold start and capacity (BENCHMARK.md).

r(t) = ceil(demand(t) / capacity). Replica slot k is busy whenever r(t) >= k; across each idle gap
g between its busy intervals the slot either stays warm (cost g) or stops and restarts (cost D),
whichever is cheaper, and every start is requested D before the slot is needed:
GPU-time = sum_k [busy_k + D + sum_gaps min(g, D)] x gpusPerReplica.

`oracle_schedule` builds exactly those pods so the simulator measures the oracle like any other
policy (its attainment is 1 by construction); `oracle_gpu_hours` is the formula itself.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt

from aiscaler.sim.engine import Pod, Schedule

FloatArray = npt.NDArray[np.float64]


def replicas_needed(rate: FloatArray, capacity: float) -> npt.NDArray[np.int64]:
    """ceil(demand / capacity) per step; demand within 1e-9 of a whole replica does not round up."""
    return np.ceil(rate / capacity - 1e-9).clip(min=0).astype(np.int64)


def busy_intervals(busy: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) step ranges where `busy` is True."""
    edges = np.diff(np.concatenate([[0], busy.astype(np.int8), [0]]))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def oracle_schedule(rate: FloatArray, dt: float, capacity: float, cold_start_s: float) -> Schedule:
    need = replicas_needed(rate, capacity)
    pods: list[Pod] = []
    changes: set[float] = set()
    for k in range(1, int(need.max(initial=0)) + 1):
        kept: list[list[float]] = []  # [ready, stop] per pod of slot k
        for start, end in busy_intervals(need >= k):
            begin, stop = start * dt, end * dt
            if kept and begin - kept[-1][1] <= cold_start_s:
                kept[-1][1] = stop  # the gap costs less warm than a restart
            else:
                kept.append([begin, stop])
        for ready, stop in kept:
            pods.append(Pod(ready - cold_start_s, ready, stop, stop))
            changes.update(t for t in (ready - cold_start_s, stop) if 0 <= t < len(rate) * dt)
    return Schedule(pods, len(changes))


def oracle_gpu_hours(
    rate: FloatArray, dt: float, capacity: float, cold_start_s: float, gpus_per_replica: int
) -> float:
    """The BENCHMARK.md formula, slot by slot."""
    need = replicas_needed(rate, capacity)
    total_s = 0.0
    for k in range(1, int(need.max(initial=0)) + 1):
        intervals = busy_intervals(need >= k)
        busy = sum(end - start for start, end in intervals) * dt
        gaps = [(b[0] - a[1]) * dt for a, b in pairwise(intervals)]
        total_s += busy + cold_start_s + sum(min(g, cold_start_s) for g in gaps)
    return total_s * gpus_per_replica / 3600.0
