"""The tick asks the forecaster for FORECAST_BATCH series at a time (same forecasts, in order),
and only for the services whose history changed since their last forecast."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest

from aiscaler.core.planner import FORECAST_QUANTILES
from aiscaler.core.types import Forecast
from aiscaler.forecast.base import Forecaster
from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.handlers.measure import FORECAST_BATCH, _forecasts, forecast_in_batches
from aiscaler.metrics.source import History


class Recording:
    """Forecasts each series' first value flat, and records the size of every call."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def forecast(
        self,
        histories: Sequence[npt.NDArray[np.float64]],
        step_s: float,
        horizon: int,
        quantiles: Sequence[float],
    ) -> list[Forecast]:
        self.calls.append(len(histories))
        return [
            Forecast(step_s, tuple(quantiles), np.full((horizon, len(quantiles)), h[0]), self.name)
            for h in histories
        ]


@pytest.mark.parametrize(
    ("n", "batch", "calls"),
    [
        (0, 128, []),
        (1, 128, [1]),
        (128, 128, [128]),
        (129, 128, [128, 1]),
        (300, 128, [128, 128, 44]),
        (5, 1, [1, 1, 1, 1, 1]),
    ],
)
def test_calls_are_at_most_one_batch_and_results_keep_their_order(
    n: int, batch: int, calls: list[int]
) -> None:
    forecaster = Recording()
    histories = [np.full(10, float(i)) for i in range(n)]
    results = forecast_in_batches(forecaster, histories, 60.0, 3, batch)
    assert forecaster.calls == calls
    assert [float(r.values[0, 0]) for r in results] == [float(i) for i in range(n)]


def _histories(n: int) -> list[npt.NDArray[np.float64]]:
    """Daily-shaped demand of different scales, some with gaps, some too short for the model."""
    rng = np.random.default_rng(7)
    t = np.arange(288)
    out = []
    for i in range(n):
        y = rng.uniform(0.5, 50) * (1 + 0.4 * np.sin(t / 40 + rng.uniform(0, 6)))
        y = y * rng.lognormal(0, 0.1, t.size)
        if i % 7 == 0:
            y[rng.integers(0, 288, 40)] = np.nan
        if i % 11 == 0:
            y[:-10] = np.nan  # 10 observed points: below the model's minimum, falls back
        out.append(y)
    return out


def _model() -> Forecaster:
    from aiscaler.forecast import DEFAULT_CHECKPOINT
    from aiscaler.forecast.model import ModelForecaster

    return ModelForecaster.load(DEFAULT_CHECKPOINT)


@pytest.mark.parametrize("build", [HoltWintersForecaster, _model], ids=["holt_winters", "model"])
def test_batches_give_the_forecasts_of_one_call(build: Callable[[], Forecaster]) -> None:
    # The premise of batching: each series is forecast from its own history alone.
    forecaster = build()
    histories = _histories(FORECAST_BATCH + 45)
    whole = forecaster.forecast(histories, 60.0, 4, FORECAST_QUANTILES)
    batched = forecast_in_batches(forecaster, histories, 60.0, 4)
    assert len(batched) == len(whole)
    for one, many in zip(whole, batched, strict=True):
        assert (many.source, many.note) == (one.source, one.note)
        # float32 matrix products may round differently with another number of rows
        np.testing.assert_allclose(many.values, one.values, rtol=1e-5, atol=1e-9)


def test_the_model_runs_only_for_services_whose_history_changed() -> None:
    forecaster = Recording()
    op = SimpleNamespace(forecaster=forecaster, forecasts={})
    histories = {f"ns/s{i}": History(600.0, 60.0, np.full(10, float(i))) for i in range(5)}
    first = _forecasts(op, histories, 60.0, 3)
    assert forecaster.calls == [5]
    # The next tick in the same step: nothing new, nothing forecast, the same forecasts.
    again = _forecasts(op, dict(histories), 60.0, 3)
    assert forecaster.calls == [5] and again == first
    # A late sample changes one history; another service is new; one is gone.
    late = histories["ns/s1"].values.copy()
    late[-1] = 7.5
    histories |= {"ns/s1": History(600.0, 60.0, late), "ns/new": History(600.0, 60.0, np.ones(10))}
    del histories["ns/s4"]
    _forecasts(op, histories, 60.0, 3)
    assert forecaster.calls == [5, 2] and set(op.forecasts) == set(histories)
    # A new step (the window moves on) or another horizon: everything is forecast again.
    moved = {name: History(660.0, 60.0, h.values) for name, h in histories.items()}
    _forecasts(op, moved, 60.0, 3)
    _forecasts(op, moved, 60.0, 4)
    assert forecaster.calls[-2:] == [len(moved), len(moved)]
