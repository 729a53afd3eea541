"""Parsing of Prometheus HTTP API answers recorded from a real Prometheus (recorded/record.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from aiscaler.metrics.errors import (
    BadQuery,
    BadResponse,
    Empty,
    MetricError,
    NotFinite,
    Stale,
    Timeout,
    Unreachable,
)
from aiscaler.metrics.history import HistoryCache
from aiscaler.metrics.readings import (
    Series,
    error_from_http,
    newest,
    parse_result,
)
from aiscaler.metrics.source import Sample

RECORDED = Path(__file__).parent / "recorded"
AT = 1_700_000_600.0  # the evaluation time of the recorded instant queries


def recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((RECORDED / f"{name}.json").read_text()))


def result_of(name: str) -> Any:
    # What PrometheusConnect hands back for a 200 answer: data.result.
    return json.loads(recorded(name)["body"])["data"]["result"]


def test_vector() -> None:
    series = parse_result(result_of("vector"))
    # History: team-a counts 10 per 15 s, team-b 5 per 15 s; at T0 + 600 s both are at i = 40.
    by_ns = {s.labels["namespace"]: s.points for s in series}
    assert by_ns == {"team-a": ((AT, 400.0),), "team-b": ((AT, 200.0),)}
    assert all(s.labels["__name__"] == "demo_requests_total" for s in series)


def test_matrix() -> None:
    series = parse_result(result_of("matrix"))
    by_ns = {s.labels["namespace"]: s.points for s in series}
    # 10 per 15 s = 2/3 per second and 5 per 15 s = 1/3, at the three steps of the range.
    times = (AT - 120, AT - 60, AT)
    assert set(by_ns) == {"team-a", "team-b"}
    assert [t for t, _ in by_ns["team-a"]] == list(times)
    assert all(v == pytest.approx(2 / 3) for _, v in by_ns["team-a"])
    assert all(v == pytest.approx(1 / 3) for _, v in by_ns["team-b"])


def test_scalar_is_one_series_without_labels() -> None:
    assert parse_result(result_of("scalar")) == [Series({}, ((AT, 1.5),))]


def test_string_that_is_not_a_number_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="hello"):
        parse_result(result_of("string"))


def test_empty_result() -> None:
    assert parse_result(result_of("empty")) == []


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("nan", math.isnan),
        ("plus_inf", lambda v: v == math.inf),
        ("minus_inf", lambda v: v == -math.inf),
    ],
)
def test_non_finite_values_are_parsed(name: str, check: Any) -> None:
    [series] = parse_result(result_of(name))
    [(time, value)] = series.points
    assert time == AT and check(value)


@pytest.mark.parametrize("name", ["nan", "plus_inf", "minus_inf"])
def test_non_finite_newest_value_is_not_finite(name: str) -> None:
    [series] = parse_result(result_of(name))
    assert isinstance(newest(series.points, AT, 60, "x"), NotFinite)


def test_nan_points_of_a_matrix_are_missing_in_the_history() -> None:
    [series] = parse_result(result_of("matrix_nan"))
    cache = HistoryCache(60, 2, 300)
    cache.store("s", "q", AT - 60, AT, series.points)
    assert cache.history("s") is None  # nothing but missing points


@pytest.mark.parametrize(
    ("name", "error", "text"),
    [
        ("error_bad_data", BadQuery, "parse error"),
        ("error_execution", BadQuery, "many-to-one"),
        ("error_timeout", Timeout, "timed out"),
    ],
)
def test_recorded_error_answers(name: str, error: type[MetricError], text: str) -> None:
    answer = recorded(name)
    found = error_from_http(answer["status"], answer["body"].encode())
    assert isinstance(found, error)
    assert text in str(found)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (502, b"<html>Bad Gateway</html>", Unreachable),  # a proxy in front of Prometheus
        (503, b'{"status":"error","errorType":"unavailable","error":"shutting down"}', Unreachable),
        (404, b"404 page not found", BadResponse),  # wrong URL path
        (400, b"not json", BadResponse),
    ],
)
def test_non_api_error_answers(status: int, body: bytes, error: type[MetricError]) -> None:
    assert isinstance(error_from_http(status, body), error)


@pytest.mark.parametrize(
    "result",
    [
        {"resultType": "vector"},
        [{"metric": {}}],
        [{"metric": {}, "value": [1, "x"]}],
        [{"metric": {}, "value": [1]}],
        ["x"],
        [{"metric": "x", "value": [1, "1"]}],
    ],
)
def test_malformed_results_are_bad_responses(result: Any) -> None:
    with pytest.raises(BadResponse):
        parse_result(result)


NOW = 1000.0
NEWEST = [
    # (points, expected) with a 90 s staleness limit
    ((), Empty("no data for demand")),
    (((NOW, 3.0),), Sample(3.0, NOW)),
    (((NOW - 120, 1.0), (NOW - 30, 2.0)), Sample(2.0, NOW - 30)),
    (((NOW - 90, 2.0),), Sample(2.0, NOW - 90)),  # exactly at the limit: still fresh
    (((NOW - 91, 2.0),), Stale("newest demand is 91s old (limit 90s)")),
    (((NOW - 10, 1.0), (NOW, math.nan)), NotFinite(f"demand is nan at {NOW:.0f}")),
]


@pytest.mark.parametrize(("points", "expected"), NEWEST)
def test_newest(points: tuple[tuple[float, float], ...], expected: object) -> None:
    assert newest(points, NOW, 90, "demand") == expected


def test_a_bad_sample_deep_in_a_long_series_is_named() -> None:
    values = [[1000 + i, str(i)] for i in range(500)]
    values[321] = [1321, "oops"]
    with pytest.raises(BadResponse, match="oops"):
        parse_result([{"metric": {}, "values": values}])


def test_matrix_points_come_back_ascending() -> None:
    [series] = parse_result([{"metric": {}, "values": [[2, "2"], [1, "1"], [3, "+Inf"]]}])
    assert series.points == ((1.0, 1.0), (2.0, 2.0), (3.0, math.inf))
