"""What a policy sees of the simulated service: only what a Prometheus scrape would show.

Scrapes close every `scrape_s` seconds; at time t the latest closed window is the one ending at
or before t, so every metric is up to `scrape_s` stale and averaged over its windows:
- the request rate, as `rate(requests_total[W])` over the windows covering W seconds;
- the requests running and waiting, as `vllm:num_requests_running` + `..._waiting` (summed over
  pods), averaged over the windows;
- the TTFT histogram's increments (`vllm:time_to_first_token_seconds`);
- the ready pods at the window's end (kube-state-metrics), where the policy reads it there.
The replicas of the Deployment and its ready pods now come from the API, as controllers see them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from aiscaler.sim.state import HISTORY_WINDOWS, TTFT_BUCKETS_S, Run


@numba.njit(cache=True)
def last_window(run: Run, now: float) -> int:
    """The latest scrape window closed at `now` (-1 before the first)."""
    w = int(now / run.p[0].scrape_s + 1e-9) - 1
    return min(w, run.s[0].closed_windows - 1)


@numba.njit(cache=True)
def _span(run: Run, now: float, span_s: float) -> tuple[int, int]:
    """The scrape windows (first, last) covering `span_s` up to the latest; last < 0: none yet."""
    last = last_window(run, now)
    windows = max(1, round(span_s / run.p[0].scrape_s))
    return max(0, last - windows + 1), last


@numba.njit(cache=True)
def request_rate(run: Run, now: float, span_s: float) -> float:
    """Requests/s over the scrape windows covering `span_s` up to the latest (nan: none yet)."""
    first, last = _span(run, now, span_s)
    if last < 0:
        return math.nan
    arrived = run.win_arrivals[first : last + 1].sum()
    return arrived / ((last + 1 - first) * run.p[0].scrape_s)


@numba.njit(cache=True)
def concurrency(run: Run, now: float, span_s: float) -> float:
    """Mean requests running plus waiting over the windows covering `span_s` (nan: none yet)."""
    first, last = _span(run, now, span_s)
    if last < 0:
        return math.nan
    total = run.win_running[first : last + 1].sum() + run.win_waiting[first : last + 1].sum()
    return total / ((last + 1 - first) * run.p[0].scrape_s)


@numba.njit(cache=True)
def ready_seen(run: Run, now: float) -> int:
    """Ready pods at the end of the latest window (0 before the first)."""
    last = last_window(run, now)
    return int(run.win_ready[last]) if last >= 0 else 0


def ttft_counts(run: Run, first: int, last: int) -> np.ndarray:
    """The TTFT histogram's increments (per bucket, the last one +Inf) over windows
    [first, last] that are still in the ring."""
    total = np.zeros(len(TTFT_BUCKETS_S) + 1)
    for w in range(max(first, last - HISTORY_WINDOWS + 1), last + 1):
        row = w % HISTORY_WINDOWS
        if w >= 0 and run.ttft_window[row] == w:
            total += run.ttft[row]
    return total


def share_within(counts: np.ndarray, limit_s: float) -> float | None:
    """Share of the histogram's requests that waited at most `limit_s`, interpolated linearly
    inside its bucket as `histogram_quantile` does (None without requests)."""
    total = float(counts.sum())
    if total <= 0:
        return None
    bounds = (0.0, *TTFT_BUCKETS_S)
    below = 0.0
    for k, upper in enumerate(TTFT_BUCKETS_S):
        if limit_s <= upper:
            lower = bounds[k]
            return (below + counts[k] * (limit_s - lower) / (upper - lower)) / total
        below += counts[k]
    return below / total
