"""Steady-state queueing of one service: how long a request waits for a free slot.

A replica has `slots` request slots (vLLM's concurrent sequences); a request holds one for a
service time of mean slots / capacity with coefficient of variation `cv`, and requests wait in one
FIFO queue in front of every ready slot: an M/G/c queue with c = replicas x slots.

- `erlang_c(c, a)`: the chance an arrival waits in M/M/c at offered load a = arrival rate x mean
  service time (Erlangs), through the Erlang B recursion (stable for any c).
- `wait_exceeds`: P(wait > d). Erlang C times an exponential tail with rate (c - a) x mu, the
  exact M/M/c result; for other service-time variability the tail's mean is scaled by
  (1 + cv^2) / 2, the Allen-Cunneen approximation.
- `replicas_meeting`: the least replicas whose share of requests waiting at most d reaches the
  goal at load a.

Plain loops over floats and ints only, so the simulator can compile the same functions with numba
(one definition for the planner and the benchmark's oracle).
"""

from __future__ import annotations

import math


def erlang_c(servers: int, load: float) -> float:
    """P(an arrival waits) in M/M/c with `servers` servers at offered `load` Erlangs; 1 when the
    queue is unstable (load >= servers), 0 without load."""
    if load <= 0.0:
        return 0.0
    if load >= servers:
        return 1.0
    blocking = 1.0  # Erlang B with 0 servers
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1.0 - blocking))


def wait_exceeds(servers: int, load: float, service_rate: float, cv: float, delay: float) -> float:
    """P(queueing delay > `delay` s) at steady state; `service_rate` = 1 / mean service time of
    one slot."""
    if load >= servers:
        return 1.0
    waits = erlang_c(servers, load)
    decay = (servers - load) * service_rate * 2.0 / (1.0 + cv * cv)
    return waits * math.exp(-decay * delay)


def replicas_meeting(
    load: float, slots: int, service_rate: float, cv: float, delay: float, attainment: float
) -> int:
    """The least replicas whose steady-state share of requests waiting at most `delay` s is at
    least `attainment`, at offered `load` Erlangs (0 without load)."""
    if load <= 0.0:
        return 0
    replicas = max(1, math.ceil(load / slots - 1e-9))
    while wait_exceeds(replicas * slots, load, service_rate, cv, delay) > 1.0 - attainment:
        replicas += 1
    return replicas
