"""The operator runs the model's network in numpy from the checkpoint's safetensors file: it must
compute what the torch network computes (within 1e-5), on every shipped checkpoint, and the
operator's runtime must not import torch."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from forecast_helpers import TINY, daily_like

from aiscaler.forecast import DEFAULT_CHECKPOINT
from aiscaler.forecast.data import TraceError, read_trace, resample
from aiscaler.forecast.model import (
    ModelConfig,
    ModelForecaster,
    QuantileNetwork,
    _gelu,
    gather_lags,
    input_lags,
    load_checkpoint,
    make_inputs,
    weight_shapes,
)
from aiscaler.forecast.network import QuantileMLP, load_network, torch_forward

ROOT = Path(__file__).resolve().parents[3]
# Every checkpoint folder shipped in the repository (config.json next to model.safetensors).
SHIPPED = sorted(p.parent for p in (ROOT / "model").rglob("model.safetensors"))
# The shared traces, where this checkout has them (real demand shapes as inputs; the drawn inputs
# below cover the whole input range either way).
TRACES = ROOT.parent / "shared" / "data" / "traces"
TOLERANCE = 1e-5


def test_the_shipped_checkpoint_is_among_those_checked() -> None:
    assert DEFAULT_CHECKPOINT.resolve() in [p.resolve() for p in SHIPPED]


def _trace_histories(cfg: ModelConfig, count: int) -> np.ndarray:
    """Windows of real demand traces, at the model's step, as the operator would see them."""
    rng = np.random.default_rng(0)
    out = []
    for path in sorted(TRACES.glob("*.csv"))[:6]:
        try:
            series = read_trace(path, "requests")
        except TraceError:  # a trace without a requests column
            series = read_trace(path, "value")
        if series.step_s < cfg.step_s:
            series = resample(series, cfg.step_s)
        values, length = series.values, 1440 + 180
        if len(values) >= length:
            out += [values[end - length : end] for end in rng.integers(length, len(values), count)]
    return np.array(out)


def _inputs(cfg: ModelConfig, histories: np.ndarray) -> np.ndarray:
    recent, seasonal = input_lags(cfg, cfg.step_s)
    rows = np.arange(len(histories))
    # Origins at the end and 40 steps earlier: the forecast's and a calibration origin's input.
    x = []
    for back in (1, 41):
        origins = np.full(len(histories), histories.shape[1] - back)
        block, _, _ = make_inputs(
            gather_lags(histories, rows, origins, recent),
            gather_lags(histories, rows, origins, seasonal),
            cfg,
        )
        x.append(block)
    return np.concatenate(x)


@pytest.mark.parametrize("checkpoint", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_numpy_network_equals_the_torch_network_on_real_and_extreme_inputs(
    checkpoint: Path,
) -> None:
    cfg, numpy_net = load_checkpoint(checkpoint)
    _, torch_net = load_network(checkpoint)
    rng = np.random.default_rng(1)
    real = _inputs(cfg, _trace_histories(cfg, 40)) if TRACES.is_dir() else np.empty((0,))
    # Inputs as make_inputs bounds them (log1p of the clip, masks 0/1), drawn anywhere in range.
    half = cfg.n_inputs // 2
    z = rng.uniform(0, math.log1p(cfg.input_clip), (600, cfg.n_inputs)).astype(np.float32)
    z[:, 1::2] = 0  # not a mask layout, but no less valid as a network input
    z[:, half:] = rng.random((600, cfg.n_inputs - half)) < 0.8
    for x in (real, z):
        if not len(x):
            continue
        expected = torch_forward(torch_net)(np.asarray(x, dtype=np.float32))
        got = numpy_net(np.asarray(x, dtype=np.float32))
        assert got.shape == expected.shape == (len(x), cfg.horizon, len(cfg.quantiles))
        np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("checkpoint", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_numpy_forecasts_equal_those_of_the_torch_network(checkpoint: Path) -> None:
    # The whole predictor (calibration, shadow scoring, zero mass) on either network.
    cfg, numpy_net = load_checkpoint(checkpoint)
    _, torch_net = load_network(checkpoint)
    rng = np.random.default_rng(2)
    t = np.arange(1440 + 180)
    histories = [
        rng.uniform(0.5, 500)
        * (1 + 0.4 * np.sin(2 * np.pi * t / 1440))
        * rng.gamma(20, 0.05, t.size)
        for _ in range(30)
    ]
    histories[3][-200:-150] = np.nan  # a gap
    histories[4] = np.where(rng.random(t.size) < 0.6, 0.0, histories[4])  # mostly zeros
    quantiles = [0.5, 0.9, 0.95, 0.99]
    ours = ModelForecaster(cfg, numpy_net).forecast(histories, cfg.step_s, 20, quantiles)
    theirs = ModelForecaster(cfg, torch_forward(torch_net)).forecast(
        histories, cfg.step_s, 20, quantiles
    )
    for a, b in zip(ours, theirs, strict=True):
        assert (a.source, a.note) == (b.source, b.note)
        np.testing.assert_allclose(a.values, b.values, rtol=TOLERANCE, atol=TOLERANCE)


def test_numpy_network_is_as_exact_as_torch_with_large_random_weights() -> None:
    # Weights far from trained ones: large activations, softplus past its threshold, wide GELU.
    # float32 then loses ~5e-5 of the outputs in either implementation; against the exact
    # (float64) network the numpy one must do as well as torch's own float32 pass.
    torch.manual_seed(3)
    net = QuantileMLP(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(8)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    x = np.random.default_rng(3).normal(0, 3, (1100, TINY.n_inputs)).astype(np.float32)
    got = QuantileNetwork(TINY, state)(x)
    torch32 = torch_forward(net)(x)
    with torch.no_grad():
        exact = net.double()(torch.from_numpy(x.astype(np.float64))).numpy()
    scale = np.maximum(1.0, np.abs(exact))

    def error(values: np.ndarray) -> float:
        return float(np.max(np.abs(values - exact) / scale))

    assert error(got) <= 2 * error(torch32)
    assert np.all(got[:, :, 1:] >= got[:, :, :-1])  # quantiles never cross


def test_gelu_matches_the_exact_erf_form() -> None:
    z = np.linspace(-12, 12, 20001).astype(np.float32)
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in z.astype(float)])
    got = _gelu(z.copy(), np.empty_like(z), np.empty_like(z))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=3e-7)


@pytest.mark.parametrize("cfg", [TINY, ModelConfig()], ids=["tiny", "default"])
def test_weight_shapes_are_those_of_the_torch_network(cfg: ModelConfig) -> None:
    torch_shapes = {k: tuple(v.shape) for k, v in QuantileMLP(cfg).state_dict().items()}
    assert weight_shapes(cfg) == torch_shapes


@pytest.mark.parametrize("steps", [1, TINY.horizon - 1, TINY.horizon])
def test_the_first_steps_alone_are_those_of_the_whole_horizon(steps: int) -> None:
    # The forecaster asks only for the steps it plans on; the output layer computes only those.
    torch.manual_seed(4)
    state = {k: v.numpy() for k, v in QuantileMLP(TINY).state_dict().items()}
    net = QuantileNetwork(TINY, state)
    x = np.random.default_rng(4).normal(0, 2, (700, TINY.n_inputs)).astype(np.float32)
    got = net(x, steps)
    assert got.shape == (700, steps, len(TINY.quantiles))
    np.testing.assert_allclose(got, net(x)[:, :steps], rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("steps", [0, TINY.horizon + 1])
def test_steps_beyond_the_horizon_are_refused(steps: int) -> None:
    state = {k: v.numpy() for k, v in QuantileMLP(TINY).state_dict().items()}
    with pytest.raises(ValueError, match=f"steps {steps} outside 1..{TINY.horizon}"):
        QuantileNetwork(TINY, state)(np.zeros((3, TINY.n_inputs), dtype=np.float32), steps)


def test_inputs_built_a_few_samples_at_a_time_give_the_same_forecasts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The forecaster builds its network inputs NETWORK_ROWS samples (series x past origin) at a
    # time to bound its memory; where the chunks fall must change no forecast.
    forecaster = ModelForecaster.load(DEFAULT_CHECKPOINT)
    rng = np.random.default_rng(5)
    t = np.arange(288)
    histories = [
        rng.uniform(0.5, 80) * (1 + 0.4 * np.sin(t / 40 + rng.uniform(0, 6))) for _ in range(40)
    ]
    histories[2][:-12] = np.nan  # too short for the model: its fallback
    histories[5][:] = 0.0  # nothing seen: forecast 0
    whole = forecaster.forecast(histories, 60.0, 12, [0.5, 0.9, 0.99])
    monkeypatch.setattr("aiscaler.forecast.model.NETWORK_ROWS", 7)
    chunked = forecaster.forecast(histories, 60.0, 12, [0.5, 0.9, 0.99])
    for one, many in zip(whole, chunked, strict=True):
        assert (many.source, many.note) == (one.source, one.note)
        np.testing.assert_allclose(many.values, one.values, rtol=TOLERANCE, atol=1e-9)
    assert {f.source for f in whole} >= {"model", "holt_winters"}


def test_empty_batch_gives_no_rows(tiny_checkpoint: Path) -> None:
    _, net = load_checkpoint(tiny_checkpoint)
    out = net(np.zeros((0, TINY.n_inputs), dtype=np.float32))
    assert out.shape == (0, TINY.horizon, len(TINY.quantiles))


def test_a_tiny_trained_checkpoint_forecasts_alike_in_numpy_and_torch(tiny_checkpoint: Path):
    cfg, numpy_net = load_checkpoint(tiny_checkpoint)
    _, torch_net = load_network(tiny_checkpoint)
    histories = [daily_like(200, 10, seed) for seed in range(5)]
    uncalibrated = replace(cfg, calibration_origins=0)
    a = ModelForecaster(uncalibrated, numpy_net).forecast(histories, 60, 4, [0.1, 0.5, 0.9])
    b = ModelForecaster(uncalibrated, torch_forward(torch_net)).forecast(
        histories, 60, 4, [0.1, 0.5, 0.9]
    )
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.values, y.values, rtol=TOLERANCE, atol=TOLERANCE)


def test_the_operator_runtime_forecasts_without_importing_torch() -> None:
    # What `aiscaler run` imports and does at start-up and in a tick, in a fresh interpreter.
    code = """
import sys
import numpy as np
import aiscaler.cli, aiscaler.handlers.operator, aiscaler.handlers.tick
aiscaler.cli.build_parser()  # imports every subcommand's module
from aiscaler.forecast import load_default_forecaster
forecaster, why = load_default_forecaster()
assert forecaster.name == "model", why
y = 10 + np.sin(np.arange(400) / 30)
(fc,) = forecaster.forecast([y], 60.0, 5, (0.5, 0.9))
assert fc.source in ("model", "seasonal_naive", "holt_winters"), fc
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
assert not loaded, loaded
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
