from __future__ import annotations

import numpy as np
import pytest
from forecast_helpers import daily_like

from aiscaler.core.types import Forecast
from aiscaler.forecast.backtest import backtest, mase_scale, origins_for, pinball, score
from aiscaler.forecast.baselines import NaiveForecaster, SeasonalNaiveForecaster
from aiscaler.forecast.data import Series, TraceError, first_test_index

nan = np.nan
Q = (0.1, 0.5, 0.9, 0.99)


def test_pinball_by_hand():
    np.testing.assert_allclose(
        pinball(np.array([10.0, 10.0]), np.array([8.0, 12.0]), 0.9), [0.9 * 2, 0.1 * 2]
    )


def test_a_perfect_forecast_scores_zero_error_and_full_coverage():
    a = np.array([1.0, 2.0, 4.0])
    s = score(a, np.repeat(a[:, None], 4, axis=1), Q, scale=1.0)
    assert s == {"mase": 0.0, "smape": 0.0, "wql": 0.0, "coverage_80": 1.0}


def test_score_by_hand():
    a = np.array([10.0, 0.0])
    f = np.array([[5.0, 8.0, 12.0, 20.0], [0.0, 0.0, 0.0, 0.0]])
    s = score(a, f, Q, scale=2.0)
    assert s["mase"] == pytest.approx((2 + 0) / 2 / 2)
    assert s["smape"] == pytest.approx((2 * 2 / 18 + 0) / 2)  # 0/0 counts as 0
    # pinball at 0.5: 1; at 0.9: 0.1 * 2 = 0.2; at 0.99: 0.01 * 10 = 0.1; sum |a| = 10
    assert s["wql"] == pytest.approx(np.mean([2 * 1 / 10, 2 * 0.2 / 10, 2 * 0.1 / 10]))
    assert s["coverage_80"] == 1.0


def test_score_skips_missing_actuals():
    s = score(np.array([1.0, nan]), np.ones((2, 4)), Q, scale=1.0)
    assert s["mase"] == 0.0 and s["coverage_80"] == 1.0


@pytest.mark.parametrize(("m", "expected"), [(2, 2.0), (1, 1.0), (10, 1.0)])
def test_mase_scale_uses_the_season_when_the_training_part_is_long_enough(m, expected):
    train = np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # lag-2 differences 2, lag-1 differences 1
    assert mase_scale(train, m) == expected


def test_mase_scale_of_a_constant_series_is_refused():
    with pytest.raises(TraceError, match="constant"):
        mase_scale(np.ones(10), 2)


def test_origins_stay_in_the_test_part_and_leave_room_for_the_horizon():
    o = origins_for(100, 5, max_origins=1000)
    assert o[0] == first_test_index(100) - 1 and o[-1] == 100 - 1 - 5
    assert len(origins_for(1000, 5, max_origins=10)) == 10


def test_too_short_a_test_part_is_refused():
    with pytest.raises(TraceError, match="the test part has 15 points; a backtest at horizon 30"):
        origins_for(60, 30)


class _Peeking:
    """Fails the test if a forecaster is ever shown a point beyond its origin."""

    name = "peeking"

    def __init__(self, y: np.ndarray) -> None:
        self.y = y

    def forecast(self, histories, step_s, horizon, quantiles):
        out = []
        for h in histories:
            end = len(h)
            # each history must be a prefix-ending slice: its last value is y at some origin
            # and the history is a contiguous run of y ending there
            matches = [
                o for o in range(len(self.y)) if np.array_equal(self.y[o + 1 - end : o + 1], h)
            ]
            assert matches, "history is not a slice of the series ending at an origin"
            v = np.full((horizon, len(quantiles)), h[-1])
            out.append(Forecast(step_s, tuple(quantiles), v, self.name))
        return out


def test_backtest_shows_only_the_past_and_reports_the_contract_fields():
    y = np.arange(1.0, 81.0)  # unique values so a history identifies its origin
    series = Series("s", "requests", 60.0, 0.0, y)
    bt = backtest(
        series,
        {"peeking": _Peeking(y), "seasonal_naive": SeasonalNaiveForecaster()},
        horizons=[1, 3],
    )
    by = {(r.model, r.horizon_steps): r for r in bt.results}
    assert by["seasonal_naive", 1].relative_mase == 1.0
    # naive on y = t misses by exactly h; the training scale (naive, lag 1) is 1
    assert by["peeking", 3].mase == pytest.approx(3.0)
    assert by["peeking", 3].horizon_s == 180.0
    assert bt.test_start_s == first_test_index(80) * 60.0
    j = bt.to_json()
    assert set(j) == {"trace", "column", "step_s", "test_start_s", "results"}
    assert set(j["results"][0]) == {
        "model",
        "horizon_steps",
        "horizon_s",
        "mase",
        "relative_mase",
        "smape",
        "wql",
        "coverage_80",
    }


def test_backtest_needs_its_reference_forecaster():
    series = Series("s", "requests", 60.0, 0.0, daily_like(200, 10))
    with pytest.raises(ValueError, match="reference forecaster 'seasonal_naive'"):
        backtest(series, {"naive": NaiveForecaster()})


def test_relative_mase_compares_on_the_same_windows():
    series = Series("s", "requests", 60.0, 0.0, daily_like(3000, 1440))
    bt = backtest(
        series, {"naive": NaiveForecaster(), "seasonal_naive": SeasonalNaiveForecaster()}, [1]
    )
    naive, snaive = bt.results
    assert naive.relative_mase == pytest.approx(naive.mase / snaive.mase)
