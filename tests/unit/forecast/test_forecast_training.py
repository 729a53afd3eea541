from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from forecast_helpers import TINY, daily_like, network_only
from safetensors.torch import load_file

from aiscaler.forecast.data import Series, first_test_index
from aiscaler.forecast.model import load_checkpoint
from aiscaler.forecast.training import TrainConfig, sample_batch, train, training_windows

FAST = TrainConfig(steps=5, batch_size=32, log_every=1000, model=TINY)


def _series(n: int = 200, seed: int = 0) -> Series:
    return Series(f"s{seed}", "requests", 60.0, 0.0, daily_like(n, 10, seed))


def test_training_windows_never_reach_the_test_part():
    s = _series(200)
    (w,) = training_windows([s], TINY)
    assert w.last_origin + TINY.horizon < first_test_index(200)
    assert len(w.values) == first_test_index(200)


def test_series_too_short_to_train_on_are_named():
    with pytest.raises(ValueError, match="no series is long enough to train on \\(s0\\)"):
        training_windows([_series(10)], TINY)


def test_sample_batch_shapes_and_augmented_gaps():
    rng = np.random.default_rng(0)
    cfg = replace(FAST, gap_probability=1.0, max_gap_fraction=0.5)
    x, t, ok = sample_batch(rng, training_windows([_series(), _series(seed=1)], TINY), cfg, 64)
    assert x.shape == (64, TINY.n_inputs) and t.shape == (64, TINY.horizon) and ok.shape == (64,)
    masks = x[:, TINY.context_steps : 2 * TINY.context_steps]  # recent-context mask block
    assert 0 < masks.mean() < 1  # some points were dropped, most kept
    assert np.all(t >= 0)


def test_training_is_seeded_and_writes_a_loadable_checkpoint(tmp_path: Path):
    data = [_series(), _series(seed=1)]
    record = train(data, FAST, tmp_path / "a", log=lambda _: None)
    train(data, FAST, tmp_path / "b", log=lambda _: None)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    cfg, _ = load_checkpoint(tmp_path / "a")
    assert cfg.training["steps"] == 5 and cfg.training["series"] == ["s0:requests", "s1:requests"]
    assert record["parameters"] > 0
    (fc,) = network_only(tmp_path / "a").forecast([daily_like(40, 10)], 60, 4, [0.5])
    assert fc.source == "model" and np.isfinite(fc.values).all()


def test_training_lowers_the_loss(tmp_path: Path):
    losses: list[float] = []
    cfg = replace(FAST, steps=40, log_every=20, learning_rate=3e-3)
    train([_series(400)], cfg, tmp_path / "c", log=lambda m: losses.append(float(m.split()[3])))
    assert losses[-1] < losses[0]


def test_fine_tuning_keeps_the_checkpoint_shape(tmp_path: Path, tiny_checkpoint: Path):
    other_shape = replace(FAST, model=replace(TINY, hidden=16))
    train([_series()], other_shape, tmp_path / "ft", init_checkpoint=tiny_checkpoint, log=print)
    cfg, _ = load_checkpoint(tmp_path / "ft")
    assert cfg.hidden == TINY.hidden and cfg.training["fine_tuned_from"] == str(tiny_checkpoint)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stepz": 3}, "unknown training settings: \\['stepz'\\]"),
        ({"model": {"hiden": 3}}, "unknown model settings: \\['hiden'\\]"),
    ],
)
def test_config_typos_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(settings)


def test_config_from_dict_reads_model_settings():
    model = {k: v for k, v in asdict(TINY).items() if k != "training"}
    cfg = TrainConfig.from_dict({"steps": 7, "model": model})
    assert cfg.steps == 7 and cfg.model.quantiles == TINY.quantiles
