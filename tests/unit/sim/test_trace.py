"""Trace loading: demand rates from arrival and level series, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiscaler.sim.trace import (
    LEVEL_REPLICA_RPS,
    TraceError,
    as_requests,
    default_capacity,
    load_trace,
    tune_split,
)


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


def test_requests_stay_requests_and_tokens_become_requests_at_the_trace_mean(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "timestamp_s,requests,tokens_out\n0,0,0\n60,60,6000\n120,120,6000\n180,60,6000\n240,0,0\n",
    )
    requests = as_requests(load_trace(path, "requests"), 2.0, path)
    np.testing.assert_allclose(requests.rate, [1.0, 2.0, 1.0])
    assert requests.capacity == 2.0 and requests.unit == "requests"
    tokens = as_requests(load_trace(path, "tokens_out"), 150.0, path)
    # 18000 tokens over 240 requests: 75 per request
    np.testing.assert_allclose(tokens.rate, [100 / 75, 100 / 75, 100 / 75])
    assert tokens.capacity == pytest.approx(2.0)


def test_a_level_series_converts_one_replicas_worth_to_the_reference_rate(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp_s,value\n0,30\n60,60\n")
    requests = as_requests(load_trace(path, "value"), 15.0)
    assert requests.capacity == LEVEL_REPLICA_RPS
    np.testing.assert_allclose(requests.rate, [2 * LEVEL_REPLICA_RPS, 4 * LEVEL_REPLICA_RPS])


@pytest.mark.parametrize(
    ("duration_s", "bin_s", "fraction", "split"),
    [
        (7 * 86_400, 60, 0.5, 3.5 * 86_400),
        (3 * 86_400, 600, 0.2, 86_400),  # at least a day when the trace has several
        (3600, 10, 0.5, 1800),  # a short trace: the fraction, on whole 5-minute windows
        (3600, 600, 0.3, 600),  # on whole bins
    ],
)
def test_the_tune_window_ends_on_whole_windows(
    duration_s: float, bin_s: float, fraction: float, split: float
) -> None:
    assert tune_split(duration_s, bin_s, fraction) == split
