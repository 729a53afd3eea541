"""Steady-state queueing formulas against hand-computed and textbook values."""

from __future__ import annotations

import math

import pytest

from aiscaler.core.queueing import erlang_c, replicas_meeting, wait_exceeds


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: P(wait) = rho
        (2, 1.0, 1 / 3),  # 2 servers at a = 1: (a^2/2 * 2) / (1 + a + 2) = 1/3
        (3, 2.0, 4 / 9),  # 3 servers at a = 2: textbook 0.4444
        (4, 0.0, 0.0),  # no load: no wait
        (4, 4.0, 1.0),  # unstable: everyone waits
        (4, 5.0, 1.0),
    ],
)
def test_erlang_c(servers: int, load: float, expected: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(expected, rel=1e-12)


def test_erlang_c_is_stable_for_thousands_of_servers() -> None:
    # 2048 slots at 95% load: square-root staffing leaves a waiting chance well inside (0, 1).
    value = erlang_c(2048, 0.95 * 2048)
    assert 0.01 < value < 0.5 and math.isfinite(value)


def test_wait_tail_is_exponential_and_variability_lengthens_it() -> None:
    # M/M/2 at a = 1, mu = 1: P(W > t) = C exp(-(2 - 1) t).
    assert wait_exceeds(2, 1.0, 1.0, 1.0, 2.0) == pytest.approx(math.exp(-2.0) / 3)
    exponential = wait_exceeds(8, 6.0, 0.5, 1.0, 3.0)
    assert wait_exceeds(8, 6.0, 0.5, 2.0, 3.0) > exponential > wait_exceeds(8, 6.0, 0.5, 0.0, 3.0)


@pytest.mark.parametrize("attainment", [0.9, 0.99, 0.999])
def test_replicas_meeting_is_the_least_that_meets_the_goal(attainment: float) -> None:
    load, slots, mu, delay = 300.0, 16, 0.1, 1.0
    n = replicas_meeting(load, slots, mu, 1.0, delay, attainment)
    assert wait_exceeds(n * slots, load, mu, 1.0, delay) <= 1 - attainment
    assert wait_exceeds((n - 1) * slots, load, mu, 1.0, delay) > 1 - attainment


def test_replicas_meeting_grows_with_load_and_goal() -> None:
    counts = [replicas_meeting(a, 8, 1.0, 1.0, 0.5, 0.99) for a in (0.0, 1.0, 10.0, 100.0)]
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] >= math.ceil(100 / 8)
    assert replicas_meeting(50.0, 8, 1.0, 1.0, 0.5, 0.999) >= replicas_meeting(
        50.0, 8, 1.0, 1.0, 0.5, 0.9
    )
