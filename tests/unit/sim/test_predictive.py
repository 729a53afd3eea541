"""The aiscaler policy: forecasts see only the past, the planner starts capacity ahead, and the
latency it learns from is what the TTFT histogram shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from aiscaler.core.types import Forecast
from aiscaler.forecast.baselines import SeasonalNaiveForecaster
from aiscaler.sim.observe import share_within
from aiscaler.sim.predictive import forecast_table
from aiscaler.sim.runs import PolicyConfig, Scenario, run_config
from aiscaler.sim.state import TTFT_BUCKETS_S, SimConfig, step_rates

Row = Callable[[npt.NDArray[np.float64], Sequence[float]], npt.NDArray[np.float64]]


class Stub:
    """Forecasts the row `row(history, quantiles)` at every step; records the last point of
    every history window."""

    name = "stub"

    def __init__(self, row: Row) -> None:
        self.row = row
        self.last_points: list[float] = []

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]:
        self.last_points.extend(float(h[-1]) for h in histories)
        return [
            Forecast(
                step_s, tuple(quantiles), np.tile(self.row(h, quantiles), (horizon, 1)), "stub"
            )
            for h in histories
        ]


def test_each_forecast_uses_only_data_up_to_its_origin() -> None:
    # Arrivals per second equal to the minute index: a window's last point tells where it ends.
    minutes = 60 * 12
    counts = np.repeat(np.arange(minutes, dtype=np.float64), 60)
    spy = Stub(lambda history, quantiles: np.full(len(quantiles), history[-1]))  # the last value
    table = forecast_table(counts, 60.0, spy, horizon=3, quantiles=(0.5, 0.99))
    # origins every 300 s: the window ending at origin 300 k holds minutes up to 5 k - 1
    assert spy.last_points == [5.0 * k - 1 for k in range(1, minutes // 5 + 1)]
    assert table.latest(299.0) is None
    forecast, origin = table.latest(1234.0)  # type: ignore[misc]
    assert origin == 1200.0 and forecast.values[0, 0] == 19.0


def daily_peak(days: int) -> npt.NDArray[np.float64]:
    """Requests/s per minute: 5/s all day, 95/s from 12:00 to 14:00."""
    day = np.full(1440, 5.0)
    day[720:840] = 95.0
    return np.tile(day, days)


def test_aiscaler_is_ready_for_a_daily_peak_that_the_hpa_meets_late() -> None:
    config = SimConfig(capacity=10.0, slots=16, cold_start_s=300.0, max_replicas=30)
    scenario = Scenario("peak", step_rates(daily_peak(3), 60.0), config, (0,), 0.0, 60.0,
                        SeasonalNaiveForecaster())  # fmt: skip
    window = config.scrape_s
    peak_day3 = int((2 * 86_400 + 12 * 3600) / window)  # the window that starts at 12:00
    before = int((2 * 86_400 + 11 * 3600) / window)
    ai = run_config(scenario, PolicyConfig("aiscaler"), 0, keep_series=True)
    hpa = run_config(scenario, PolicyConfig("hpa"), 0, keep_series=True)
    assert ai.ready is not None and hpa.ready is not None
    assert ai.ready[before] <= 2  # nothing started an hour early
    assert ai.ready[peak_day3 + 1] >= 10  # ready as the peak starts
    assert hpa.ready[peak_day3 + 1] < 10  # the HPA starts after it and is a cold start late
    assert ai.evaluate.slo_attainment > hpa.evaluate.slo_attainment


def test_a_burst_of_long_requests_is_sized_in_flight_not_per_minute() -> None:
    # A burst of 20 ten-minute requests every two hours; one slot per replica. Sized on a
    # minute's rate, a burst would ask for 20 / 60 / (1 / 600) = 200 replicas every minute.
    minutes = np.zeros(1440)
    minutes[30::120] = 20 / 60
    config = SimConfig(capacity=1 / 600, slots=1, cold_start_s=120.0, max_replicas=400)
    # The forecast: any minute may bring the burst (idle at the median and 0.9, 20 at 0.99).
    any_minute = Stub(lambda history, q: np.interp(q, (0.5, 0.9, 0.99), (0.0, 0.0, 20 / 60)))
    scenario = Scenario("bursts", step_rates(minutes, 60.0), config, (0,), 0.0, 60.0, any_minute)
    ai = run_config(scenario, PolicyConfig("aiscaler"), 0, keep_series=True)
    assert ai.ready is not None
    assert ai.ready.max() < 100
    assert ai.evaluate.slo_attainment >= 0.99  # every burst still finds its slots


@pytest.mark.parametrize(
    ("counts", "limit", "expected"),
    [
        ({0: 90, 12: 10}, 2.0, 0.9 + 0.1 * (2.0 - 1.0) / 1.5),  # inside (1, 2.5]: linear
        ({0: 50, 11: 50}, 1.0, 1.0),  # all within 1 s
        ({22: 10}, 2.0, 0.0),  # +Inf bucket only
    ],
)
def test_share_within_reads_the_histogram_as_histogram_quantile(
    counts: dict[int, float], limit: float, expected: float
) -> None:
    histogram = np.zeros(len(TTFT_BUCKETS_S) + 1)
    for bucket, n in counts.items():
        histogram[bucket] = n
    assert share_within(histogram, limit) == pytest.approx(expected)
    assert share_within(np.zeros(len(TTFT_BUCKETS_S) + 1), limit) is None
