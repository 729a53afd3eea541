"""Equal tuning (BENCHMARK.md protocol v2): every tuned policy gets the same number of
configurations over its real knobs, chosen by the same rule on the tune window alone, and is
compared on its cost-attainment frontier.

The grids are fixed here, not chosen per trace: each is the product of a few levels per knob, 48
configurations for every policy. Levels of minReplicas come from the tune window's demand (what
an expert sizing a floor would look at): the replicas its median and its 90th percentile need at
full capacity. With another `--tune-budget`, a grid larger than the budget is subsampled by a
fixed-seed permutation (the same rule for every policy).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

TUNE_BUDGET = 48
TUNED = ("aiscaler", "hpa", "keda", "kpa")
REACTIVE = ("hpa", "keda", "kpa")
TARGETS = (0.4, 0.55, 0.7, 0.85)  # share of a replica's capacity or slots per replica
AISCALER_GOALS = (0.95, 0.98, 0.99, 0.995)
AISCALER_TARGETS = (0.55, 0.7, 0.85, 1.0)
HPA_DOWN_WINDOWS_S = (60.0, 300.0)
# Knative: (stable window, panic threshold): the defaults, and a calmer pair.
KPA_WINDOWS = ((60.0, 2.0), (180.0, 4.0))


def floors(tune_rates: np.ndarray, capacity: float, lowest: int) -> tuple[int, int, int]:
    """Three distinct minReplicas levels: the policy's own lowest, and what the tune window's
    median and 90th-percentile demand need at full capacity (each at least one above the last)."""
    median = math.ceil(float(np.quantile(tune_rates, 0.5)) / capacity - 1e-9)
    high = math.ceil(float(np.quantile(tune_rates, 0.9)) / capacity - 1e-9)
    middle = max(lowest + 1, median)
    return lowest, middle, max(middle + 1, high)


def grid(policy: str, tune_rates: np.ndarray, capacity: float) -> list[dict[str, Any]]:
    """Every configuration of the policy's knobs, in a fixed order."""
    if policy == "aiscaler":
        mins = floors(tune_rates, capacity, 1)
        return [
            {"goal": g, "target": t, "min_replicas": m}
            for g, t, m in itertools.product(AISCALER_GOALS, AISCALER_TARGETS, mins)
        ]
    if policy in ("hpa", "keda"):
        mins = floors(tune_rates, capacity, 1 if policy == "hpa" else 0)
        return [
            {"metric": metric, "target": t, "min_replicas": m, "window_s": w}
            for metric, t, m, w in itertools.product(
                ("rate", "concurrency"), TARGETS, mins, HPA_DOWN_WINDOWS_S
            )
        ]
    if policy == "kpa":
        mins = floors(tune_rates, capacity, 0)
        return [
            {"metric": metric, "target": t, "min_replicas": m, "window_s": w, "panic_threshold": p}
            for metric, t, m, (w, p) in itertools.product(
                ("concurrency", "rate"), TARGETS, mins, KPA_WINDOWS
            )
        ]
    raise ValueError(f"{policy} is not tuned")


def configurations(
    policy: str, tune_rates: np.ndarray, capacity: float, budget: int = TUNE_BUDGET
) -> list[dict[str, Any]]:
    """At most `budget` configurations of the policy's grid."""
    full = grid(policy, tune_rates, capacity)
    if len(full) <= budget:
        return full
    keep = sorted(np.random.default_rng(0).permutation(len(full))[:budget].tolist())
    return [full[i] for i in keep]


def pick(tune: Sequence[tuple[float, float]], goal: float) -> int:
    """The selection rule, on tune-window (GPU-hours, attainment) per configuration: the cheapest
    whose attainment reaches the goal; if none does, the one with the highest attainment."""
    reaching = [i for i, (_, a) in enumerate(tune) if a >= goal]
    if reaching:
        return min(reaching, key=lambda i: tune[i][0])
    return max(range(len(tune)), key=lambda i: tune[i][1])


def frontier_cost(points: Sequence[tuple[float, float]], goal: float) -> float | None:
    """GPU-hours at attainment `goal` on the cost-attainment frontier of (GPU-hours, attainment)
    points: the lower convex hull of cost over attainment through the efficient points,
    interpolated at the goal. None when no point reaches the goal."""
    efficient: list[tuple[float, float]] = []  # (attainment, cost), cost rising with attainment
    for cost, attainment in sorted(points, key=lambda p: (-p[1], p[0])):
        if not efficient or cost < efficient[-1][1]:
            efficient.append((attainment, cost))
    efficient.reverse()
    if not efficient or efficient[-1][0] < goal:
        return None
    hull: list[tuple[float, float]] = []
    for point in efficient:
        while len(hull) >= 2 and _turns_down(hull[-2], hull[-1], point):
            hull.pop()
        hull.append(point)
    if goal <= hull[0][0]:
        return hull[0][1]
    for (a0, c0), (a1, c1) in itertools.pairwise(hull):
        if a0 <= goal <= a1:
            return c0 + (c1 - c0) * (goal - a0) / (a1 - a0)
    return hull[-1][1]


def _turns_down(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    """Whether b lies on or above the segment a-c (not on the lower hull)."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) <= 0
