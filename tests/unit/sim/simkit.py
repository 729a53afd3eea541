"""Building small simulated runs for the sim tests."""

from __future__ import annotations

import numpy as np

from aiscaler.sim.reactive import reactive_policy, run_reactive
from aiscaler.sim.runs import PART_EVALUATE, Outcome, measure
from aiscaler.sim.state import KERNELS, Run, SimConfig, make_workload, new_run


def run_static(
    rates: np.ndarray, config: SimConfig, replicas: int, kernel: str, seed: int = 0
) -> Run:
    """The trace (requests/s per second) served by a fixed number of replicas."""
    workload = make_workload(rates, config, seed, KERNELS[kernel])
    run = new_run(config, workload, KERNELS[kernel], 0.0)
    run_reactive(run, reactive_policy("static", replicas=replicas), np.zeros(0, dtype=np.int64))
    return run


def outcome(run: Run) -> Outcome:
    return measure(run, PART_EVALUATE)
