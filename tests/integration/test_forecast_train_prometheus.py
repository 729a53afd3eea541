"""`aiscaler train` from a Prometheus range query, against a real Prometheus with history."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from harness.prometheus import PrometheusFactory, Series

from aiscaler.cli import main
from aiscaler.forecast.model import ModelConfig, load_checkpoint
from aiscaler.forecast.network import QuantileMLP, save_checkpoint
from aiscaler.forecast.train_cli import series_from_prometheus

STEP = 60
HOURS = 4
# Prometheus fills a missing sample from the previous one for up to 5 minutes (lookback delta):
# a 20-minute hole leaves 15 minutes with no value.
HOLE = range(120, 140)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


@pytest.fixture
def history(prometheus_factory: PrometheusFactory):
    t0 = math.floor(time.time() / 3600) * 3600 - (HOURS + 1) * 3600
    n = HOURS * 60
    values = {
        "a": [10 + 5 * math.sin(i / 20) for i in range(n)],
        "b": [1000.0 + i for i in range(n)],
    }
    series = [
        Series(
            "aiscaler_test_demand",
            {"service": name},
            [(t0 + i * STEP, v) for i, v in enumerate(vals) if name != "a" or i not in HOLE],
        )
        for name, vals in values.items()
    ]
    server = prometheus_factory(history=series)
    return server, t0, n, values


def test_range_query_becomes_one_regular_series_per_label_set(history):
    server, t0, n, values = history
    got = series_from_prometheus(
        server.url, "aiscaler_test_demand", _iso(t0), _iso(t0 + (n - 1) * STEP), STEP
    )
    by_service = {s.name.split('"service": "')[1].split('"')[0]: s for s in got}
    assert set(by_service) == {"a", "b"}
    b = by_service["b"]
    assert b.step_s == STEP and len(b) == n
    np.testing.assert_allclose(b.values, values["b"])
    a = by_service["a"].values
    assert np.isnan(a[HOLE.start + 6 : HOLE.stop]).all()  # beyond the 5-minute lookback
    keep = [i for i in range(n) if i < HOLE.start or i >= HOLE.stop]
    np.testing.assert_allclose(a[keep], np.array(values["a"])[keep])


def test_train_fine_tunes_from_prometheus_history(history, tmp_path: Path, capsys):
    server, t0, n, _ = history
    cfg = ModelConfig(context_steps=8, season_before_steps=2, horizon=4, hidden=8, blocks=1,
                      quantiles=(0.1, 0.5, 0.9, 0.99), min_history_steps=4)  # fmt: skip
    save_checkpoint(tmp_path / "init", cfg, QuantileMLP(cfg))
    argv = [
        "train", "--out", str(tmp_path / "tuned"), "--init", str(tmp_path / "init"),
        "--steps", "3", "--prometheus-url", server.url, "--query", "aiscaler_test_demand",
        "--start", _iso(t0), "--end", _iso(t0 + (n - 1) * STEP),
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().out
    tuned, _ = load_checkpoint(tmp_path / "tuned")
    assert len(tuned.training["series"]) == 2


def test_an_empty_answer_and_an_unreachable_server_are_clear_errors(history):
    server, t0, _, _ = history
    with pytest.raises(ValueError, match="the query returned no series"):
        series_from_prometheus(server.url, "no_such_metric", _iso(t0), _iso(t0 + 600), STEP)
    with pytest.raises(ValueError, match=r"Prometheus range query to http://127\.0\.0\.1:9 failed"):
        series_from_prometheus("http://127.0.0.1:9", "x", _iso(t0), _iso(t0 + 600), STEP)
