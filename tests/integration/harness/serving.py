"""The serving model of the workload emulator: how a service's Ready replicas serve the requests
that arrive, one interval at a time. This is the one place that model lives; the emulator
(harness.emulators) only turns its increments into vLLM's metrics.

It is the simulator's fluid model (`aiscaler.sim.serving.fluid_step`, protocol v2): each Ready
replica has `default_slots(capacity)` slots, a request holds one for slots / capacity seconds on
average, and the requests in the system beyond the busy slots wait, first in, first out.
Requests that start in an interval waited, in FIFO order, from the queue at its start over the
service rate to the queue at its end over it; time to first token is that wait plus the prefill.
A replica that stops being Ready (a scale-down) takes its share of the requests being served
with it and finishes them, as the simulator drains a removed pod; it takes no new one.
When the simulator's serving kernel changes, `Serving.step` is what follows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiscaler.sim.serving import fluid_step
from aiscaler.sim.state import default_slots

PREFILL_S = 0.2  # time to first token of a request that did not wait
DECODE_S = 4.0  # from the first token to the last one: what e2e latency adds to TTFT
WAIT_SAMPLES = 8  # points at which the wait of the requests leaving in an interval is taken


@dataclass(frozen=True)
class Served:
    """What one interval did: gauges at its end, and increments of the counters."""

    running: float  # requests holding a slot, on Ready replicas or draining ones (gauge)
    waiting: float  # requests queued (gauge)
    started: float  # requests that left the queue in the interval
    finished: float  # requests that gave their slot back in the interval (what vLLM counts)
    waits: tuple[tuple[float, float], ...]  # (queueing wait in s, requests) of those started


class Serving:
    """A service's requests in the system, stepped interval by interval. `step` is the serving
    kernel."""

    def __init__(self) -> None:
        self.in_system = 0.0  # requests being served or waiting
        self.queued = 0.0  # of which waiting for a slot, at the end of the last step
        self.ready = 0  # Ready replicas in the last step
        self.draining = 0.0  # requests finishing on replicas that are no longer Ready

    def step(self, arrivals: float, ready: int, capacity: float, interval_s: float) -> Served:
        """Serve `arrivals` requests arriving over `interval_s` seconds with `ready` replicas of
        `capacity` requests/s each."""
        slots = default_slots(capacity)
        per_slot = capacity / slots  # 1 / the mean time a request holds a slot
        busy_slots = float(ready * slots)
        if ready < self.ready:
            serving = min(self.in_system, float(self.ready * slots))
            leaving = serving * (self.ready - ready) / self.ready
            self.in_system -= leaving
            self.draining += leaving
        self.ready = ready
        drained = self.draining * -math.expm1(-per_slot * interval_s)
        self.draining -= drained
        before = self.in_system
        after, busy, _ = fluid_step(before, arrivals / interval_s, per_slot, busy_slots, interval_s)
        self.in_system = after
        # Waiting at the start: as the last step left them (the Ready replicas may have changed).
        queued_before = self.queued
        queued_after = max(0.0, after - busy_slots)
        self.queued = queued_after
        started = max(0.0, queued_before + arrivals - queued_after)
        # What is held at the end: running + waiting = in_system, so arrivals = finished + the
        # change of both gauges, as in a real engine.
        running = min(after, busy_slots) + self.draining
        finished = busy * per_slot + drained
        if started <= 0.0 or ready == 0:
            return Served(running, queued_after, 0.0, finished, ())
        rate = busy_slots * per_slot
        first, last = queued_before / rate, queued_after / rate
        share = started / WAIT_SAMPLES
        waits = tuple(
            (first + (last - first) * (k + 0.5) / WAIT_SAMPLES, share) for k in range(WAIT_SAMPLES)
        )
        return Served(running, queued_after, started, finished, waits)
