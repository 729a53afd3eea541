"""The aiscaler policy: forecasts see only the past, and the planner starts capacity ahead."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from aiscaler.core.types import Forecast
from aiscaler.forecast.baselines import SeasonalNaiveForecaster
from aiscaler.sim.baselines import Hpa
from aiscaler.sim.engine import Demand, SimConfig, evaluate, run_policy
from aiscaler.sim.predictive import Aiscaler, SloProbe, forecast_table


class Spy:
    """Forecasts the last observed value; records the last point of every history window."""

    name = "spy"

    def __init__(self) -> None:
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
            Forecast(step_s, tuple(quantiles), np.full((horizon, len(quantiles)), h[-1]), "spy")
            for h in histories
        ]


def test_each_forecast_uses_only_data_up_to_its_origin() -> None:
    # Demand equal to the minute index: a window's last point tells where it ends.
    minutes = 60 * 12
    demand = Demand(np.arange(minutes, dtype=np.float64), bin_s=60)
    spy = Spy()
    table = forecast_table(demand, 60.0, spy, horizon=3, quantiles=(0.5, 0.99))
    # origins every 300 s: the window ending at origin 300 k holds minutes up to 5 k - 1
    assert spy.last_points == [5.0 * k - 1 for k in range(1, minutes // 5 + 1)]
    assert table.latest(299.0) is None
    forecast, origin = table.latest(1234.0)  # type: ignore[misc]
    assert origin == 1200.0 and forecast.values[0, 0] == 19.0


def daily_step_trace(days: int) -> npt.NDArray[np.float64]:
    """0.5/s all day, 9.5/s from 12:00 to 14:00, per minute (1 and 10 replicas at 1/s each,
    with slack to drain a queue)."""
    day = np.full(1440, 0.5)
    day[720:840] = 9.5
    return np.tile(day, days)


def test_aiscaler_is_ready_for_a_daily_peak_that_the_hpa_meets_late() -> None:
    demand = Demand(daily_step_trace(3), bin_s=60)
    config = SimConfig(capacity=1.0, cold_start_s=300.0)
    aiscaler = evaluate(
        run_policy(Aiscaler(SeasonalNaiveForecaster(), 60.0), demand, config), demand, config
    )
    hpa = evaluate(run_policy(Hpa(), demand, config), demand, config)
    before = (2 * 86_400 + 11 * 3600) // 10  # 11:00 on day 3: nothing started early
    assert aiscaler.ready_replicas[before] == 1
    peak_day3 = (2 * 86_400 + 12 * 3600) // 10  # step index of 12:00 on day 3
    # Started a cold start before the jump (within one tick of it: the scale-up rate limit
    # lets 1 replica grow to 5, then 10, in two ticks); the HPA only starts after it.
    assert aiscaler.ready_replicas[peak_day3 + 3] >= 10
    assert hpa.ready_replicas[peak_day3 + 3] < 10


def test_the_slo_probe_reads_the_queue_the_ready_replicas_leave() -> None:
    # 10 s steps at 2 units/s; one replica serves 1 unit/s, the SLO allows 2 s of queueing.
    demand = Demand(np.full(12, 2.0), bin_s=10)
    config = SimConfig(capacity=1.0, slo_delay_s=2.0, slo_attainment=0.99)
    probe = SloProbe(demand, config)
    assert probe.observe(0.0, ready=2) is None  # nothing arrived before the first tick
    assert probe.observe(30.0, ready=1) is True  # served by 2 ready replicas: no queue
    assert probe.observe(60.0, ready=3) is False  # by 1: the queue grows 10 units a step
    assert probe.observe(90.0, ready=3) is False  # 3 replicas drain it at 1/s: 10 s delay left
    assert probe.observe(120.0, ready=3) is True  # drained


def bursty_trace(minutes: int) -> npt.NDArray[np.float64]:
    """10 s bins: 1/s, except one bin a minute at 9/s: the minute mean is 7/3 per second,
    and a forecast of minute means cannot see the burst."""
    minute = np.array([9.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    return np.tile(minute, minutes)


def test_the_slo_margin_learns_the_bursts_a_minute_forecast_misses() -> None:
    demand = Demand(bursty_trace(12 * 60), bin_s=10)
    config = SimConfig(capacity=1.0, cold_start_s=60.0)
    policy = Aiscaler(SeasonalNaiveForecaster(season_s=600.0), bin_s=10)
    outcome = evaluate(run_policy(policy, demand, config), demand, config)
    # The minute mean needs 3 replicas, under which the queue grows without end. A burst leaves
    # 10 (9 - c) units waiting, (90 - 10 c) / c s for the last of them: within 2 s from c = 7.5,
    # i.e. 8 replicas, a margin of 7.5 / (7/3) = 3.2 on the mean.
    assert 3.2 <= policy._memory.margin.factor < 3.5
    last_hour = outcome.ready_replicas[-360:]
    assert last_hour.mean() >= 7.5
