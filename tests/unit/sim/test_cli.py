"""`aiscaler simulate`: the BENCHMARK.md contract (protocol 2: flags, JSON fields) and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiscaler.cli import main

OUTCOME = ("gpu_hours", "slo_attainment", "p99_delay_s", "worst_5min_attainment", "scale_events",
           "cold_starts")  # fmt: skip
POLICY_FIELDS = {"policy", "variant", "params", *OUTCOME, *(f"{f}_spread" for f in OUTCOME)}
TOP_FIELDS = {
    "protocol", "trace", "column", "bin_s", "capacity", "cold_start_s", "gpus_per_replica",
    "slo_delay_s", "slo_attainment_target", "queue", "slots", "service_cv", "seeds", "windows",
    "policies", "configs",
}  # fmt: skip


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Four hours of per-minute arrivals, a burst each hour."""
    counts = np.full(240, 600)
    counts[30::60] = 1800
    path = tmp_path / "burst.csv"
    rows = "\n".join(f"{60 * i},{c}" for i, c in enumerate(counts))
    path.write_text("timestamp_s,requests\n" + rows + "\n")
    return path


def run_json(args: list[str], tmp_path: Path) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "out.json"
    assert main(["simulate", *args, "--json", str(out), "--jobs", "1"]) == 0
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_json_has_every_contract_field(trace: Path, tmp_path: Path) -> None:
    doc = run_json(["--trace", str(trace), "--policies", "hpa,kpa,static,oracle", "--tune",
                    "--tune-budget", "4", "--seeds", "2", "--slots", "32"], tmp_path)  # fmt: skip
    assert doc.keys() >= TOP_FIELDS
    assert doc["protocol"] == 2 and doc["seeds"] == 2 and doc["slots"] == 32
    tune, evaluate = doc["windows"]["tune"], doc["windows"]["evaluate"]
    assert tune[1] == evaluate[0] == 6900.0  # half of 238 minutes, on whole 5-minute windows
    variants = {(p["policy"], p["variant"]) for p in doc["policies"]}
    assert variants == {("hpa", "default"), ("hpa", "tuned"), ("kpa", "default"),
                        ("kpa", "tuned"), ("static", "default"), ("static", "p99"),
                        ("oracle", "default")}  # fmt: skip
    for p in doc["policies"]:
        assert p.keys() >= POLICY_FIELDS
        assert 0.0 <= p["slo_attainment"] <= 1.0
    assert len(doc["configs"]) == 2 * 4  # hpa and kpa, 4 configurations each
    for c in doc["configs"]:
        assert set(c["tune"]) == set(c["evaluate"]) == {"gpu_hours", "slo_attainment"}
    assert doc["comparison"]["best_reactive"] in ("hpa", "kpa", None)


def test_set_fixes_a_knob_of_the_default_variant(trace: Path, tmp_path: Path) -> None:
    base = ["--trace", str(trace), "--policies", "hpa", "--seeds", "1"]
    plain = run_json(base, tmp_path)["policies"][0]
    floored = run_json([*base, "--set", "hpa.min_replicas=12", "--set", "hpa.target=0.4"],
                       tmp_path)["policies"][0]  # fmt: skip
    assert floored["params"] == {"min_replicas": 12, "target": 0.4}
    assert floored["gpu_hours"] > plain["gpu_hours"]
    assert floored["slo_attainment"] >= plain["slo_attainment"]


def test_fluid_queue_runs_one_seed(trace: Path, tmp_path: Path) -> None:
    doc = run_json(["--trace", str(trace), "--policies", "hpa,oracle", "--queue", "fluid"],
                   tmp_path)  # fmt: skip
    assert doc["queue"] == "fluid" and doc["seeds"] == 1
    assert all(p["gpu_hours_spread"] == 0 for p in doc["policies"])


def test_default_run_replays_the_bundled_trace(tmp_path: Path) -> None:
    doc = run_json(["--policies", "hpa,oracle", "--seeds", "1"], tmp_path)
    assert doc["trace"] == "servegen_language_m_mid_5days_10min.csv" and doc["bin_s"] == 600


def test_plot_writes_a_png(trace: Path, tmp_path: Path) -> None:
    png = tmp_path / "out.png"
    args = ["simulate", "--trace", str(trace), "--policies", "hpa,oracle", "--tune",
            "--tune-budget", "2", "--seeds", "1", "--plot", str(png)]  # fmt: skip
    assert main(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", "missing.csv"], "cannot read trace"),
        (["--column", "tokens"], "no column 'tokens'"),
        (["--set", "hpa.panic=2"], "hpa has no knob 'panic'"),
        (["--set", "aiscaler.goal=1.5"], "aiscaler.goal must be in (0, 1)"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    args: list[str],
    message: str,
    trace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    full = ["simulate", *args] if "--trace" in args else ["simulate", "--trace", str(trace), *args]
    out = tmp_path / "out.json"
    assert main([*full, "--seeds", "1", "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--capacity", "0"],
        ["--slo-attainment", "1.5"],
        ["--policies", "hpa,vpa"],
        ["--slots", "0"],
        ["--service-cv", "-1"],
        ["--seeds", "0"],
        ["--scrape-s", "0.5"],
        ["--queue", "exact"],
        ["--tune-fraction", "1"],
        ["--set", "hpa.target"],
        ["--set", "vpa.target=1"],
    ],
)
def test_bad_flags_are_rejected(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
