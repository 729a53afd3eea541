from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from forecast_helpers import write_trace

from aiscaler.forecast.data import TraceError, first_test_index, read_trace, resample

nan = np.nan


def test_reads_a_column_and_its_step(tmp_path: Path):
    s = read_trace(write_trace(tmp_path / "t.csv", np.array([1, 2, 3]), step_s=10))
    assert s.step_s == 10 and s.start_s == 0 and s.name == "t.csv" and s.column == "requests"
    np.testing.assert_array_equal(s.values, [1, 2, 3])


def test_missing_bins_become_gaps(tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_text("timestamp_s,value\n0,1\n60,2\n240,5\n")
    np.testing.assert_array_equal(read_trace(p, "value").values, [1, 2, nan, nan, 5])


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", "requests", "is empty"),
        ("time,requests\n0,1\n60,2\n", "requests", "no 'timestamp_s' column"),
        (
            "timestamp_s,value\n0,1\n60,2\n",
            "requests",
            r"no column 'requests'; choose one of \['value'\]",
        ),
        ("timestamp_s,requests\n0,1\n", "requests", "1 data rows"),
        ("timestamp_s,requests\n0,1\n60,x\n", "requests", "line 3: malformed row"),
        ("timestamp_s,requests\n0,1\n60\n", "requests", "line 3: malformed row"),
        ("timestamp_s,requests\n0,1\n60,2\n60,3\n", "requests", "not increasing"),
        ("timestamp_s,requests\n0,1\n60,2\n150,3\n", "requests", "off the 60 s grid"),
    ],
)
def test_bad_traces_are_refused_with_the_reason(tmp_path: Path, text, column, message):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(TraceError, match=message):
        read_trace(p, column)


def test_missing_file(tmp_path: Path):
    with pytest.raises(TraceError, match="cannot read trace"):
        read_trace(tmp_path / "absent.csv")


def test_resample_averages_whole_bins_and_skips_gaps(tmp_path: Path):
    s = read_trace(write_trace(tmp_path / "t.csv", np.array([1, 3, 5, 0, 2]), step_s=10))
    s = type(s)(s.name, s.column, s.step_s, s.start_s, np.array([1, 3, nan, 5, nan, nan, 7]))
    r = resample(s, 20)
    assert r.step_s == 20
    np.testing.assert_array_equal(r.values, [2, 5, nan])  # the odd last point is dropped


@pytest.mark.parametrize("step", [15.0, 5.0])
def test_resample_refuses_steps_that_are_not_whole_multiples(tmp_path: Path, step):
    s = read_trace(write_trace(tmp_path / "t.csv", np.arange(6), step_s=10))
    with pytest.raises(TraceError, match="whole multiple"):
        resample(s, step)


@pytest.mark.parametrize(("n", "start"), [(4, 3), (100, 75), (101, 75), (2016, 1512)])
def test_the_later_quarter_is_the_test_part(n, start):
    assert first_test_index(n) == start
