from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from forecast_helpers import TINY, daily_like, network_only
from safetensors.torch import load_file

from aiscaler.forecast.data import Series, first_test_index
from aiscaler.forecast.model import CONFIG_FILE, ModelForecaster, load_checkpoint
from aiscaler.forecast.network import load_network
from aiscaler.forecast.training import (
    TrainConfig,
    Validation,
    first_holdout_index,
    sample_batch,
    series_probabilities,
    split_windows,
    train,
)

FAST = TrainConfig(steps=5, batch_size=32, log_every=1000, model=TINY)


def _series(n: int = 200, seed: int = 0) -> Series:
    return Series(f"s{seed}", "requests", 60.0, 0.0, daily_like(n, 10, seed))


@pytest.mark.parametrize(
    ("n", "fraction", "cut"),
    [
        (200, 0.0, 150),  # training part = the first 150 points; nothing held out
        (200, 0.2, 120),  # the latest 30 of those 150 held out
        (200, 0.5, 75),
        (201, 0.2, 120),  # 150 training points (the test part rounds up: 51)
    ],
)
def test_the_held_out_tail_is_the_latest_part_of_the_training_part(n, fraction, cut):
    assert first_test_index(n) == 150
    assert first_holdout_index(first_test_index(n), fraction) == cut
    (trained,), validation = split_windows([_series(n)], TINY, fraction)
    # Trained samples can neither read nor target the tail: their data stops before it.
    assert len(trained.values) == cut
    assert trained.last_origin + TINY.horizon == cut - 1
    if fraction == 0:
        assert validation == []
        return
    (held,) = validation
    # Validation targets lie inside the tail (origin + 1 >= cut), never in the test part.
    assert held.first_origin + 1 == cut
    assert held.last_origin + TINY.horizon == first_test_index(n) - 1
    assert len(held.values) == first_test_index(n)


@pytest.mark.parametrize(("test_fraction", "end"), [(0.25, 150), (0.1, 180), (0.0, 200)])
def test_the_test_part_is_never_read_and_may_be_empty(test_fraction, end):
    (trained,), (held,) = split_windows([_series(200)], TINY, 0.2, test_fraction)
    assert len(trained.values) == first_holdout_index(end, 0.2)  # stops before the held-out tail
    # Validation reads up to the test part; without one, up to the latest point.
    assert len(held.values) == end
    assert held.last_origin + TINY.horizon == end - 1


def test_a_tail_shorter_than_the_horizon_gives_no_validation_window():
    # 24 points: 18 train, of which 10% = 2 held out: fewer than the horizon's 4 targets.
    _, validation = split_windows([_series(24)], TINY, 0.1)
    assert validation == []


def test_series_too_short_to_train_on_are_named():
    with pytest.raises(ValueError, match="no series is long enough to train on \\(s0\\)"):
        split_windows([_series(10)], TINY, 0.2)


def test_sample_batch_shapes_and_augmented_gaps():
    rng = np.random.default_rng(0)
    cfg = replace(FAST, gap_probability=1.0, max_gap_fraction=0.5)
    trained, _ = split_windows([_series(), _series(seed=1)], TINY, 0.2)
    x, t, ok = sample_batch(rng, trained, cfg, 64)
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


def _with_tail(values: np.ndarray, cut: int, tail: float) -> Series:
    changed = values.copy()
    changed[cut:] = tail
    return Series("s0", "requests", 60.0, 0.0, changed)


@pytest.mark.parametrize(("fraction", "same_weights"), [(0.2, True), (0.0, False)])
def test_the_held_out_tail_never_trains_the_network(tmp_path: Path, fraction, same_weights):
    # Two series equal up to 120 (the held-out start for 200 points at 0.2) and different after.
    # One validation, at the last step, so checkpoint selection cannot tell them apart either.
    # Control: with nothing held out, the same change does reach the weights.
    values = daily_like(200, 10)
    cfg = replace(FAST, holdout_fraction=fraction, log_every=FAST.steps)
    train([_with_tail(values, 120, 1.0)], cfg, tmp_path / "a", log=lambda _: None)
    train([_with_tail(values, 120, 500.0)], cfg, tmp_path / "b", log=lambda _: None)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a) == same_weights


def test_the_weights_kept_are_those_with_the_lowest_validation_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The validation loss is scripted (lowest at the 2nd of 4 evaluations); each evaluation also
    # snapshots the weights it saw, so the written weights can be compared with them.
    scripted = iter([0.5, 0.2, 0.3, 0.4])
    seen: list[dict[str, np.ndarray]] = []

    def scripted_loss(self: Validation, net: torch.nn.Module) -> float:
        seen.append({k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(Validation, "loss", scripted_loss)
    cfg = replace(FAST, steps=24, log_every=6)
    record = train([_series(400)], cfg, tmp_path / "v", log=lambda _: None)
    assert (record["selected_step"], record["validation_pinball"]) == (12, 0.2)
    written = load_file(str(tmp_path / "v" / "model.safetensors"))
    assert all(np.array_equal(written[k].numpy(), seen[1][k]) for k in written)
    assert not all(np.array_equal(written[k].numpy(), seen[3][k]) for k in written)


def test_the_validation_loss_is_the_pinball_loss_on_the_held_out_tail(tmp_path: Path):
    data = [_series(400), _series(400, seed=1)]
    record = train(data, replace(FAST, log_every=FAST.steps), tmp_path / "p", log=lambda _: None)
    _, validation = split_windows(data, TINY, FAST.holdout_fraction)
    _, net = load_network(tmp_path / "p")
    loss = Validation(validation, FAST, torch.device("cpu")).loss(net)
    assert record["validation_series"] == 2 and record["selected_step"] == FAST.steps
    assert loss == pytest.approx(record["validation_pinball"], abs=1e-5)


def test_the_validation_loss_weighs_each_series_by_its_relative_error(tiny_checkpoint: Path):
    # Geometric mean over series: a series with 100x smaller losses still counts as much.
    _, net = load_network(tiny_checkpoint)
    _, windows = split_windows([_series(400), _series(400, seed=1)], TINY, 0.2)
    one = [Validation([w], FAST, torch.device("cpu")).loss(net) for w in windows]
    both = Validation(windows, FAST, torch.device("cpu")).loss(net)
    assert both == pytest.approx(np.sqrt(one[0] * one[1]), rel=1e-6)


@pytest.mark.parametrize(
    ("power", "expected"),
    [
        (0.0, [1 / 3, 1 / 3, 1 / 3]),  # every series equally often
        (1.0, [1 / 6, 1 / 6, 2 / 3]),  # every origin equally often
        (0.5, [0.25, 0.25, 0.5]),  # in between: sqrt(100), sqrt(100), sqrt(400)
    ],
)
def test_series_are_drawn_by_their_number_of_origins_to_a_power(power, expected):
    # 100, 100 and 400 training origins: 179 points = 134 training = 107 trained + 27 held out;
    # the origins run from 3 (4 points of history) to 107 - 1 - 4 (the horizon). 679 -> 407.
    windows, _ = split_windows([_series(n) for n in (179, 179, 679)], TINY, 0.2)
    assert [w.last_origin - w.first_origin + 1 for w in windows] == [100, 100, 400]
    probabilities = series_probabilities(windows, replace(FAST, length_weight_power=power))
    np.testing.assert_allclose(probabilities, expected)


def test_the_checkpoint_records_its_held_out_fraction(tmp_path: Path):
    train([_series()], replace(FAST, holdout_fraction=0.3), tmp_path / "h", log=lambda _: None)
    cfg, _ = load_checkpoint(tmp_path / "h")
    assert cfg.holdout_fraction == 0.3 and cfg.training["holdout_fraction"] == 0.3
    assert "latest 30% is held out" in cfg.training["split"]


def test_a_checkpoint_from_before_the_hold_out_reads_as_nothing_held_out(
    tmp_path: Path, tiny_checkpoint: Path
):
    config = json.loads((tiny_checkpoint / CONFIG_FILE).read_text())
    config["training"] = {"series": ["s0:requests"], "steps": 10000}  # an older record
    (tiny_checkpoint / CONFIG_FILE).write_text(json.dumps(config))
    assert ModelForecaster.load(tiny_checkpoint).cfg.holdout_fraction == 0.0


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
        ({"holdout_fraction": 1.0}, "holdout_fraction must be in \\[0, 1\\), got 1.0"),
        ({"holdout_fraction": -0.1}, "holdout_fraction must be in \\[0, 1\\), got -0.1"),
        ({"test_fraction": 1.0}, "test_fraction must be in \\[0, 1\\), got 1.0"),
        ({"test_fraction": -0.1}, "test_fraction must be in \\[0, 1\\), got -0.1"),
    ],
)
def test_config_typos_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(settings)


def test_config_from_dict_reads_model_settings():
    model = {k: v for k, v in asdict(TINY).items() if k != "training"}
    cfg = TrainConfig.from_dict({"steps": 7, "model": model})
    assert cfg.steps == 7 and cfg.model.quantiles == TINY.quantiles
