"""Would the reactive floor alone have served the demand? Each service's own backtest of it.

The forecast's plan is added on top of the reactive floor, so it can only add replicas: it pays
where demand rises faster than a cold start, and costs GPU-hours where it does not (in the
simulator the floor alone was cheaper on six of 11 traces, bench/RESULTS.md). So every service
answers the question from its own history. Each tick records the floor it decided and scores the
demand now against the replicas the floor alone would have had ready: the fewest it held over the
last cold start (a replica asked for later is not ready yet), each tick holding the highest floor
of the scale-down stabilisation window, within the replica bounds (rate limits aside). The demand
those could not serve, with the SLO margin as the floor plans it, and the demand itself are
summed, both fading with a time constant of a day (`MEMORY_S`: a daily cycle's peak stays in
view).

The planner leaves the forecast's plan out while the floor alone would have served at least the
attainment goal, once 1 / (1 - goal) ticks with demand have been scored (a miss share of
1 - goal cannot be told from fewer): at 99%, 100 ticks, 50 minutes at the default tick. The memory
is the process's: a restarted operator plans with the forecast until it has scored again.
"""

from __future__ import annotations

import math

from aiscaler.core.types import FloorRecord, FloorTick, ServiceSpec

MEMORY_S = 86_400.0


def record_floor(
    record: FloorRecord,
    spec: ServiceSpec,
    now: float,
    floor: int,
    demand: float,
    replica_demand: float,
    tick_s: float,
) -> FloorRecord:
    """The record after the tick at `now` decided `floor` for `demand` (units/s), one replica
    serving `replica_demand` of it (capacity over the SLO margin). A second update at the same
    `now` replaces the first."""
    start = record.before if record.time == now and record.before is not None else record
    window = spec.scale_down.stabilization_window_s
    lead = spec.cold_start_s
    recent = [t.floor for t in start.ticks if now - t.time < window]
    held = min(spec.max_replicas, max(spec.min_replicas, floor, *recent))
    ticks = (*start.ticks, FloorTick(time=now, floor=floor, held=held))
    fade = 1.0 if start.time is None else math.exp(-(now - start.time) / MEMORY_S)
    unserved, total, scored = start.unserved * fade, start.demand * fade, start.scored * fade
    in_force = [t.time for t in ticks if t.time <= now - lead]  # the decision at now - lead
    if in_force and demand > 0:
        ready = min(t.held for t in ticks if t.time >= in_force[-1])
        unserved += max(0.0, demand - ready * replica_demand)
        total += demand
        scored += 1.0
    keep_from = now - max(window, lead + tick_s)
    kept = tuple(t for t in ticks if t.time >= keep_from)
    before = FloorRecord(start.ticks, start.unserved, start.demand, start.scored, start.time)
    return FloorRecord(kept, unserved, total, scored, time=now, before=before)


def floor_attainment(record: FloorRecord) -> float | None:
    """The share of the scored demand the floor alone would have served; None before any."""
    if record.demand <= 0:
        return None
    return 1.0 - record.unserved / record.demand


def floor_suffices(record: FloorRecord, attainment: float) -> bool:
    """Whether the floor alone would have met `attainment`, on enough scored ticks to tell."""
    served = floor_attainment(record)
    return served is not None and record.scored >= 1 / (1 - attainment) and served >= attainment
