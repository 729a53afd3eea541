"""Request-level serving (BENCHMARK.md protocol v2), compiled with numba.

Requests wait in one FIFO queue in front of every slot of the ready pods (`slots` per pod); a
request holds its slot for a service time of mean slots / capacity. A request meets the SLO
when its queueing delay (arrival to start, a time-to-first-token proxy) is at most
`slo_delay_s`. Two kernels serve the same seeded arrivals:

- **exact**, event by event: each request takes the slot that frees first (a heap of slot free
  times), with its own gamma service time. Its cost grows with the number of requests, so it
  serves light traffic.
- **approx**, one step (`DT`) at a time, for heavy traffic: the number of requests on ready slots
  or waiting, Q, follows the fluid model dQ/dt = arrivals - mu x min(Q, c) inside the step
  (solved exactly; c = slots of the ready pods, mu = 1 / mean service time), then takes the
  randomness of service completions: a normal draw with the variance of the departures over the
  step, mu x busy x cv^2 x DT when every slot is busy (the diffusion of many-server heavy
  traffic) and the exact Ornstein-Uhlenbeck share below. The arrivals' own randomness is in the
  seeded Poisson counts. FIFO delays come from matching the cumulative arrival and start
  curves (linear inside a step). Validated against the exact kernel in bench/serving_bench.py.
  Without randomness (arrival counts at the rate, no draw) it is the fluid queue (`--queue
  fluid`).

Both record what Prometheus would show per scrape window (arrivals, the running and waiting
requests' integrals, the TTFT histogram, ready pods) and what the benchmark measures (per
arrival: met the SLO or not, and its delay, by 5-minute window and tune/evaluate part).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from aiscaler.sim.cluster import heap_replace_top, part_of, ready_at, refresh_ready
from aiscaler.sim.state import (
    DELAY_BINS,
    DELAY_BINS_PER_DECADE,
    DELAY_DECADES,
    DELAY_MIN_S,
    DT,
    HISTORY_WINDOWS,
    KERNEL_EXACT,
    MEASURE_WINDOW_S,
    TTFT_BUCKETS_S,
    Run,
)

_TTFT_BOUNDS = np.array(TTFT_BUCKETS_S)


@numba.njit(cache=True)
def advance(run: Run, t_to: float) -> None:
    """Serve every request up to `t_to` with the pods as they are, and close the scrape windows
    that end by then."""
    s = run.s[0]
    if not s.seeded:  # the service noise of a seed is the same for every policy
        np.random.seed(run.p[0].seed)
        s.seeded = True
    if run.p[0].kernel == KERNEL_EXACT:
        _advance_exact(run, t_to)
    else:
        _advance_approx(run, t_to)
    run.s[0].now = max(run.s[0].now, t_to)
    _close_windows(run, t_to)


@numba.njit(cache=True)
def finish(run: Run) -> None:
    """At the end of the trace: requests that never started count as misses (the largest delay
    bin)."""
    s, p = run.s[0], run.p[0]
    if p.kernel == KERNEL_EXACT:
        for n in range(s.next_request, run.arrival_s.size):
            run.delays[part_of(run, run.arrival_s[n]), DELAY_BINS - 1] += 1.0
        return
    total = run.cum_arrivals[-1]
    if total - s.started <= 1e-9:
        return
    t = _arrival_time(run, s.started, True)
    while s.started < total - 1e-9:  # per arrival step, in FIFO order
        step = min(run.counts.size - 1, int(t / DT))
        upto = run.cum_arrivals[step + 1]
        run.delays[part_of(run, t), DELAY_BINS - 1] += upto - s.started
        s.started = upto
        t = (step + 1) * DT


# --- exact kernel -------------------------------------------------------------------------


@numba.njit(cache=True)
def _advance_exact(run: Run, t_to: float) -> None:
    """FIFO: a request starts when it has arrived and a slot is free; starts are final only
    before `t_to` (a pod could still be removed at the decision there)."""
    s = run.s[0]
    n_requests = run.arrival_s.size
    while s.next_request < n_requests and s.heap_size > 0:
        n = s.next_request
        arrival = run.arrival_s[n]
        if arrival >= t_to:
            break
        start = max(arrival, run.heap_free[0])
        if start >= t_to:
            break
        end = start + run.service_s[n]
        pod = run.heap_pod[0]
        if end > run.pod_done[pod]:
            run.pod_done[pod] = end
        heap_replace_top(run, end)
        _record_exact(run, arrival, start, end)
        s.next_request = n + 1


@numba.njit(cache=True)
def _record_exact(run: Run, arrival: float, start: float, end: float) -> None:
    scrape = run.p[0].scrape_s
    w = int(start / scrape)
    if w < run.win_started.size:
        run.win_started[w] += 1.0
        run.win_start_lag[w] += (w + 1) * scrape - start
    e = int(end / scrape)
    if e < run.win_ended.size:
        run.win_ended[e] += 1.0
        run.win_end_lag[e] += (e + 1) * scrape - end
    delay = start - arrival
    _ttft_row(run, w)[_ttft_bucket(delay)] += 1.0
    _measure(run, arrival, 1.0 if delay <= run.p[0].slo_delay_s else 0.0)
    run.delays[part_of(run, arrival), _delay_bin(delay)] += 1.0


# --- approx kernel ------------------------------------------------------------------------


@numba.njit(cache=True)
def _advance_approx(run: Run, t_to: float) -> None:
    s, p = run.s[0], run.p[0]
    mu, slots, cv2 = p.service_rate, p.slots, p.service_cv * p.service_cv
    scrape = p.scrape_s
    first = round(s.now / DT)
    last = min(run.counts.size, round(t_to / DT))
    for i in range(first, last):
        t = i * DT
        refresh_ready(run, t)
        c = float(slots * s.ready)
        arrived = run.counts[i]
        waiting0 = s.waiting  # as the last step left it (with the slots then ready)
        q1, busy, waiting = fluid_step(s.queue, arrived / DT, mu, c, DT)
        if p.noise:
            draw = np.random.standard_normal()  # every step, so seeds stay aligned
            if q1 > c:
                variance = c * mu * DT * cv2
            else:
                variance = busy / DT * (1.0 - math.exp(-2.0 * mu * DT)) / 2.0
            q1 = max(0.0, q1 + math.sqrt(variance) * draw)
        waiting1 = max(0.0, q1 - c)
        if waiting1 > waiting0 + arrived:  # more waiting than arrived: none started
            waiting1 = waiting0 + arrived
            q1 = c + waiting1
        s.queue = q1
        s.waiting = waiting1
        draining = s.draining
        s.draining = draining * math.exp(-mu * DT)
        w = int(t / scrape)
        run.win_running[w] += busy + (draining - s.draining) / mu
        run.win_waiting[w] += waiting
        started = arrived + waiting0 - waiting1
        if started > 0.0:
            _record_approx(run, started, t)


@numba.njit(cache=True)
def fluid_step(q: float, rate: float, mu: float, c: float, dt: float) -> tuple[float, float, float]:
    """dQ/dt = rate - mu x min(Q, c) over dt, solved piecewise exactly: linear while every slot
    is busy, exponential towards rate / mu below. Returns Q at the end and the integrals of the
    busy slots and of the waiting requests over the step."""
    busy = 0.0
    waiting = 0.0
    left = dt
    for _ in range(3):  # at most two regimes in one step
        if left <= 0.0:
            break
        saturated = q > c or (q >= c and rate >= c * mu)
        if saturated:
            drift = rate - c * mu
            span = left if drift >= 0.0 else min(left, (q - c) / -drift)
            busy += c * span
            waiting += (q - c) * span + 0.5 * drift * span * span
            q = c if span < left else q + drift * span
            left -= span
        else:
            level = rate / mu
            span = left
            if level > c:  # rises to c within the step?
                to_full = math.log((level - q) / (level - c)) / mu
                span = min(left, to_full)
            decay = math.exp(-mu * span)
            busy += level * span + (q - level) * (1.0 - decay) / mu
            q = c if span < left else level + (q - level) * decay
            left -= span
    return q, busy, waiting


@numba.njit(cache=True)
def _record_approx(run: Run, started: float, t: float) -> None:
    """The requests that started in the step [t, t + DT): FIFO positions (started before,
    started before + `started`]; their delays run linearly from the first's to the last's."""
    s = run.s[0]
    before = s.started
    after = before + started
    first_arrival = _arrival_time(run, before, True)
    last_arrival = _arrival_time(run, after, False)
    d0 = max(0.0, t - first_arrival)
    d1 = max(0.0, t + DT - last_arrival)
    s.started = after
    lo, hi = min(d0, d1), max(d0, d1)
    slo = run.p[0].slo_delay_s
    arrival = 0.5 * (first_arrival + last_arrival)
    _measure(run, arrival, started * _share_within(lo, hi, slo))
    part = part_of(run, arrival)
    run.delays[part, _delay_bin(d0)] += 0.5 * started
    run.delays[part, _delay_bin(d1)] += 0.5 * started
    row = _ttft_row(run, int(t / run.p[0].scrape_s))
    if hi <= _TTFT_BOUNDS[0]:
        row[0] += started
        return
    below = 0.0
    for k in range(_TTFT_BOUNDS.size):
        within = _share_within(lo, hi, _TTFT_BOUNDS[k])
        row[k] += started * (within - below)
        below = within
    row[_TTFT_BOUNDS.size] += started * (1.0 - below)


@numba.njit(cache=True)
def _share_within(lo: float, hi: float, limit: float) -> float:
    """Share of delays spread uniformly over [lo, hi] that are at most `limit`."""
    if hi <= limit:
        return 1.0
    if lo > limit:
        return 0.0
    return (limit - lo) / (hi - lo)


@numba.njit(cache=True)
def _arrival_time(run: Run, position: float, after: bool) -> float:
    """When the request at FIFO `position` arrived (arrivals uniform inside their step): just
    after the position when `after` (the first of a group), at it otherwise (the last)."""
    s = run.s[0]
    cum = run.cum_arrivals
    j = s.arrival_step
    if after:
        while j + 1 < cum.size - 1 and cum[j + 1] <= position:
            j += 1
    else:
        while j + 1 < cum.size - 1 and cum[j + 1] < position:
            j += 1
    s.arrival_step = j
    width = cum[j + 1] - cum[j]
    if width <= 0.0:
        return (j + 1) * DT
    return (j + min(1.0, max(0.0, (position - cum[j]) / width))) * DT


# --- observations and measurement -----------------------------------------------------------


@numba.njit(cache=True)
def _close_windows(run: Run, t_to: float) -> None:
    """Scrape windows that ended by `t_to` get their final values: ready and live pods at their
    end and, for the exact kernel, the integrals of running and waiting requests (from the
    starts and ends recorded in them)."""
    s, p = run.s[0], run.p[0]
    scrape = p.scrape_s
    upto = min(run.win_ready.size, int(t_to / scrape + 1e-9))
    for w in range(s.closed_windows, upto):
        end = (w + 1) * scrape
        run.win_ready[w] = ready_at(run, end)
        run.win_pods[w] = s.pods
        if p.kernel == KERNEL_EXACT:
            running = s.windows_started - s.windows_ended
            waiting = s.windows_arrived - s.windows_started
            run.win_running[w] = running * scrape + run.win_start_lag[w] - run.win_end_lag[w]
            run.win_waiting[w] = waiting * scrape + run.win_arrival_lag[w] - run.win_start_lag[w]
            s.windows_arrived += run.win_arrivals[w]
            s.windows_started += run.win_started[w]
            s.windows_ended += run.win_ended[w]
    s.closed_windows = max(s.closed_windows, upto)


@numba.njit(cache=True)
def _ttft_row(run: Run, window: int) -> np.ndarray:
    row = window % HISTORY_WINDOWS
    if run.ttft_window[row] != window:
        run.ttft_window[row] = window
        run.ttft[row, :] = 0.0
    return run.ttft[row]


@numba.njit(cache=True)
def _ttft_bucket(delay: float) -> int:
    k = 0
    while k < _TTFT_BOUNDS.size and delay > _TTFT_BOUNDS[k]:
        k += 1
    return k


@numba.njit(cache=True)
def _delay_bin(delay: float) -> int:
    if delay <= 0.0:
        return 0
    if delay < DELAY_MIN_S:
        return 1
    k = 1 + int(math.log10(delay / DELAY_MIN_S) * DELAY_BINS_PER_DECADE)
    return min(k, 1 + DELAY_BINS_PER_DECADE * DELAY_DECADES)


def delay_bin_upper(k: int) -> float:
    """The largest delay bin `k` holds (inf for the never-served bin)."""
    if k == 0:
        return 0.0
    if k >= DELAY_BINS - 1:
        return math.inf
    return float(DELAY_MIN_S * 10 ** (k / DELAY_BINS_PER_DECADE))


@numba.njit(cache=True)
def _measure(run: Run, arrival: float, hit: float) -> None:
    """Requests arrived at `arrival` that met the SLO (the arrivals per window are known)."""
    m = min(run.measured_hit.size - 1, int(arrival / MEASURE_WINDOW_S))
    run.measured_hit[m] += hit
