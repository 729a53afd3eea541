from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from forecast_helpers import TINY, daily_like, network_only

from aiscaler.forecast import load_default_forecaster
from aiscaler.forecast import model as model_module
from aiscaler.forecast.baselines import HoltWintersForecaster
from aiscaler.forecast.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ZERO_NOTE,
    CheckpointError,
    ModelForecaster,
    QuantileNetwork,
    gather_lags,
    input_lags,
    interpolate_quantiles,
    load_checkpoint,
    read_weights,
    with_zero_mass,
)
from aiscaler.forecast.network import (
    QuantileMLP,
    count_parameters,
    load_network,
    pinball_loss,
    save_checkpoint,
)

nan = np.nan


def test_input_lags_cover_recent_context_and_yesterday_around_the_horizon():
    recent, seasonal = input_lags(TINY, 60.0)  # season = 10 steps
    np.testing.assert_array_equal(recent, [7, 6, 5, 4, 3, 2, 1, 0])
    # yesterday from 1 step before the origin (before=2) to 4 steps after it
    np.testing.assert_array_equal(seasonal, [11, 10, 9, 8, 7, 6])


def test_no_seasonal_window_when_the_season_is_not_longer_than_the_horizon():
    _, seasonal = input_lags(TINY, 150.0)  # season = 4 steps = horizon
    assert seasonal.size == 0


def test_gather_lags_marks_points_before_the_start_missing():
    y = np.arange(10.0)[None, :]
    out = gather_lags(y, np.array([0, 0]), np.array([9, 1]), np.array([3, 1, 0]))
    np.testing.assert_array_equal(out, [[6, 8, 9], [nan, 0, 1]])


def test_pinball_loss_by_hand():
    pred = torch.tensor([[[1.0, 2.0]]])  # quantiles 0.1 and 0.9 of one step
    target = torch.tensor([[3.0]])
    # q=0.1: 0.1 * (3 - 1) = 0.2; q=0.9: 0.9 * (3 - 2) = 0.9; mean 0.55
    assert float(pinball_loss(pred, target, torch.tensor([0.1, 0.9]))) == pytest.approx(0.55)


def test_network_quantiles_never_cross_whatever_the_weights():
    torch.manual_seed(1)
    net = QuantileMLP(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
        out = net(torch.randn(64, TINY.n_inputs) * 5)
    assert out.shape == (64, TINY.horizon, 4)
    assert torch.all(out[:, :, 1:] >= out[:, :, :-1])


def test_default_size_stays_well_under_a_million_parameters():
    from aiscaler.forecast.model import ModelConfig

    assert count_parameters(QuantileMLP(ModelConfig())) < 1_000_000


def test_interpolate_quantiles_is_exact_on_trained_levels_and_linear_between():
    v = np.array([[10.0, 20.0, 40.0]])
    out = interpolate_quantiles(v, (0.1, 0.5, 0.9), (0.1, 0.3, 0.5, 0.7, 0.9))
    np.testing.assert_allclose(out, [[10, 15, 20, 30, 40]])


def test_checkpoint_round_trip_gives_the_same_forecasts(tiny_checkpoint: Path, tmp_path: Path):
    f1 = ModelForecaster.load(tiny_checkpoint)
    cfg, net = load_network(tiny_checkpoint)
    save_checkpoint(tmp_path / "copy", cfg, net)
    f2 = ModelForecaster.load(tmp_path / "copy")
    h = [daily_like(40, 10)]
    np.testing.assert_array_equal(
        f1.forecast(h, 60, 4, [0.1, 0.5, 0.9])[0].values,
        f2.forecast(h, 60, 4, [0.1, 0.5, 0.9])[0].values,
    )
    config = json.loads((tiny_checkpoint / CONFIG_FILE).read_text())
    for key in ("format_version", "context_steps", "step_s", "horizon", "quantiles"):
        assert key in config
    assert "normalisation" in config


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / WEIGHTS_FILE).unlink(), "lacks model.safetensors"),
        (lambda d: (d / CONFIG_FILE).unlink(), "lacks config.json"),
        (lambda d: (d / CONFIG_FILE).write_text("{not json"), "not readable JSON"),
        (lambda d: (d / WEIGHTS_FILE).write_bytes(b"garbage"), "not a readable safetensors"),
        (lambda d: _edit_config(d, format_version=99), "format version 99"),
        (lambda d: _edit_config(d, format="something-else"), "not an aiscaler forecast"),
        (lambda d: _edit_config(d, normalisation={"scale": "max"}), "normalisation"),
        (lambda d: _edit_config(d, hidden=16), "weights do not match"),
        (lambda d: _edit_config(d, horizon="soon"), "malformed config value"),
        (lambda d: _edit_config(d, quantiles=[0.1, 0.9]), "contain 0.5"),
    ],
)
def test_incompatible_checkpoints_are_refused_with_the_reason(tiny_checkpoint, damage, message):
    damage(tiny_checkpoint)
    with pytest.raises(CheckpointError, match=message):
        ModelForecaster.load(tiny_checkpoint)


def test_missing_checkpoint_folder_is_refused(tmp_path: Path):
    with pytest.raises(CheckpointError, match="no model checkpoint folder"):
        ModelForecaster.load(tmp_path / "nowhere")


def test_forecasts_scale_with_the_series(tiny_checkpoint: Path):
    f = network_only(tiny_checkpoint)
    y = daily_like(40, 10)
    small, big = f.forecast([y, 1000 * y], 60, 4, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(big.values, 1000 * small.values, rtol=1e-4)
    assert small.source == "model" and small.note == ""


def test_batched_equals_one_by_one(tiny_checkpoint: Path):
    f = ModelForecaster.load(tiny_checkpoint)
    hs = [daily_like(n, 10, seed=n) for n in (6, 12, 40)]
    batched = f.forecast(hs, 60, 4, [0.5, 0.9])
    for h, fb in zip(hs, batched, strict=True):
        alone = f.forecast([h], 60, 4, [0.5, 0.9])[0].values
        np.testing.assert_allclose(fb.values, alone, rtol=1e-5)  # float32 batch arithmetic


def test_short_history_falls_back_to_holt_winters_and_says_why(tiny_checkpoint: Path):
    f = network_only(tiny_checkpoint)
    # 3 observed points (minimum 4), and a longer series whose recent context is mostly gaps.
    gappy = daily_like(40, 10)
    gappy[-8:-2] = nan
    short, holes, ok = f.forecast([np.ones(3), gappy, daily_like(40, 10)], 60, 4, [0.5])
    for fc, seen in ((short, 3), (holes, 2)):
        assert fc.source == "holt_winters"
        assert (
            f"{seen} observed points in the last 8 steps, below the model's minimum of 4" in fc.note
        )
    assert ok.source == "model"


def test_all_zero_input_forecasts_zero_and_says_so(tiny_checkpoint: Path):
    (fc,) = ModelForecaster.load(tiny_checkpoint).forecast([np.zeros(40)], 60, 4, [0.5, 0.9])
    np.testing.assert_array_equal(fc.values, 0)
    assert fc.note == ZERO_NOTE


def test_gaps_in_the_input_still_give_a_model_forecast(tiny_checkpoint: Path):
    y = daily_like(40, 10)
    y[[30, 33, 36]] = nan
    (fc,) = network_only(tiny_checkpoint).forecast([y], 60, 4, [0.1, 0.5, 0.9])
    assert fc.source == "model" and np.isfinite(fc.values).all()
    assert np.all(np.diff(fc.values, axis=1) >= 0) and np.all(fc.values >= 0)


def test_longer_horizon_than_the_model_uses_the_fallback(tiny_checkpoint: Path):
    (fc,) = ModelForecaster.load(tiny_checkpoint).forecast([daily_like(40, 10)], 60, 6, [0.5])
    assert fc.source == "holt_winters" and fc.horizon == 6
    assert "horizon 6 > the model's 4 steps" in fc.note


def test_quantiles_outside_the_trained_range_use_the_fallback(tiny_checkpoint: Path):
    f = ModelForecaster.load(tiny_checkpoint)
    (fc,) = f.forecast([daily_like(40, 10)], 60, 2, [0.5, 0.999])
    assert fc.source == "holt_winters"
    assert "quantiles [0.5, 0.999] outside the model's [0.1, 0.99]" in fc.note


def test_default_forecaster_falls_back_to_holt_winters_without_a_checkpoint(monkeypatch, tmp_path):
    import aiscaler.forecast as forecast

    monkeypatch.setattr(forecast, "DEFAULT_CHECKPOINT", tmp_path / "absent")
    f, reason = load_default_forecaster()
    assert isinstance(f, HoltWintersForecaster)
    assert "no model checkpoint folder" in reason and "holt_winters" in reason


def test_default_forecaster_uses_the_checkpoint_when_present(monkeypatch, tiny_checkpoint):
    import aiscaler.forecast as forecast

    monkeypatch.setattr(forecast, "DEFAULT_CHECKPOINT", tiny_checkpoint)
    f, reason = load_default_forecaster()
    assert isinstance(f, ModelForecaster) and str(tiny_checkpoint) in reason


def test_an_explicit_checkpoint_that_does_not_load_falls_back_and_says_why(tmp_path: Path):
    f, reason = load_default_forecaster(tmp_path / "absent")
    assert isinstance(f, HoltWintersForecaster)
    assert str(tmp_path / "absent") in reason and "holt_winters" in reason


def test_config_validation_rejects_nonsense():
    with pytest.raises(CheckpointError, match="horizon must be at least 1"):
        replace(TINY, horizon=0).validate()


def _raw_network_forecast(f: ModelForecaster, y: np.ndarray) -> np.ndarray:
    """The network's own quantiles for one history (no calibration), in demand units."""
    uncalibrated = ModelForecaster(replace(f.cfg, calibration_origins=0), f.net)
    return uncalibrated.forecast([y], 60, 4, list(f.cfg.quantiles))[0].values


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after a short training on noisy periodic series like the test's."""
    from aiscaler.forecast.data import Series
    from aiscaler.forecast.training import TrainConfig, train

    data = [Series(f"s{i}", "requests", 60.0, 0.0, daily_like(400, 10, i)) for i in range(3)]
    folder = tmp_path_factory.mktemp("trained") / "ckpt"
    train(data, TrainConfig(steps=150, batch_size=64, learning_rate=3e-3, model=TINY), folder,
          log=lambda _: None)  # fmt: skip
    return folder


def test_calibration_scales_the_intervals_around_the_unchanged_median(
    trained_tiny: Path, monkeypatch: pytest.MonkeyPatch
):
    # Shadow scoring off: on this series Holt-Winters does better than the tiny model.
    monkeypatch.setattr(model_module, "SHADOW_MARGIN", np.inf)
    f = ModelForecaster.load(trained_tiny)
    y = daily_like(200, 10, seed=5) * np.random.default_rng(6).gamma(5, 0.2, 200)
    raw = _raw_network_forecast(f, y)
    (fc,) = f.forecast([y], 60, 4, list(f.cfg.quantiles))
    assert fc.source == "model"
    median = TINY.quantiles.index(0.5)
    np.testing.assert_allclose(fc.values[:, median], raw[:, median], rtol=1e-6)
    ratio = (fc.values[:, -1] - fc.values[:, median]) / (raw[:, -1] - raw[:, median])
    assert np.allclose(ratio, ratio[0], rtol=1e-4)  # one factor per series
    assert 0.5 <= ratio[0] <= 4.0 and ratio[0] != pytest.approx(1.0)


@pytest.mark.parametrize(
    ("zero_share", "zeroed"),
    [
        (0.0, [False, False, False, False, False]),  # never 0: the network's quantiles
        (0.09, [False, False, False, False, False]),  # below the lowest level asked for
        (0.1, [True, False, False, False, False]),  # a level equal to the share is 0
        (0.3, [True, True, False, False, False]),
        (0.49, [True, True, False, False, False]),
        (0.5, [True, True, True, False, False]),  # zeros half the time: the median is 0
        (0.95, [True, True, True, False, False]),  # never above the median
        (1.0, [True, True, True, False, False]),
    ],
)
def test_zero_mass_zeroes_the_levels_it_covers_up_to_the_median(zero_share, zeroed):
    quantiles = [0.1, 0.25, 0.5, 0.9, 0.99]
    values = np.tile([1.0, 2.0, 3.0, 4.0, 5.0], (1, 2, 1))  # (1 series, 2 steps, 5 levels)
    out = with_zero_mass(values, quantiles, np.array([zero_share]))
    expected = np.where(zeroed, 0.0, [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(out, np.tile(expected, (1, 2, 1)))


def test_a_mostly_zero_series_gets_zero_low_quantiles_and_keeps_its_upper_ones(
    tiny_checkpoint: Path,
):
    # Arrivals of a rarely used service: 0 in ~70% of minutes. The network here always says
    # "the recent mean level" with narrow quantiles, never 0. With the zero mass, q0.1, q0.25 and
    # the median are 0; above the median is what the calibrated network says.
    rng = np.random.default_rng(0)
    sparse = np.where(rng.random(200) < 0.3, rng.gamma(2.0, 50.0, 200), 0.0)
    cfg = load_checkpoint(tiny_checkpoint)[0]
    weights = read_weights(tiny_checkpoint, cfg)
    weights["out.weight"][:] = 0.0
    levels = weights["out.bias"].reshape(TINY.horizon, len(TINY.quantiles))
    levels[:] = -6.0  # quantile gaps of softplus(-6) = 0.25% of the level
    levels[:, TINY.median_index] = 1.0
    f = ModelForecaster(cfg, QuantileNetwork(cfg, weights))
    q = [0.1, 0.25, 0.5, 0.9, 0.99]
    (fc,) = f.forecast([sparse], 60, 4, q)
    assert (fc.source, fc.note) == ("model", "")
    without = _without_zero_mass(f, sparse, q)
    assert np.all(without > 0)
    np.testing.assert_array_equal(fc.values[:, :3], 0.0)
    np.testing.assert_array_equal(fc.values[:, 3:], without[:, 3:])


def _without_zero_mass(f: ModelForecaster, y: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """The forecast of `y` with the zero-mass step switched off (calibration kept)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_module, "with_zero_mass", lambda values, _q, _share: values)
        return f.forecast([y], 60, 4, quantiles)[0].values


def test_too_little_past_for_calibration_leaves_the_network_output(tiny_checkpoint: Path):
    f = ModelForecaster.load(tiny_checkpoint)
    y = daily_like(12, 10)  # enough for the model, too short for 20 calibration targets
    (fc,) = f.forecast([y], 60, 4, list(f.cfg.quantiles))
    np.testing.assert_allclose(fc.values, _raw_network_forecast(f, y), rtol=1e-6)


def test_a_series_where_seasonal_naive_did_better_gets_seasonal_naive(tiny_checkpoint: Path):
    # An exactly repeating series: seasonal naive is perfect, an untrained model is not.
    y = np.tile([5.0, 9.0, 20.0, 40.0, 30.0, 12.0, 7.0, 3.0, 1.0, 2.0], 20)
    (fc,) = ModelForecaster.load(tiny_checkpoint).forecast([y], 60, 4, [0.5])
    assert fc.source == "seasonal_naive"
    assert "the model's recent error on this series was above seasonal_naive's" in fc.note
    np.testing.assert_array_equal(fc.values[:, 0], [5, 9, 20, 40])


def test_a_series_where_holt_winters_did_better_gets_holt_winters(tiny_checkpoint: Path):
    # A steady climb: seasonal naive lags a whole season behind, the untrained model is off,
    # Holt-Winters' level follows it.
    y = 100.0 + 2.0 * np.arange(200)
    f = ModelForecaster.load(tiny_checkpoint)
    (fc,) = f.forecast([y], 60, 4, [0.5])
    assert fc.source == "holt_winters"
    assert "the model's recent error on this series was above holt_winters's" in fc.note
    (hw,) = HoltWintersForecaster(season_s=f.cfg.season_s).forecast([y], 60, 4, [0.5])
    np.testing.assert_array_equal(fc.values, hw.values)


def test_a_series_shorter_than_a_season_where_naive_did_better_gets_naive(tiny_checkpoint: Path):
    # At a 10 s step the tiny model's season (600 s) is 60 steps: 50 points are less than one,
    # so the reference (as in the backtest) is naive. A level that jumps now and then: naive is
    # almost always exact, the untrained network is not.
    y = np.repeat([10.0, 50.0, 20.0, 80.0, 30.0], 10)
    (fc,) = ModelForecaster.load(tiny_checkpoint).forecast([y], 10, 4, [0.5])
    assert fc.source == "seasonal_naive"
    assert "the model's recent error on this series was above seasonal_naive's" in fc.note
    assert "history shorter than one season (60 steps): used naive" in fc.note
    np.testing.assert_array_equal(fc.values[:, 0], [30, 30, 30, 30])
