"""`aiscaler simulate`: the BENCHMARK.md contract (flags, JSON fields) and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiscaler.cli import main

POLICY_FIELDS = {
    "policy",
    "variant",
    "params",
    "gpu_hours",
    "slo_attainment",
    "p99_delay_s",
    "worst_5min_attainment",
    "scale_events",
    "cold_starts",
}
TOP_FIELDS = {
    "trace",
    "column",
    "bin_s",
    "capacity",
    "cold_start_s",
    "gpus_per_replica",
    "slo_delay_s",
    "slo_attainment_target",
    "policies",
}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Two hours of per-minute arrivals with a burst."""
    counts = np.full(120, 600)
    counts[60:75] = 1800
    path = tmp_path / "burst.csv"
    rows = "\n".join(f"{60 * i},{c}" for i, c in enumerate(counts))
    path.write_text("timestamp_s,requests\n" + rows + "\n")
    return path


def test_json_has_every_contract_field_and_the_ratios(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    rc = main(
        [
            "simulate",
            "--trace",
            str(trace),
            "--policies",
            "hpa,kpa,static,oracle",
            "--capacity",
            "4",
            "--cold-start",
            "60",
            "--gpus-per-replica",
            "2",
            "--slo-delay",
            "1.5",
            "--slo-attainment",
            "0.95",
            "--tune",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc.keys() >= TOP_FIELDS
    assert (doc["trace"], doc["column"], doc["bin_s"], doc["capacity"]) == (
        "burst.csv",
        "requests",
        60,
        4,
    )
    assert (
        doc["cold_start_s"],
        doc["gpus_per_replica"],
        doc["slo_delay_s"],
        doc["slo_attainment_target"],
    ) == (60, 2, 1.5, 0.95)
    variants = {(p["policy"], p["variant"]) for p in doc["policies"]}
    assert variants == {
        ("hpa", "default"),
        ("hpa", "tuned"),
        ("kpa", "default"),
        ("kpa", "tuned"),
        ("static", "default"),
        ("static", "p99"),
        ("oracle", "default"),
    }
    for p in doc["policies"]:
        assert p.keys() >= POLICY_FIELDS
        assert 0.0 <= p["slo_attainment"] <= 1.0
    oracle = next(p for p in doc["policies"] if p["policy"] == "oracle")
    assert oracle["gpu_hours_vs_oracle"] == 1.0
    # 600/min = 10/s at 4/s per replica = 3 replicas x 2 GPUs for 2 h at least
    assert oracle["gpu_hours"] >= 3 * 2 * 118 / 60
    table = capsys.readouterr().out
    assert "xOracle" in table and "hpa" in table and "tuned" in table


def test_default_run_replays_the_bundled_trace(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert main(["simulate", "--policies", "hpa,oracle", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["trace"] == "servegen_language_m_mid_5days_10min.csv" and doc["bin_s"] == 600


def test_plot_writes_a_png(trace: Path, tmp_path: Path) -> None:
    png = tmp_path / "out.png"
    assert (
        main(
            [
                "simulate",
                "--trace",
                str(trace),
                "--policies",
                "hpa,oracle",
                "--tune",
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", "missing.csv"], "cannot read trace"),
        (["--column", "tokens"], "no column 'tokens'"),
    ],
)
def test_bad_trace_input_is_a_clear_error(
    args: list[str],
    message: str,
    trace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    full = ["simulate", *args] if "--trace" in args else ["simulate", "--trace", str(trace), *args]
    out = tmp_path / "out.json"
    assert main([*full, "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ["--capacity", "0"],
        ["--capacity", "-3"],
        ["--capacity", "abc"],
        ["--slo-attainment", "1.5"],
        ["--policies", "hpa,vpa"],
        ["--gpus-per-replica", "0"],
        ["--cold-start", "-1"],
    ],
)
def test_bad_flags_are_rejected(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
