from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from forecast_helpers import daily_like, write_trace

from aiscaler.cli import main
from aiscaler.forecast.backtest_cli import parse_horizons
from aiscaler.forecast.model import load_checkpoint


def test_backtest_writes_the_contract_json(tmp_path: Path, tiny_checkpoint: Path, capsys):
    trace = write_trace(tmp_path / "t.csv", daily_like(120, 10))
    out = tmp_path / "bt.json"
    rc = main(
        ["backtest", "--trace", str(trace), "--horizons", "1,4", "--json", str(out),
         "--model", str(tiny_checkpoint)]
    )  # fmt: skip
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["trace"] == "t.csv" and result["column"] == "requests" and result["step_s"] == 60
    rows = {(r["model"], r["horizon_steps"]) for r in result["results"]}
    assert rows == {(m, h) for m in ("aiscaler", "seasonal_naive", "holt_winters") for h in (1, 4)}
    assert "relMASE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--horizons", "1,x"], "--horizons must be comma-separated integers"),
        (["--horizons", "0"], "--horizons must be positive"),
        (["--column", "tokens"], "no column 'tokens'"),
        (["--horizons", "100"], "a backtest at horizon 100 needs at least 101"),
        (["--model", "/nonexistent/ckpt"], "no model checkpoint folder"),
    ],
)
def test_backtest_errors_are_clear(tmp_path: Path, tiny_checkpoint: Path, capsys, args, message):
    trace = write_trace(tmp_path / "t.csv", daily_like(120, 10))
    argv = ["backtest", "--trace", str(trace), "--model", str(tiny_checkpoint), *args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_from_a_trace_csv_writes_a_checkpoint(tmp_path: Path, tiny_checkpoint: Path, capsys):
    trace = write_trace(tmp_path / "t.csv", daily_like(300, 10))
    out = tmp_path / "new"
    argv = ["train", "--trace", str(trace), "--out", str(out), "--steps", "3",
            "--init", str(tiny_checkpoint)]  # fmt: skip
    assert main(argv) == 0
    cfg, _ = load_checkpoint(out)
    assert cfg.training["series"] == ["t.csv:requests"] and cfg.training["steps"] == 3
    assert "checkpoint written" in capsys.readouterr().out


def test_a_fine_tune_may_train_on_the_latest_history(tmp_path: Path, tiny_checkpoint: Path):
    trace = write_trace(tmp_path / "t.csv", daily_like(300, 10))
    out = tmp_path / "recent"
    argv = ["train", "--trace", str(trace), "--out", str(out), "--steps", "3",
            "--init", str(tiny_checkpoint), "--test-fraction", "0"]  # fmt: skip
    assert main(argv) == 0
    cfg, _ = load_checkpoint(out)
    assert cfg.training["test_fraction"] == 0.0
    assert cfg.training["split"].startswith("earlier 100% of each series trains")
    assert cfg.training["split"].endswith("no test part")


def test_train_without_data_says_so(tmp_path: Path, capsys):
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    assert "nothing to train on" in capsys.readouterr().err


def test_train_from_prometheus_needs_the_whole_range(tmp_path: Path, capsys):
    argv = ["train", "--out", str(tmp_path / "x"), "--query", "sum(rate(x[1m]))"]
    assert main(argv) == 2
    assert "needs --prometheus-url, --query, --start and --end" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "expected"), [("1,5,15,30", [1, 5, 15, 30]), ("7", [7])])
def test_parse_horizons(text, expected):
    assert parse_horizons(text) == expected


def test_trace_with_a_gap_still_backtests(tmp_path: Path, tiny_checkpoint: Path):
    y = daily_like(120, 10)
    trace = write_trace(tmp_path / "t.csv", y)
    lines = trace.read_text().splitlines()
    trace.write_text("\n".join(lines[:50] + lines[53:]) + "\n")  # three bins missing
    out = tmp_path / "bt.json"
    assert main(["backtest", "--trace", str(trace), "--horizons", "1", "--json", str(out),
                 "--model", str(tiny_checkpoint)]) == 0  # fmt: skip
    for r in json.loads(out.read_text())["results"]:
        assert np.isfinite([r["mase"], r["wql"], r["coverage_80"]]).all()


def test_train_without_torch_says_to_install_the_train_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    # The operator's own install has no torch: `import torch` fails as it does there.
    monkeypatch.setitem(sys.modules, "torch", None)
    for module in ("aiscaler.forecast.training", "aiscaler.forecast.network"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    trace = write_trace(tmp_path / "t.csv", daily_like(300, 10))
    argv = ["train", "--trace", str(trace), "--out", str(tmp_path / "new"), "--steps", "3"]
    assert main(argv) == 2
    out = capsys.readouterr().err
    assert "aiscaler train: error: training needs torch" in out
    assert "pip install 'aiscaler[train]'" in out
    assert not (tmp_path / "new").exists()
