"""Trace loading: demand rates from arrival and level series, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiscaler.sim.trace import TraceError, default_capacity, load_trace


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_arrivals_become_rates_and_drop_the_partial_edge_bins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp_s,requests,tokens_out\n0,5,50\n60,120,600\n120,60,300\n180,30,90\n240,7,1\n",
    )
    trace = load_trace(path)
    assert trace.kind == "arrivals"
    assert trace.bin_s == 60
    assert trace.start_s == 60  # first bin dropped
    np.testing.assert_allclose(trace.rate, [2.0, 1.0, 0.5])  # 120/60, 60/60, 30/60
    tokens = load_trace(path, "tokens_out")
    np.testing.assert_allclose(tokens.rate, [10.0, 5.0, 1.5])


def test_level_series_value_is_the_demand_and_keeps_every_bin(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp_s,value,total_nodes\n0,3,10\n300,4.5,10\n600,0,10\n")
    trace = load_trace(path, "value")
    assert trace.kind == "level"
    np.testing.assert_allclose(trace.rate, [3.0, 4.5, 0.0])
    # Other columns of a level file are levels too.
    np.testing.assert_allclose(load_trace(path, "total_nodes").rate, [10.0, 10.0, 10.0])


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", "requests", "empty"),
        ("time,requests\n0,1\n10,2\n", "requests", "timestamp_s"),
        ("timestamp_s,requests\n0,1\n10,2\n20,3\n30,4\n", "value", "no column 'value'"),
        ("timestamp_s,requests\n0,1\n10,x\n20,3\n30,4\n", "requests", "line 3"),
        ("timestamp_s,requests\n0,1\n10,2\n5,3\n40,4\n", "requests", "not increasing"),
        ("timestamp_s,requests\n0,1\n10,-2\n20,3\n30,4\n", "requests", "line 3: requests -2 is"),
        ("timestamp_s,requests\n0,\n10,1\n20,3\n30,4\n", "requests", "no value in the first"),
        ("timestamp_s,requests\n0,1\n10,2\n20,3\n", "requests", "needs 4"),
        ("timestamp_s,requests\n", "requests", "at least 2"),
    ],
)
def test_bad_traces_are_rejected_with_the_reason(
    tmp_path: Path, text: str, column: str, message: str
) -> None:
    with pytest.raises(TraceError, match=message):
        load_trace(write(tmp_path, text), column)


def test_missing_bins_repeat_the_previous_bin_and_are_counted(tmp_path: Path) -> None:
    # a gap in time (no row at 300) and an empty cell (at 600) in a level series
    path = write(tmp_path, "timestamp_s,value\n0,3\n100,4\n200,5\n400,6\n500,\n600,8\n")
    trace = load_trace(path, "value")
    np.testing.assert_allclose(trace.rate, [3, 4, 5, 5, 6, 6, 8])
    assert trace.filled_bins == 2


def test_missing_file_and_directory_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="directory"):
        load_trace(tmp_path)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ([4.0, 8.0, 12.0], 2.0),  # median 8 -> 4 replicas at 2/s
        ([0.0, 0.0, 0.0, 8.0], 0.5),  # median 0: the mean (2) stands in
    ],
)
def test_default_capacity_makes_the_median_need_four_replicas(
    rate: list[float], expected: float
) -> None:
    assert default_capacity(np.array(rate)) == pytest.approx(expected)


def test_default_capacity_of_an_empty_demand_is_an_error() -> None:
    with pytest.raises(TraceError, match="no demand"):
        default_capacity(np.zeros(5))
