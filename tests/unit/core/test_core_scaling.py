"""Stabilisation windows and rate limits, HPA semantics, worked by hand."""

from __future__ import annotations

import pytest

from aiscaler.core.scaling import rate_limit, remember, stabilize
from aiscaler.core.types import Reason, Recommendation, ScaleEvent, ScaleMemory, ScalingRules

NOW = 1_000.0
UP = ScalingRules(stabilization_window_s=60.0, max_replicas=4, max_percent=100.0, period_s=15.0)
DOWN = ScalingRules(
    stabilization_window_s=300.0, max_replicas=None, max_percent=100.0, period_s=15.0
)


def recs(*points: tuple[float, int]) -> ScaleMemory:
    """Recommendations at (seconds ago, replicas)."""
    return ScaleMemory(recommendations=tuple(Recommendation(NOW - a, r) for a, r in points))


def events(*points: tuple[float, int]) -> ScaleMemory:
    """Scale events at (seconds ago, change)."""
    return ScaleMemory(events=tuple(ScaleEvent(NOW - a, c) for a, c in points))


@pytest.mark.parametrize(
    ("memory", "current", "desired", "expected", "reason"),
    [
        (recs(), 8, 3, 3, None),
        (recs((100, 8)), 8, 3, 8, Reason.SCALE_DOWN_STABILIZED),
        (recs((100, 5)), 8, 3, 5, Reason.SCALE_DOWN_STABILIZED),  # highest in window: 5
        (recs((400, 10)), 8, 3, 3, None),  # older than the 300 s window
        (recs((300, 10)), 8, 3, 3, None),  # exactly at the cutoff: outside (strict, as HPA)
        (recs((0, 10)), 8, 3, 3, None),  # this tick's own earlier record is ignored
        (recs((30, 4)), 2, 6, 4, Reason.SCALE_UP_STABILIZED),  # lowest in the 60 s up window
        (recs((90, 4)), 2, 6, 6, None),
        (recs((30, 1)), 2, 6, 2, Reason.SCALE_UP_STABILIZED),  # never below current
        (recs((100, 8), (30, 4)), 5, 5, 5, None),  # within both bounds: stay
    ],
)
def test_stabilize(
    memory: ScaleMemory, current: int, desired: int, expected: int, reason: Reason | None
) -> None:
    assert stabilize(current, desired, memory, NOW, UP, DOWN) == (expected, reason)


@pytest.mark.parametrize(
    ("memory", "current", "desired", "up", "down", "expected", "reason"),
    [
        # up: max(start + 4, ceil(start * 2))
        (events(), 10, 30, UP, DOWN, 20, Reason.SCALE_UP_LIMIT),
        (events(), 1, 30, UP, DOWN, 5, Reason.SCALE_UP_LIMIT),
        (events(), 10, 15, UP, DOWN, 15, None),
        # +6 within the period: start 4 -> limit 8, never below current 10
        (events((10, 6)), 10, 15, UP, DOWN, 10, Reason.SCALE_UP_LIMIT),
        (events((20, 6)), 10, 15, UP, DOWN, 15, None),  # event older than the period
        (events((0, 6)), 10, 30, UP, DOWN, 20, Reason.SCALE_UP_LIMIT),  # this tick's: ignored
        # pods-only and percent-only policies
        (events(), 3, 30, ScalingRules(0, 4, 0.0, 15), DOWN, 7, Reason.SCALE_UP_LIMIT),
        (events(), 3, 30, ScalingRules(0, None, 50.0, 15), DOWN, 5, Reason.SCALE_UP_LIMIT),
        (events(), 0, 3, ScalingRules(0, None, 100.0, 15), DOWN, 1, Reason.SCALE_UP_LIMIT),
        # down: min(start - pods, floor(start * (1 - pct)))
        (events(), 10, 0, UP, DOWN, 0, None),
        (events(), 10, 2, UP, ScalingRules(0, None, 50.0, 60), 5, Reason.SCALE_DOWN_LIMIT),
        (events((30, -2)), 10, 2, UP, ScalingRules(0, None, 50.0, 60), 6, Reason.SCALE_DOWN_LIMIT),
        (events(), 10, 2, UP, ScalingRules(0, 1, 0.0, 15), 9, Reason.SCALE_DOWN_LIMIT),
        (events(), 10, 2, UP, ScalingRules(0, 3, 50.0, 15), 5, Reason.SCALE_DOWN_LIMIT),
        (events((5, -1)), 9, 2, UP, ScalingRules(0, 1, 0.0, 15), 9, Reason.SCALE_DOWN_LIMIT),
        (events(), 4, 4, UP, DOWN, 4, None),
    ],
)
def test_rate_limit(
    memory: ScaleMemory,
    current: int,
    desired: int,
    up: ScalingRules,
    down: ScalingRules,
    expected: int,
    reason: Reason | None,
) -> None:
    assert rate_limit(current, desired, memory, NOW, up, down) == (expected, reason)


def test_remember_prunes_expired_and_replaces_this_tick() -> None:
    memory = ScaleMemory(
        recommendations=(
            Recommendation(NOW - 400, 9),
            Recommendation(NOW - 10, 7),
            Recommendation(NOW, 1),
        ),
        events=(ScaleEvent(NOW - 20, 3), ScaleEvent(NOW - 5, 2), ScaleEvent(NOW, 5)),
    )
    after = remember(memory, NOW, 4, -1, UP, DOWN)
    assert after.recommendations == (Recommendation(NOW - 10, 7), Recommendation(NOW, 4))
    assert after.events == (ScaleEvent(NOW - 5, 2), ScaleEvent(NOW, -1))
    held = remember(memory, NOW, None, 0, UP, DOWN)
    assert held.recommendations == (Recommendation(NOW - 10, 7),)
    assert held.events == (ScaleEvent(NOW - 5, 2),)
