"""Equal tuning: the grids, the selection rule and the frontier."""

from __future__ import annotations

import numpy as np
import pytest

from aiscaler.sim.tuning import TUNE_BUDGET, TUNED, configurations, floors, frontier_cost, pick


@pytest.mark.parametrize("policy", TUNED)
def test_every_tuned_policy_gets_the_same_budget_of_distinct_configurations(policy: str) -> None:
    rates = np.linspace(1.0, 100.0, 1000)
    for budget in (TUNE_BUDGET, 20):
        configs = configurations(policy, rates, 10.0, budget)
        assert len(configs) == budget
        assert len({tuple(sorted(c.items())) for c in configs}) == budget


def test_floors_are_distinct_even_for_a_small_demand() -> None:
    assert floors(np.full(100, 0.1), 10.0, 1) == (1, 2, 3)
    assert floors(np.linspace(0, 100, 101), 10.0, 0) == (0, 5, 9)


@pytest.mark.parametrize(
    ("tune", "chosen"),
    [
        ([(10.0, 0.995), (8.0, 0.991), (6.0, 0.98)], 1),  # the cheapest reaching 0.99
        ([(10.0, 0.95), (8.0, 0.97), (6.0, 0.9)], 1),  # none reaches it: the best attainment
    ],
)
def test_selection_rule(tune: list[tuple[float, float]], chosen: int) -> None:
    assert pick(tune, 0.99) == chosen


def test_frontier_interpolates_on_the_lower_hull() -> None:
    points = [(10.0, 0.999), (6.0, 0.97), (8.0, 0.995), (9.0, 0.98)]  # (9, 0.98) is dominated
    # on the hull between (6, 0.97) and (8, 0.995): 6 + 2 x (0.99 - 0.97) / 0.025
    assert frontier_cost(points, 0.99) == pytest.approx(6 + 2 * 0.02 / 0.025)
    assert frontier_cost(points, 0.9) == 6.0  # below every point: the cheapest
    assert frontier_cost(points, 0.9995) is None  # no configuration reaches it


def test_frontier_skips_points_above_the_convex_hull() -> None:
    # (7, 0.99) lies above the segment from (6, 0.98) to (7.5, 0.999): the hull passes below it.
    points = [(6.0, 0.98), (7.0, 0.99), (7.5, 0.999)]
    expected = 6 + 1.5 * (0.99 - 0.98) / 0.019
    assert frontier_cost(points, 0.99) == pytest.approx(expected)
    assert expected < 7.0
