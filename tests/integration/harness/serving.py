"""The serving model of the workload emulator: how a service's Ready replicas serve the requests
that arrive, one interval at a time. This is the one place that model lives; the emulator
(harness.emulators) only turns its increments into vLLM's metrics.

It is the simulator's model (`aiscaler.sim.engine`): a FIFO fluid queue served at
ready replicas x capacity per replica, stepped with the simulator's own `fluid_queue`. Requests
that leave in an interval waited, in FIFO order, from the backlog at its start over the service
rate to the backlog at its end over it; time to first token is that wait plus the prefill.
When the simulator's serving kernel changes, `Serving.step` is what follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiscaler.sim.engine import fluid_queue

# vLLM's bucket bounds of vllm:time_to_first_token_seconds (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
PREFILL_S = 0.2  # time to first token of a request that did not wait
DECODE_S = 4.0  # from the first token to the last one: what e2e latency adds to TTFT
WAIT_SAMPLES = 8  # points at which the wait of the requests leaving in an interval is taken


@dataclass(frozen=True)
class Served:
    """What one interval did: gauges at its end, and increments of the counters."""

    running: float  # requests being decoded (gauge)
    waiting: float  # requests queued (gauge)
    completed: float  # requests finished in the interval
    waits: tuple[tuple[float, float], ...]  # (queueing wait in s, requests) of those finished


class Serving:
    """A service's queue, stepped interval by interval. `step` is the serving kernel."""

    def __init__(self) -> None:
        self.backlog = 0.0  # requests waiting

    def step(self, arrivals: float, ready: int, capacity: float, interval_s: float) -> Served:
        """Serve `arrivals` requests arriving over `interval_s` seconds with `ready` replicas of
        `capacity` requests/s each."""
        rate = ready * capacity
        before = self.backlog
        after = float(fluid_queue(np.array([arrivals - rate * interval_s]), start=before)[-1])
        self.backlog = after
        completed = max(0.0, before + arrivals - after)
        if completed <= 0.0:
            return Served(0.0, after, 0.0, ())
        first, last = before / rate, after / rate
        share = completed / WAIT_SAMPLES
        waits = tuple(
            (first + (last - first) * (k + 0.5) / WAIT_SAMPLES, share) for k in range(WAIT_SAMPLES)
        )
        return Served(completed / interval_s * DECODE_S, after, completed, waits)
