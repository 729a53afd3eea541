from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiscaler.forecast.baselines import (
    NO_DATA_NOTE,
    HoltWintersForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    check_request,
    forward_fill,
    row_quantiles,
    seasonal_naive_points,
    stack_histories,
)

nan = np.nan
ALL = [NaiveForecaster(), SeasonalNaiveForecaster(season_s=600), HoltWintersForecaster(600)]


@pytest.mark.parametrize(
    ("step_s", "horizon", "quantiles", "histories", "message"),
    [
        (0.0, 1, [0.5], [np.ones(3)], "step_s must be positive"),
        (60.0, 0, [0.5], [np.ones(3)], "horizon must be at least 1"),
        (60.0, 1, [], [np.ones(3)], "at least one quantile"),
        (60.0, 1, [0.9, 0.5], [np.ones(3)], "strictly increasing"),
        (60.0, 1, [0.5, 0.5], [np.ones(3)], "strictly increasing"),
        (60.0, 1, [0.0, 0.5], [np.ones(3)], "inside \\(0, 1\\)"),
        (60.0, 1, [1.0], [np.ones(3)], "inside \\(0, 1\\)"),
        (60.0, 1, [0.5], [np.ones((2, 2))], "history 0 must be one-dimensional"),
    ],
)
def test_bad_requests_are_rejected_with_the_reason(step_s, horizon, quantiles, histories, message):
    with pytest.raises(ValueError, match=message):
        check_request(histories, step_s, horizon, quantiles)
    for f in ALL:
        with pytest.raises(ValueError, match=message):
            f.forecast(histories, step_s, horizon, quantiles)


def test_stack_histories_aligns_ends_and_turns_infinities_into_gaps():
    y = stack_histories([np.array([1.0, 2.0, 3.0]), np.array([np.inf]), np.array([])])
    np.testing.assert_array_equal(y, [[1, 2, 3], [nan, nan, nan], [nan, nan, nan]])


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ([1, nan, nan, 4], [1, 1, 1, 4]),
        ([nan, 2, nan, nan], [nan, 2, 2, 2]),
        ([nan, nan], [nan, nan]),
        ([5, 6], [5, 6]),
    ],
)
def test_forward_fill(row, expected):
    np.testing.assert_array_equal(forward_fill(np.array([row], dtype=float))[0], expected)


def test_row_quantiles_match_numpy_and_ignore_missing_points():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 40))
    qs = [0.1, 0.5, 0.99]
    np.testing.assert_allclose(row_quantiles(x, qs), np.quantile(x, qs, axis=1).T)
    with_gaps = np.concatenate([x, np.full((5, 7), nan)], axis=1)
    np.testing.assert_allclose(row_quantiles(with_gaps, qs), np.quantile(x, qs, axis=1).T)
    np.testing.assert_array_equal(row_quantiles(np.full((1, 3), nan), qs), [[0, 0, 0]])


def test_naive_repeats_the_last_observed_value():
    (fc,) = NaiveForecaster().forecast([np.array([3.0, 5.0, nan])], 60, 3, [0.5])
    np.testing.assert_array_equal(fc.values[:, 0], [5, 5, 5])
    assert fc.source == "naive" and fc.note == ""


def test_naive_spread_widens_with_the_horizon():
    rng = np.random.default_rng(2)
    (fc,) = NaiveForecaster().forecast([100 + rng.normal(0, 5, 500)], 60, 9, [0.1, 0.9])
    width = fc.values[:, 1] - fc.values[:, 0]
    assert width[8] == pytest.approx(3 * width[0])  # sqrt(9) / sqrt(1)


@pytest.mark.parametrize("forecaster", ALL, ids=lambda f: f.name)
@pytest.mark.parametrize("history", [np.array([]), np.full(30, nan)], ids=["empty", "all-nan"])
def test_a_series_without_data_gets_a_nan_forecast_that_says_so(forecaster, history):
    ok, missing = forecaster.forecast([np.ones(30), history], 60, 2, [0.5, 0.9])
    assert np.isnan(missing.values).all() and missing.note == NO_DATA_NOTE
    assert np.isfinite(ok.values).all()


def test_seasonal_naive_takes_the_same_phase_of_the_last_season():
    # Season of 4 steps; y = t makes the source index visible in the value.
    y = np.arange(12, dtype=float)
    (fc,) = SeasonalNaiveForecaster(season_s=240).forecast([y], 60, 6, [0.5])
    # Origin t=11. h=1..4 -> t+h-4 = 8..11; h=5,6 -> two seasons back: t+h-8 = 8, 9.
    np.testing.assert_array_equal(fc.values[:, 0], [8, 9, 10, 11, 8, 9])


def test_seasonal_naive_falls_back_to_naive_below_one_season_and_says_so():
    short, long = SeasonalNaiveForecaster(season_s=600).forecast(
        [np.arange(10.0), np.arange(25.0)], 60, 2, [0.5]
    )
    np.testing.assert_array_equal(short.values[:, 0], [9, 9])
    assert "shorter than one season (10 steps): used naive" in short.note
    np.testing.assert_array_equal(long.values[:, 0], [15, 16])
    assert long.note == ""


@pytest.mark.parametrize(
    ("length", "leading_gap", "expected"),
    [
        # Season of 4 steps, horizon 3; y = t shows where each value comes from. Up to one
        # season observed: naive (the last value), even where "a season ago" is inside the
        # history for some steps (length 2-4). More than one season: the same phase.
        (1, 0, [0, 0, 0]),
        (2, 0, [1, 1, 1]),
        (4, 0, [3, 3, 3]),
        (5, 0, [1, 2, 3]),
        (9, 0, [5, 6, 7]),
        (6, 2, [5, 5, 5]),  # 2 missing points before the first observation: 4 observed
        (7, 2, [3, 4, 5]),
    ],
)
def test_the_shadow_reference_is_what_seasonal_naive_forecasts(length, leading_gap, expected):
    # The model's shadow scoring (seasonal_naive_points at past origins) must compare against
    # the forecaster the backtest's relative MASE uses, also on histories shorter than a season.
    y = np.arange(length, dtype=float)
    y[:leading_gap] = nan
    short = np.ones(2)  # a shorter history in the same batch: left-padded rows
    fc_short, fc = SeasonalNaiveForecaster(season_s=240).forecast([short, y], 60, 3, [0.5])
    np.testing.assert_array_equal(fc.values[:, 0], expected)
    filled = forward_fill(stack_histories([short, y]))
    origin = np.array([filled.shape[1] - 1])
    for row, forecast in ((0, fc_short), (1, fc)):
        points = seasonal_naive_points(filled, np.array([row]), origin, 3, 4)
        np.testing.assert_array_equal(points[0], forecast.values[:, 0])


def test_holt_winters_learns_a_clean_seasonal_pattern():
    m = 24
    t = np.arange(6 * m + 5)
    y = 50 + 20 * np.sin(2 * np.pi * t / m)
    (fc,) = HoltWintersForecaster(season_s=m * 60).forecast([y[:-5]], 60, 5, [0.5])
    np.testing.assert_allclose(fc.values[:, 0], y[-5:], atol=1.0)
    assert fc.note == ""


def test_holt_winters_past_forecasts_are_what_it_would_have_said_then():
    # The clean pattern again: the fit's forecasts 5 and 29 steps before the end, 5 steps ahead,
    # are the pattern's values after those origins; before the fitted window there are none.
    m = 24
    t = np.arange(6 * m + 5)
    y = 50 + 20 * np.sin(2 * np.pi * t / m)
    hw = HoltWintersForecaster(season_s=m * 60)
    (fc,), past = hw.forecast_and_past([y], 60, 5, [0.5], back=(5, 29, len(y)))
    assert past.shape == (1, 3, 5)
    np.testing.assert_allclose(past[0, 0], y[-5:], atol=1.0)
    np.testing.assert_allclose(past[0, 1], y[-29:-24], atol=1.0)
    assert np.isnan(past[0, 2]).all()
    # The forecast itself is the one `forecast` gives.
    np.testing.assert_array_equal(fc.values, hw.forecast([y], 60, 5, [0.5])[0].values)


def test_holt_winters_tolerates_gaps():
    m = 24
    t = np.arange(6 * m + 5)
    y = 50 + 20 * np.sin(2 * np.pi * t / m)
    gappy = y[:-5].copy()
    gappy[np.random.default_rng(3).random(len(gappy)) < 0.15] = nan
    gappy[-3:] = nan  # the latest scrapes missing too
    (fc,) = HoltWintersForecaster(season_s=m * 60).forecast([gappy], 60, 5, [0.5])
    np.testing.assert_allclose(fc.values[:, 0], y[-5:], atol=2.0)


def test_holt_winters_without_two_seasons_drops_the_season_and_says_so():
    (fc,) = HoltWintersForecaster(season_s=600).forecast([np.arange(15.0)], 60, 3, [0.5])
    assert "no seasonal component" in fc.note
    assert np.all(np.diff(fc.values[:, 0]) > 0)  # the trend continues (damped)
    assert fc.values[0, 0] == pytest.approx(14.5, abs=1.0)  # truth 15; a slow trend lags


@pytest.mark.parametrize("forecaster", ALL[:2], ids=lambda f: f.name)
def test_batched_equals_one_by_one(forecaster):
    rng = np.random.default_rng(4)
    hs = [rng.random(n) * 10 for n in (3, 17, 40)]
    batched = forecaster.forecast(hs, 60, 4, [0.1, 0.5, 0.9])
    for h, fb in zip(hs, batched, strict=True):
        (alone,) = forecaster.forecast([h], 60, 4, [0.1, 0.5, 0.9])
        np.testing.assert_allclose(fb.values, alone.values)
        assert fb.note == alone.note


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.lists(st.one_of(st.floats(0, 1e6), st.just(nan)), min_size=0, max_size=60),
        min_size=1,
        max_size=4,
    ),
    horizon=st.integers(1, 12),
)
def test_quantiles_never_cross_and_are_never_negative(data, horizon):
    hs = [np.array(d, dtype=float) for d in data]
    for f in ALL:
        for fc in f.forecast(hs, 60, horizon, [0.1, 0.5, 0.9, 0.99]):
            assert fc.values.shape == (horizon, 4)
            if not np.isnan(fc.values).any():
                assert np.all(np.diff(fc.values, axis=1) >= 0)
                assert np.all(fc.values >= 0)
            else:
                assert fc.note == NO_DATA_NOTE
