"""Every command, given bad input as a new user would: one line on stderr that names the input
and the fix, exit code 2, no traceback, nothing written; and a simulate table that stays
aligned whatever values it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aiscaler.cli import main

GOOD = "timestamp_s,requests\n" + "".join(
    f"{60 * i},{1800 if 60 <= i < 75 else 600}\n" for i in range(120)
)
# file name -> content, written into the test's folder; "{dir}" in arguments is that folder.
FILES = {
    "good.csv": GOOD,
    "negative.csv": GOOD.replace("\n600,600\n", "\n600,-5\n"),
    "leading_nan.csv": GOOD.replace("\n0,600\n", "\n0,\n"),
    "huge.csv": GOOD.replace("\n600,600\n", "\n600,1e30\n"),
    "infinite.csv": GOOD.replace("\n600,600\n", "\n600,inf\n"),
    "bad.yaml": "train: {steps: [\n",
    "a_file": "not a folder\n",
}

# (argv, what the error line must contain)
CASES = [
    (["simulate", "--trace", "{dir}/good.csv", "--json", "/nonexistent/dir/x.json"],
     "--json /nonexistent/dir/x.json: the folder /nonexistent/dir does not exist"),
    (["simulate", "--trace", "{dir}/good.csv", "--json", "{dir}/out.txt"],
     "out.txt: the file name must end in one of .json"),
    (["simulate", "--trace", "{dir}/good.csv", "--plot", "{dir}/x.txt"],
     "x.txt: the file name must end in one of .pdf, .png, .svg"),
    (["simulate", "--trace", "{dir}/good.csv", "--plot", "{dir}"],
     "the file name must end in one of"),
    (["simulate", "--trace", "{dir}/negative.csv", "--json", "{dir}/out.json"],
     "negative.csv line 12: requests -5 is negative"),
    (["simulate", "--trace", "{dir}/leading_nan.csv", "--json", "{dir}/out.json"],
     "leading_nan.csv: requests has no value in the first row"),
    (["simulate", "--trace", "{dir}/huge.csv"], "line 12: requests 1e+30 is above 1e+12 per bin"),
    (["simulate", "--trace", "{dir}/infinite.csv"], "line 12: requests inf is infinite"),
    (["simulate", "--trace", "{dir}/good.csv", "--capacity", "1e-9"],
     "peak of 30/s needs 3e+10 replicas, more than the 10000 a simulation plays; give a larger"),
    (["simulate", "--capacity", "-1"], "argument --capacity: must be a positive number, got -1"),
    (["simulate", "--capacity", "nan"], "argument --capacity: must be a positive number"),
    (["simulate", "--free-gpus", "-3"], "argument --free-gpus: must be >= 0, got -3"),
    (["simulate", "--cold-start", "1e30"], "argument --cold-start: must be at most 86400"),
    (["simulate", "--gpus-per-replica", "1000"], "--gpus-per-replica: must be at most 64"),
    (["simulate", "--slo-attainment", "1"], "argument --slo-attainment: must be between 0 and 1"),
    (["simulate", "--policies", "hpa,foo"], "unknown policies ['foo']"),
    (["simulate", "--trace", "{dir}/missing.csv"], "cannot read trace"),
    (["simulate", "--trace", "{dir}"], "is a directory, not a CSV file"),
    (["simulate", "--trace", "{dir}/good.csv", "--column", "tokens"], "no column 'tokens'"),
    (["backtest", "--trace", "{dir}/good.csv", "--json", "/nonexistent/x.json"],
     "--json /nonexistent/x.json: the folder /nonexistent does not exist"),
    (["backtest", "--trace", "{dir}/good.csv", "--max-origins", "0"],
     "argument --max-origins: must be >= 1, got 0"),
    (["backtest", "--trace", "{dir}/good.csv", "--max-origins", "-3"],
     "argument --max-origins: must be >= 1, got -3"),
    (["backtest", "--trace", "{dir}/negative.csv", "--json", "{dir}/out.json"],
     "negative.csv line 12: requests -5 is negative"),
    (["backtest", "--trace", "{dir}/leading_nan.csv"], "requests has no value in the first row"),
    (["backtest", "--trace", "{dir}/huge.csv"], "requests 1e+30 is above 1e+12 per bin"),
    (["backtest", "--trace", "{dir}/good.csv", "--step", "0"], "argument --step: must be a posi"),
    (["backtest", "--trace", "{dir}/good.csv", "--horizons", "1,x"],
     "--horizons must be comma-separated integers, got '1,x'"),
    (["crds", "--output-dir", "{dir}/a_file"], "a_file: is a file, not a folder"),
    (["crds", "--output-dir", "/proc/nope"], "--output-dir /proc/nope: cannot create the folder"),
    (["train", "--out", "{dir}/a_file", "--trace", "{dir}/good.csv"], "is a file, not a folder"),
    (["train", "--out", "{dir}/model", "--config", "{dir}/bad.yaml"],
     "bad.yaml line 2, column 1: expected the node content"),
    (["train", "--out", "{dir}/model", "--trace", "{dir}/negative.csv"], "-5 is negative"),
    (["train", "--out", "{dir}/model", "--steps", "0"], "argument --steps: must be >= 1"),
    (["train", "--out", "{dir}/model", "--test-fraction", "1"], "--test-fraction: must be in [0,"),
]  # fmt: skip


def exit_code(argv: list[str]) -> int | str | None:
    try:
        return main(argv)
    except SystemExit as exit:  # argparse's own errors exit
        return exit.code


def written(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize(("argv", "message"), CASES)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    before = written(tmp_path)

    assert exit_code([arg.replace("{dir}", str(tmp_path)) for arg in argv]) == 2

    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"aiscaler {argv[0]}: error: "), err
    assert message.replace("{dir}", str(tmp_path)) in err, err
    assert "Traceback" not in err and "pydantic" not in err
    assert out == ""
    assert written(tmp_path) == before


def _option(ordinary: st.SearchStrategy[float]) -> st.SearchStrategy[str]:
    """Mostly ordinary values of an option, sometimes absurd ones."""
    absurd = st.sampled_from(["0", "-1", "1e-300", "1e300", "nan", "inf", "x"])
    return st.one_of(*[ordinary.map(repr)] * 4, absurd)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    capacity=_option(st.floats(min_value=1e-3, max_value=1e4)),
    cold_start=_option(st.floats(min_value=0, max_value=86_400)),
    slo_delay=_option(st.floats(min_value=1e-3, max_value=3600)),
    gpus=_option(st.integers(min_value=1, max_value=64)),
    peak=st.one_of(*[st.floats(min_value=0, max_value=1e6)] * 3, st.floats(min_value=0)),
)
def test_simulate_gives_an_aligned_table_or_one_line_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    capacity: str,
    cold_start: str,
    slo_delay: str,
    gpus: str,
    peak: float,
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(GOOD.replace("\n600,600\n", f"\n600,{peak!r}\n"))
    argv = ["simulate", "--trace", str(trace), "--policies", "static,hpa,oracle",
            "--capacity", capacity, "--cold-start", cold_start, "--slo-delay", slo_delay,
            "--gpus-per-replica", gpus,
            "--seeds", "1", "--kernel", "approx"]  # fmt: skip  (bounded time at 10,000 replicas)
    code = exit_code(argv)
    out, err = capsys.readouterr()
    event(f"exit code {code}")
    if code == 0:
        policies = ("policy", "static", "hpa", "oracle")
        header, *rows = [line for line in out.splitlines() if line.startswith(policies)]
        assert rows and all(len(row) == len(header) for row in rows), out
    else:
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
