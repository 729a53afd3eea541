"""What one simulated run holds: its configuration, its seeded workload, and its state arrays.

The simulator (BENCHMARK.md protocol v2) runs compiled (numba) over plain arrays. A run is a
`Run` named tuple of arrays; `Run.s[0]` is a record of its scalars and `Run.p[0]` of its fixed
parameters. Every numba function of the simulator takes the `Run` and reads or advances it, so
a closed loop can be driven from compiled code (the reactive baselines) or from Python (the
aiscaler policy, which calls the product's planner) through the same functions.

Time is in seconds from the start of the trace; the serving model steps in whole seconds (`DT`).
Two parts of the run are measured apart: the tune window [0, split) and the evaluation window
[split, end) (`PART_TUNE`, `PART_EVALUATE`); without tuning the split is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from aiscaler.inputs import MAX_REPLICAS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Records = npt.NDArray[Any]  # a structured array: its fields are read as attributes in numba
Record = Any  # one of its records (numba reads and writes its fields as attributes)

DT = 1.0  # serving step, seconds
PART_TUNE, PART_EVALUATE = 0, 1
MEASURE_WINDOW_S = 300.0  # attainment is also measured per 5 minutes (worst_5min_attainment)
HISTORY_WINDOWS = 256  # scrape windows of latency histogram kept for the policies (a ring)
# vLLM's time-to-first-token histogram bucket bounds (vllm/engine/metrics.py,
# `vllm:time_to_first_token_seconds`); the last bucket is +Inf.
TTFT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
# Queueing delays for the p99: bin 0 holds 0 s, then 40 bins a decade from 1 ms, the last bin
# holds what never started.
DELAY_BINS_PER_DECADE = 40
DELAY_MIN_S = 1e-3
DELAY_DECADES = 9
DELAY_BINS = 2 + DELAY_BINS_PER_DECADE * DELAY_DECADES
# vLLM's --max-num-seqs default: the requests one replica runs at once (vllm EngineArgs).
VLLM_SLOTS = 256
# ... but a request holds its slot slots / capacity seconds on average, and an LLM response takes
# seconds to a minute: where a trace's capacity is small (sparse traces), fewer slots keep that
# within a minute (`default_slots`). Requests of hours would make every policy's drains and the
# oracle's staffing meaningless.
MAX_MEAN_SERVICE_S = 60.0
KERNEL_EXACT, KERNEL_APPROX = 0, 1
KERNELS = {"exact": KERNEL_EXACT, "approx": KERNEL_APPROX}
# Above this many requests per run the per-step kernel is used (`kernel="auto"`): the exact one
# costs ~0.1-0.2 us a request (bench/RESULTS.md, serving kernels).
EXACT_MAX_REQUESTS = 2_000_000


@dataclass(frozen=True)
class SimConfig:
    capacity: float  # requests/s one replica serves with every slot busy
    cold_start_s: float = 120.0
    gpus_per_replica: int = 1
    slo_delay_s: float = 2.0  # a request meets the SLO when it waits at most this long
    slo_attainment: float = 0.99
    slots: int = VLLM_SLOTS  # requests one replica serves at once
    service_cv: float = 1.0  # coefficient of variation of a request's service time (gamma)
    scrape_s: float = 15.0  # what policies see is this stale and averaged over it
    queue: str = "stochastic"  # "stochastic" (protocol v2) | "fluid" (no randomness)
    kernel: str = "auto"  # stochastic serving: "exact" per request, "approx" per step, or auto
    # A scale-up that finds no free GPU in the pool waits this long for a node first. 0 = nodes
    # are always there (the default: it isolates the cold start).
    node_provision_s: float = 0.0
    free_gpus: int = 0  # spare GPUs the pool keeps on warm nodes beyond those allocated
    # cluster-autoscaler --scale-down-unneeded-time default (10m): an empty node goes after this.
    node_idle_s: float = 600.0
    max_replicas: int = MAX_REPLICAS  # what any policy, the oracle included, can run at once

    def __post_init__(self) -> None:
        if not (self.capacity > 0 and math.isfinite(self.capacity)):
            raise ValueError(f"capacity must be a positive number, got {self.capacity}")
        if self.cold_start_s < 0 or self.node_provision_s < 0:
            raise ValueError("cold start and node provisioning times must be >= 0")
        if self.gpus_per_replica < 1 or self.slots < 1 or self.max_replicas < 1:
            raise ValueError("gpus_per_replica, slots and max_replicas must be >= 1")
        if not self.slo_delay_s > 0:
            raise ValueError(f"slo_delay_s must be positive, got {self.slo_delay_s}")
        if not 0 < self.slo_attainment < 1:
            raise ValueError(f"slo_attainment must be in (0, 1), got {self.slo_attainment}")
        if not (0 <= self.service_cv <= 10):
            raise ValueError(f"service_cv must be in [0, 10], got {self.service_cv}")
        if not (self.scrape_s >= DT and float(self.scrape_s).is_integer()):
            raise ValueError(
                f"scrape_s must be a whole number of seconds >= 1, got {self.scrape_s}"
            )
        if self.queue not in ("stochastic", "fluid"):
            raise ValueError(f"queue must be stochastic or fluid, got {self.queue!r}")
        if self.kernel not in ("auto", *KERNELS):
            raise ValueError(f"kernel must be auto, exact or approx, got {self.kernel!r}")
        if self.free_gpus < 0:
            raise ValueError(f"free_gpus must be >= 0, got {self.free_gpus}")

    @property
    def service_s(self) -> float:
        """Mean time a request holds its slot."""
        return self.slots / self.capacity


def default_slots(capacity: float) -> int:
    """vLLM's 256 slots per replica, fewer where a request would hold one more than a minute on
    average at this capacity (requests/s per replica); at least 1."""
    return max(1, min(VLLM_SLOTS, math.floor(capacity * MAX_MEAN_SERVICE_S)))


@dataclass(frozen=True)
class Workload:
    """One seed's arrivals: counts per serving step and, for the exact kernel, every request's
    arrival and service time. Common to every policy run with that seed."""

    seed: int
    counts: FloatArray  # arrivals per DT step (a rate x DT without randomness)
    arrival_s: FloatArray  # sorted; empty unless the exact kernel serves it
    service_s: FloatArray

    @property
    def steps(self) -> int:
        return len(self.counts)


def step_rates(rate_per_bin: FloatArray, bin_s: float) -> FloatArray:
    """The demand rate of every DT step (uniform inside each trace bin)."""
    per_bin = round(bin_s / DT)
    if per_bin < 1 or abs(per_bin * DT - bin_s) > 1e-9:
        raise ValueError(f"the trace bin ({bin_s:g} s) must be a whole number of seconds")
    return np.repeat(np.asarray(rate_per_bin, dtype=np.float64), per_bin)


def kernel_for(config: SimConfig, rates: FloatArray) -> int:
    if config.queue == "fluid":
        return KERNEL_APPROX
    if config.kernel != "auto":
        return KERNELS[config.kernel]
    expected = float(rates.sum()) * DT
    return KERNEL_EXACT if expected <= EXACT_MAX_REQUESTS else KERNEL_APPROX


def make_workload(rates: FloatArray, config: SimConfig, seed: int, kernel: int) -> Workload:
    """Poisson arrivals in every step at its rate (none drawn for the fluid queue); for the exact
    kernel, arrival instants uniform inside their step and gamma service times of mean
    slots / capacity and the configured coefficient of variation."""
    if config.queue == "fluid":
        empty = np.zeros(0)
        return Workload(seed, rates * DT, empty, empty)
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rates * DT).astype(np.float64)
    if kernel == KERNEL_APPROX:
        empty = np.zeros(0)
        return Workload(seed, counts, empty, empty)
    steps = np.repeat(np.arange(len(counts), dtype=np.float64), counts.astype(np.int64))
    arrival = np.sort(steps + rng.random(len(steps))) * DT
    mean, cv = config.service_s, config.service_cv
    if cv == 0:
        service = np.full(len(arrival), mean)
    else:
        shape = 1.0 / (cv * cv)
        service = rng.gamma(shape, mean / shape, len(arrival))
    return Workload(seed, counts, arrival, service)


SCALARS = np.dtype(
    [
        ("now", np.float64),  # serving is done up to here
        ("seeded", np.bool_),  # the approx kernel's noise generator is seeded
        ("pods", np.int64),  # live pods (ready or starting)
        ("ready", np.int64),  # of which ready
        ("next_ready_s", np.float64),  # earliest ready time of a starting pod (inf: none)
        ("pool_gpus", np.int64),  # GPUs on nodes that exist or are being provisioned
        ("allocated_gpus", np.int64),
        ("excess_since", np.float64),  # since when the pool has had idle nodes (nan: not)
        ("queue", np.float64),  # approx: requests on ready slots or waiting for one
        ("waiting", np.float64),  # approx: of which waiting, at the end of the last step
        ("draining", np.float64),  # approx: requests finishing on removed pods
        ("started", np.float64),  # approx: requests started so far
        ("arrival_step", np.int64),  # approx: step of the last request started (FIFO lookup)
        ("next_request", np.int64),  # exact: first request not started yet
        ("heap_size", np.int64),  # exact
        ("closed_windows", np.int64),  # scrape windows whose observations are final
        ("windows_arrived", np.float64),  # requests arrived before the first open window
        ("windows_started", np.float64),  # ... started before it
        ("windows_ended", np.float64),  # ... finished before it
        ("records", np.int64),  # reactive policies: recommendations remembered
        ("events", np.int64),  # reactive policies: scale events remembered
        ("panic_since", np.float64),  # kpa: last time over the panic threshold (nan: calm)
        ("max_panic_pods", np.int64),  # kpa
        ("inactive_since", np.float64),  # kpa: when the desired scale became 0 (nan: not)
        ("last_active", np.float64),  # keda: last polling with an active trigger
    ]
)

PARAMETERS = np.dtype(
    [
        ("kernel", np.int64),
        ("noise", np.bool_),  # approx kernel: draw the service noise (False: fluid queue)
        ("seed", np.int64),
        ("slots", np.int64),
        ("capacity", np.float64),
        ("service_rate", np.float64),  # of one slot: capacity / slots
        ("service_cv", np.float64),
        ("slo_delay_s", np.float64),
        ("cold_start_s", np.float64),
        ("node_provision_s", np.float64),
        ("node_idle_s", np.float64),
        ("gpus_per_replica", np.int64),
        ("free_gpus", np.int64),
        ("max_replicas", np.int64),
        ("scrape_s", np.float64),
        ("split_s", np.float64),
        ("end_s", np.float64),
    ]
)


class Run(NamedTuple):
    """Everything one run reads and writes (arrays, so numba functions share it by reference)."""

    p: Records  # PARAMETERS, one record
    s: Records  # SCALARS, one record
    # workload (read-only)
    counts: FloatArray  # arrivals per step
    cum_arrivals: FloatArray  # arrivals before each step (steps + 1)
    arrival_s: FloatArray  # exact kernel
    service_s: FloatArray
    # live pods; an index is reused once its pod is gone
    pod_requested: FloatArray
    pod_ready: FloatArray
    pod_done: FloatArray  # exact: when its last assigned request finishes
    pod_alive: npt.NDArray[np.bool_]
    # exact kernel: one heap entry per slot of a live pod, keyed by when the slot is free
    heap_free: FloatArray
    heap_pod: IntArray
    # per scrape window: what Prometheus shows
    win_arrivals: FloatArray  # requests arrived in it (precomputed from the workload)
    win_arrival_lag: FloatArray  # sum over them of (window end - arrival)
    win_started: FloatArray  # exact: requests started in it, and the same lag sum
    win_start_lag: FloatArray
    win_ended: FloatArray  # exact: requests finished in it, and the lag sum
    win_end_lag: FloatArray
    win_running: FloatArray  # integral of requests in service over the window
    win_waiting: FloatArray  # integral of requests waiting over the window
    win_ready: FloatArray  # ready pods at the window's end
    win_pods: FloatArray  # live pods at the window's end
    ttft: FloatArray  # (HISTORY_WINDOWS, buckets + 1) histogram increments by start window
    ttft_window: IntArray  # the window each ring row holds (-1: none yet)
    # measurement
    measured: FloatArray  # requests arrived per MEASURE_WINDOW_S window
    measured_hit: FloatArray  # of which waited at most slo_delay_s
    delays: FloatArray  # (2 parts, DELAY_BINS) requests by queueing delay, by arrival part
    gpu_s: FloatArray  # (2 parts) GPU-seconds billed
    scale_events: FloatArray  # (2 parts) decisions that changed the replicas
    cold_starts: FloatArray  # (2 parts) pods requested
    # reactive policies' memory: recommendations and scale events (time, value), a ring
    rec_time: FloatArray
    rec_value: FloatArray
    event_time: FloatArray
    event_change: FloatArray


POLICY_MEMORY = 64  # recommendations / scale events a reactive policy remembers (a ring)


def new_run(config: SimConfig, workload: Workload, kernel: int, split_s: float) -> Run:
    """A run at time 0 with no pod: the policy's start adds the initial ones."""
    steps = workload.steps
    end = steps * DT
    scrape = config.scrape_s
    n_windows = math.ceil(end / scrape) + 1
    p = np.zeros(1, PARAMETERS)
    rec = p[0]
    rec["kernel"], rec["noise"], rec["seed"] = kernel, config.queue == "stochastic", workload.seed
    rec["slots"], rec["capacity"] = config.slots, config.capacity
    rec["service_rate"], rec["service_cv"] = 1.0 / config.service_s, config.service_cv
    rec["slo_delay_s"], rec["cold_start_s"] = config.slo_delay_s, config.cold_start_s
    rec["node_provision_s"], rec["node_idle_s"] = config.node_provision_s, config.node_idle_s
    rec["gpus_per_replica"], rec["free_gpus"] = config.gpus_per_replica, config.free_gpus
    rec["max_replicas"], rec["scrape_s"] = config.max_replicas, scrape
    rec["split_s"], rec["end_s"] = split_s, end
    s = np.zeros(1, SCALARS)
    for name in ("next_ready_s",):
        s[0][name] = math.inf
    for name in ("excess_since", "panic_since", "inactive_since", "last_active"):
        s[0][name] = math.nan
    s[0]["pool_gpus"] = config.free_gpus
    counts = workload.counts
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    win_arrivals, win_lag = _window_arrivals(counts, workload.arrival_s, scrape, n_windows, kernel)
    n_measure = math.ceil(end / MEASURE_WINDOW_S) + 1
    measured = np.bincount(
        (np.arange(steps) * DT // MEASURE_WINDOW_S).astype(np.int64),
        weights=counts,
        minlength=n_measure,
    ).astype(np.float64)
    pods = config.max_replicas
    heap = pods * config.slots if kernel == KERNEL_EXACT else 0
    return Run(
        p=p,
        s=s,
        counts=counts,
        cum_arrivals=cum,
        arrival_s=workload.arrival_s,
        service_s=workload.service_s,
        pod_requested=np.zeros(pods),
        pod_ready=np.zeros(pods),
        pod_done=np.zeros(pods),
        pod_alive=np.zeros(pods, dtype=np.bool_),
        heap_free=np.zeros(heap),
        heap_pod=np.zeros(heap, dtype=np.int64),
        win_arrivals=win_arrivals,
        win_arrival_lag=win_lag,
        win_started=np.zeros(n_windows),
        win_start_lag=np.zeros(n_windows),
        win_ended=np.zeros(n_windows),
        win_end_lag=np.zeros(n_windows),
        win_running=np.zeros(n_windows),
        win_waiting=np.zeros(n_windows),
        win_ready=np.zeros(n_windows),
        win_pods=np.zeros(n_windows),
        ttft=np.zeros((HISTORY_WINDOWS, len(TTFT_BUCKETS_S) + 1)),
        ttft_window=np.full(HISTORY_WINDOWS, -1, dtype=np.int64),
        measured=measured,
        measured_hit=np.zeros(n_measure),
        delays=np.zeros((2, DELAY_BINS)),
        gpu_s=np.zeros(2),
        scale_events=np.zeros(2),
        cold_starts=np.zeros(2),
        rec_time=np.full(POLICY_MEMORY, -math.inf),
        rec_value=np.zeros(POLICY_MEMORY),
        event_time=np.full(POLICY_MEMORY, -math.inf),
        event_change=np.zeros(POLICY_MEMORY),
    )


def _window_arrivals(
    counts: FloatArray, arrival_s: FloatArray, scrape: float, n_windows: int, kernel: int
) -> tuple[FloatArray, FloatArray]:
    """Arrivals per scrape window and the sum of (window end - arrival) over them (for the
    integral of the requests present); arrivals inside a step count at its middle unless their
    instants are known."""
    if kernel == KERNEL_EXACT:
        times = arrival_s[arrival_s < len(counts) * DT]
        weights = np.ones(len(times))
    else:
        times = (np.arange(len(counts), dtype=np.float64) + 0.5) * DT
        weights = counts
    window = (times // scrape).astype(np.int64)
    arrived = np.bincount(window, weights=weights, minlength=n_windows)
    lag = np.bincount(
        window, weights=weights * ((window + 1) * scrape - times), minlength=n_windows
    )
    return arrived[:n_windows].astype(np.float64), lag[:n_windows].astype(np.float64)
