"""Table-driven cases for plan_service: one rule per case, values worked by hand.

Defaults (core_cases): capacity 10/s per replica, cold start 120 s, tick 30 s, forecast step
60 s, scale-down window 300 s, so the lead-time window [120 s, 150 s] is forecast row 2 and the
replicas kept are those needed over [0, 450 s], rows 0..7; the 0.99 quantile of a row is the
number given v, the median 0.8 v.

The planner plans for the level c with expected unserved demand E[(D - c)+] = 1% of E[D]. For
this fixture's distribution that is c = K v, worked out by hand (planner.planned_level):
tails: lower scale 0.1 v / ln(0.9 / 0.5) = 0.17013 v, upper 0.1 v / ln(0.1 / 0.01) = 0.04343 v;
E[D] = 0.5 (0.8 - 0.17013 (1 - e^(-0.8 / 0.17013))) v + 0.4 x 0.85 v + 0.09 x 0.95 v
       + 0.01 (1 + 0.04343) v = 0.75164 v, so 1% of it is 0.0075164 v;
E[(D - 0.9 v)+] = 0.09 x 0.05 v + 0.01 (0.1 + 0.04343) v = 0.0059343 v < 0.0075164 v, so c lies
between 0.8 v and 0.9 v, where P(D <= c) rises by 0.4 over 0.1 v: with r = 0.0015821 v,
0.9 v - c = 2 r / (0.1 + sqrt(0.1^2 + 2 x (4 / v) r)) = 0.012631 v, K = 0.88737.
So v = 55 needs ceil(48.8 / 10) = 5 replicas where Q0.99 would have asked for 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from core_cases import NOW, QUANTILES, flat, forecast, obs, spec

from aiscaler.core.planner import (
    plan_service,
    planned_level,
    planned_values,
    planned_values_of,
    quantile_values,
    replicas_for,
)
from aiscaler.core.types import (
    Forecast,
    Mode,
    PlannerConfig,
    Reason,
    ScaleMemory,
    ScalingRules,
    ServiceObservation,
    ServiceSpec,
)

K = 0.88737  # planned level / the number given (see above)
LOW = [10.0] * 20  # 1 replica everywhere


def rows(*points: tuple[int, float], base: float = 10.0, steps: int = 20) -> list[float]:
    """A per-step 0.99 series of `base` with the given (row, value) points."""
    series = [base] * steps
    for row, value in points:
        series[row] = value
    return series


@dataclass
class Case:
    id: str
    spec: ServiceSpec
    obs: ServiceObservation
    replicas: int
    reason: Reason
    degraded: Reason | None = None
    limited: Reason | None = None
    extra: dict[str, object] = field(default_factory=dict)
    node_provisioning_s: float = 0.0


CASES = [
    # -- what the value is computed from
    Case(
        "forecast peak in the lead-time window",
        spec(),
        obs(3, 20.0, forecast(rows((2, 65.0)))),
        6,  # 65 K = 57.7
        Reason.FORECAST_PEAK,
    ),
    Case(
        "planned for expected unserved demand, below the Q0.99 quantile",
        spec(),
        obs(3, 20.0, forecast(rows((2, 55.0)))),
        5,  # 55 K = 48.8 (Q0.99 = 55 would need 6)
        Reason.FORECAST_PEAK,
        extra={"planned_demand": 55.0 * K, "forecast_value": 55.0},
    ),
    Case(
        "a peak after the window is not planned for yet",
        spec(),
        obs(3, 20.0, forecast(rows((8, 95.0)))),
        2,
        Reason.OBSERVED_DEMAND,
    ),
    Case(
        "... but replicas it needs within the scale-down window after L are kept",
        spec(),
        obs(3, 20.0, forecast(rows((7, 95.0)))),
        3,
        Reason.DEMAND_BEFORE_LEAD_TIME,
    ),
    Case(
        "the kept span follows the configured scale-down window (none: up to L + tick)",
        spec(scale_down=ScalingRules(0.0, None, 100.0, 15.0)),
        obs(6, 10.0, forecast(rows((3, 60.0)))),
        1,
        Reason.FORECAST_PEAK,
    ),
    Case(
        "reactive floor above the forecast",
        spec(),
        obs(5, 45.0, forecast(LOW)),
        5,
        Reason.OBSERVED_DEMAND,
    ),
    Case(
        "keep replicas needed before a restart could be ready",
        spec(),
        obs(4, 10.0, forecast(rows((0, 50.0), (1, 50.0)))),
        4,
        Reason.DEMAND_BEFORE_LEAD_TIME,
    ),
    Case(
        "keep never adds replicas (only the window can)",
        spec(),
        obs(2, 10.0, forecast(rows((0, 50.0)))),
        2,
        Reason.DEMAND_BEFORE_LEAD_TIME,
    ),
    Case(
        "scale down when the forecast stays low through the window",
        spec(),
        obs(6, 10.0, forecast(LOW)),
        1,
        Reason.FORECAST_PEAK,
    ),
    Case(
        "predictive wake-up from zero",
        spec(min_replicas=0),
        obs(0, 0.0, forecast(rows((2, 30.0), base=0.0))),
        3,
        Reason.PREDICTIVE_WAKE_UP,
    ),
    Case(
        "scale to zero when nothing is observed or forecast",
        spec(min_replicas=0),
        obs(2, 0.0, flat(0.0)),
        0,
        Reason.IDLE,
    ),
    Case(
        "observed demand wakes a service at zero",
        spec(min_replicas=0),
        obs(0, 15.0, flat(0.0)),
        2,
        Reason.OBSERVED_DEMAND,
    ),
    Case(
        "exact multiples do not round up", spec(), obs(3, 30.0, flat(30.0)), 3, Reason.FORECAST_PEAK
    ),
    # -- min / max / rate limits
    Case(
        "idle raised to the minimum",
        spec(min_replicas=1),
        obs(2, 0.0, flat(0.0)),
        1,
        Reason.TOO_FEW_REPLICAS,
        limited=Reason.TOO_FEW_REPLICAS,
    ),
    Case(
        "capped at the maximum",
        spec(max_replicas=20),
        obs(20, 10.0, flat(500.0)),
        20,
        Reason.TOO_MANY_REPLICAS,
        limited=Reason.TOO_MANY_REPLICAS,
    ),
    Case(
        "current above the maximum comes down to it",
        spec(max_replicas=4),
        obs(9, 90.0, flat(90.0)),
        4,
        Reason.TOO_MANY_REPLICAS,
        limited=Reason.TOO_MANY_REPLICAS,
    ),
    Case(
        "scale-up rate limit: max(4 pods, 100%) from 2 -> 6",
        spec(),
        obs(2, 10.0, flat(200.0)),
        6,
        Reason.SCALE_UP_LIMIT,
        limited=Reason.SCALE_UP_LIMIT,
    ),
    Case(
        "scale-up rate limit: 100% of 5 -> 10",
        spec(),
        obs(5, 10.0, flat(200.0)),
        10,
        Reason.SCALE_UP_LIMIT,
        limited=Reason.SCALE_UP_LIMIT,
    ),
    Case(
        "percent-only policy still wakes from zero, one replica",
        spec(min_replicas=0, scale_up=ScalingRules(0.0, None, 100.0, 15.0)),
        obs(0, 0.0, forecast(rows((2, 30.0), base=0.0))),
        1,
        Reason.SCALE_UP_LIMIT,
        limited=Reason.SCALE_UP_LIMIT,
    ),
    Case(
        "scale-down rate limit: 1 pod per period",
        spec(scale_down=ScalingRules(0.0, 1, 0.0, 15.0)),
        obs(6, 10.0, flat(10.0)),
        5,
        Reason.SCALE_DOWN_LIMIT,
        limited=Reason.SCALE_DOWN_LIMIT,
    ),
    Case(
        "scale-down rate limit: 50% of 6 -> 3",
        spec(scale_down=ScalingRules(0.0, None, 50.0, 15.0)),
        obs(6, 10.0, flat(10.0)),
        3,
        Reason.SCALE_DOWN_LIMIT,
        limited=Reason.SCALE_DOWN_LIMIT,
    ),
    # -- data problems: hold, never scale down
    Case(
        "metrics missing: hold",
        spec(),
        obs(5, None, flat(10.0), demand_error="Unreachable"),
        5,
        Reason.METRICS_MISSING,
        degraded=Reason.METRICS_MISSING,
    ),
    Case(
        "metrics NaN: hold",
        spec(),
        obs(5, math.nan, flat(10.0)),
        5,
        Reason.METRICS_INVALID,
        degraded=Reason.METRICS_INVALID,
    ),
    Case(
        "metrics +Inf: hold",
        spec(),
        obs(5, math.inf, flat(10.0)),
        5,
        Reason.METRICS_INVALID,
        degraded=Reason.METRICS_INVALID,
    ),
    Case(
        "metrics negative: hold",
        spec(),
        obs(5, -1.0, flat(10.0)),
        5,
        Reason.METRICS_INVALID,
        degraded=Reason.METRICS_INVALID,
    ),
    Case(
        "metrics stale: hold",
        spec(),
        obs(5, 10.0, flat(10.0), demand_time=NOW - 121),
        5,
        Reason.METRICS_STALE,
        degraded=Reason.METRICS_STALE,
    ),
    Case(
        "metrics at the age limit are fresh",
        spec(),
        obs(5, 10.0, flat(10.0), demand_time=NOW - 120),
        1,
        Reason.FORECAST_PEAK,
    ),
    Case(
        "metrics missing, a valid forecast may still scale up",
        spec(),
        obs(2, None, flat(60.0)),
        6,
        Reason.METRICS_MISSING,
        degraded=Reason.METRICS_MISSING,
    ),
    Case(
        "forecast missing: hold",
        spec(),
        obs(5, 10.0, None),
        5,
        Reason.FORECAST_MISSING,
        degraded=Reason.FORECAST_MISSING,
    ),
    Case(
        "forecast missing, observed demand may still scale up",
        spec(),
        obs(5, 80.0, None),
        8,
        Reason.FORECAST_MISSING,
        degraded=Reason.FORECAST_MISSING,
    ),
    Case(
        "forecast stale: hold",
        spec(),
        obs(5, 10.0, flat(10.0), forecast_origin=NOW - 301),
        5,
        Reason.FORECAST_STALE,
        degraded=Reason.FORECAST_STALE,
    ),
    Case(
        "forecast NaN: hold",
        spec(),
        obs(5, 10.0, forecast(rows((7, math.nan)))),
        5,
        Reason.FORECAST_INVALID,
        degraded=Reason.FORECAST_INVALID,
    ),
    Case(
        "forecast +Inf: hold",
        spec(),
        obs(5, 10.0, forecast(rows((0, math.inf)))),
        5,
        Reason.FORECAST_INVALID,
        degraded=Reason.FORECAST_INVALID,
    ),
    Case(
        "forecast horizon shorter than the lead time: hold",
        spec(),
        obs(5, 10.0, forecast([10.0, 10.0])),
        5,
        Reason.FORECAST_INVALID,
        degraded=Reason.FORECAST_INVALID,
    ),
    Case(
        "capacity unknown: hold",
        spec(capacity_per_replica=None),
        obs(5, 10.0, flat(10.0)),
        5,
        Reason.CAPACITY_UNKNOWN,
        degraded=Reason.CAPACITY_UNKNOWN,
    ),
    Case(
        "capacity zero: hold",
        spec(capacity_per_replica=0.0),
        obs(5, 10.0, flat(10.0)),
        5,
        Reason.CAPACITY_UNKNOWN,
        degraded=Reason.CAPACITY_UNKNOWN,
    ),
    Case(
        "holding still respects the minimum",
        spec(min_replicas=3),
        obs(1, None, flat(10.0)),
        3,
        Reason.TOO_FEW_REPLICAS,
        degraded=Reason.METRICS_MISSING,
        limited=Reason.TOO_FEW_REPLICAS,
    ),
    Case(
        "holding still respects a lowered maximum",
        spec(max_replicas=3),
        obs(5, None, flat(10.0)),
        3,
        Reason.TOO_MANY_REPLICAS,
        degraded=Reason.METRICS_MISSING,
        limited=Reason.TOO_MANY_REPLICAS,
    ),
    # -- modes
    Case(
        "reactive mode uses observed demand only",
        spec(mode=Mode.REACTIVE),
        obs(2, 35.0, flat(500.0)),
        4,
        Reason.OBSERVED_DEMAND,
    ),
    Case(
        "reactive mode does not need a forecast",
        spec(mode=Mode.REACTIVE),
        obs(6, 35.0, None),
        4,
        Reason.OBSERVED_DEMAND,
    ),
    Case(
        "reactive mode scales to zero on no demand",
        spec(mode=Mode.REACTIVE, min_replicas=0),
        obs(2, 0.0, None),
        0,
        Reason.IDLE,
    ),
    Case(
        "recommend mode decides as predictive",
        spec(mode=Mode.RECOMMEND),
        obs(3, 20.0, forecast(rows((2, 65.0)))),
        6,
        Reason.FORECAST_PEAK,
    ),
    # -- lead time: node provisioning when the new replicas do not fit on free GPUs
    Case(
        "no free GPU: the window reaches cold start + provisioning",
        spec(),
        obs(4, 10.0, forecast(rows((2, 60.0), (7, 80.0))), free_gpus=0),
        8,
        Reason.FORECAST_PEAK,
        node_provisioning_s=300.0,
        extra={"lead_time_s": 420.0},
    ),
    Case(
        "free GPUs: cold start only",
        spec(),
        obs(4, 10.0, forecast(rows((2, 60.0), (7, 80.0))), free_gpus=2),
        6,
        Reason.FORECAST_PEAK,
        node_provisioning_s=300.0,
        extra={"lead_time_s": 120.0},
    ),
    Case(
        "free GPUs counted per replica size",
        spec(gpus_per_replica=2),
        obs(4, 10.0, forecast(rows((2, 60.0), (7, 80.0))), free_gpus=2),
        8,
        Reason.FORECAST_PEAK,
        node_provisioning_s=300.0,
        extra={"lead_time_s": 420.0},
    ),
    # -- forecast alignment and quantiles
    Case(
        "an older forecast origin shifts the window by its age",
        spec(),
        obs(4, 10.0, forecast(rows((3, 70.0))), forecast_origin=NOW - 60),
        7,
        Reason.FORECAST_PEAK,
    ),
    Case(
        "... and a fresh origin does not reach that row yet (no scale-up for it)",
        spec(),
        obs(1, 10.0, forecast(rows((3, 70.0)))),
        1,
        Reason.FORECAST_PEAK,
    ),
    Case(
        "reported Q_a between forecast quantiles is interpolated",
        spec(attainment=0.95),
        obs(10, 10.0, forecast(rows((2, 100.0)))),
        8,  # planned at 95%: 79.67 (worked as K, with 5% of E[D] unserved)
        Reason.FORECAST_PEAK,
        extra={"forecast_value": 100.0 * (0.9 + 0.1 * 0.05 / 0.09)},
    ),
    Case(
        "reported Q_a above the forecast's quantiles uses the highest",
        spec(attainment=0.999),
        obs(3, 10.0, forecast(rows((2, 55.0)))),
        6,  # planned at 99.9%: 54.03 (0.1% of E[D] unserved)
        Reason.FORECAST_PEAK,
        extra={"forecast_value": 55.0},
    ),
    Case(
        "status reports Q_a, the median and the planned level over the window",
        spec(),
        obs(3, 10.0, forecast(rows((2, 65.0)))),
        6,
        Reason.FORECAST_PEAK,
        extra={
            "forecast_value": 65.0,
            "forecast_p50": 52.0,
            "planned_demand": 65.0 * K,
            "recommendation": 6,
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_service(case: Case) -> None:
    d = plan_service(
        case.spec, case.obs, ScaleMemory(), NOW, node_provisioning_s=case.node_provisioning_s
    )
    assert (d.replicas, d.reason) == (case.replicas, case.reason), d.message
    assert d.degraded == case.degraded
    assert d.limited == case.limited
    assert d.apply == (case.spec.mode is not Mode.RECOMMEND)
    assert d.message
    for name, value in case.extra.items():
        assert getattr(d, name) == pytest.approx(value), name


@pytest.mark.parametrize(
    "malformed",
    [
        Forecast(60.0, (0.9, 0.5), np.ones((5, 2)), "t"),  # quantiles out of order
        Forecast(60.0, (0.5, 1.0), np.ones((5, 2)), "t"),  # quantile 1 is no quantile
        Forecast(0.0, (0.5,), np.ones((5, 1)), "t"),  # no step
        Forecast(60.0, (0.5, 0.9), np.ones((5, 3)), "t"),  # shape does not match
        Forecast(60.0, (0.5,), np.ones((0, 1)), "t"),  # no rows
    ],
)
def test_malformed_forecast_holds(malformed: Forecast) -> None:
    d = plan_service(spec(), obs(5, 10.0, malformed), ScaleMemory(), NOW)
    assert (d.replicas, d.reason) == (5, Reason.FORECAST_INVALID)


def test_recommend_mode_remembers_no_scale_event() -> None:
    o = obs(3, 20.0, forecast(rows((2, 65.0))))
    applied = plan_service(spec(), o, ScaleMemory(), NOW)
    recommended = plan_service(spec(mode=Mode.RECOMMEND), o, ScaleMemory(), NOW)
    assert [e.change for e in applied.memory.events] == [3]
    assert recommended.memory.events == ()
    assert recommended.memory.recommendations == applied.memory.recommendations


def test_holding_records_no_recommendation() -> None:
    """A held tick must not later stabilise scale-downs on a value no data supported."""
    d = plan_service(spec(), obs(5, None, flat(10.0)), ScaleMemory(), NOW)
    assert d.memory.recommendations == ()


def test_scale_down_is_stabilised_over_the_window() -> None:
    """Demand drops: replicas follow only after the 300 s scale-down window (HPA default)."""
    s = spec()
    memory = ScaleMemory()
    decided = []
    current = 8
    for t in range(0, 420, 30):
        demand = 80.0 if t == 0 else 10.0
        d = plan_service(s, obs(current, demand, flat(demand), now=NOW + t), memory, NOW + t)
        memory, current = d.memory, d.replicas
        decided.append((t, d.replicas, d.reason))
    assert decided[0][1] == 8
    assert all(
        r == 8 and reason == Reason.SCALE_DOWN_STABILIZED for t, r, reason in decided if 0 < t < 300
    )
    assert [r for t, r, _ in decided if t >= 300] == [1] * len(
        [t for t, _, _ in decided if t >= 300]
    )


@pytest.mark.parametrize(
    ("changes", "observation", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, obs(1, 1.0, None), "min_replicas"),
        ({"max_replicas": 0, "min_replicas": 0}, obs(1, 1.0, None), "max_replicas >= 1"),
        ({"gpus_per_replica": 0}, obs(1, 1.0, None), "gpus_per_replica"),
        ({"attainment": 1.0}, obs(1, 1.0, None), "attainment"),
        ({"cold_start_s": -1.0}, obs(1, 1.0, None), "cold_start_s"),
        ({"scale_up": ScalingRules(0.0, 4, 100.0, 0.0)}, obs(1, 1.0, None), "scale_up"),
        ({"scale_down": ScalingRules(0.0, -1, 100.0, 15.0)}, obs(1, 1.0, None), "scale_down"),
        ({}, obs(-1, 1.0, None), "current_replicas"),
    ],
)
def test_invalid_input_is_a_clear_error(
    changes: dict[str, object], observation: ServiceObservation, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_service(spec(**changes), observation, ScaleMemory(), NOW)


def test_invalid_tick_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tick_s"):
        plan_service(spec(), obs(1, 1.0, None), ScaleMemory(), NOW, PlannerConfig(tick_s=0))


@pytest.mark.parametrize(
    ("demand", "capacity", "replicas"),
    [
        (0.0, 10.0, 0),
        (1e-12, 10.0, 0),
        (10.0, 10.0, 1),
        (10.000001, 10.0, 2),
        (95.0, 10.0, 10),
        (0.3 * 3, 0.3, 3),
    ],
)
def test_replicas_for(demand: float, capacity: float, replicas: int) -> None:
    assert replicas_for(demand, capacity) == replicas


def test_quantile_values_interpolates_between_forecast_quantiles() -> None:
    fc = Forecast(step_s=60.0, quantiles=(0.5, 0.9), values=np.array([[10.0, 30.0]]), source="t")
    assert quantile_values(fc, 0.7)[0][0] == pytest.approx(20.0)
    assert quantile_values(fc, 0.9)[0][0] == 30.0
    low, note = quantile_values(fc, 0.1)
    assert low[0] == 10.0 and "outside" in note


SKEWED = ((0.5, 0.9, 0.95, 0.99), (100.0, 150.0, 170.0, 250.0))
DISTRIBUTIONS = [
    ((0.5, 0.9, 0.99), (80.0, 90.0, 100.0)),  # the table's fixture, v = 100
    SKEWED,
    ((0.5, 0.9, 0.99), (0.0, 0.0, 1.0)),  # demand only in the upper tail
    ((0.5, 0.9), (10.0, 10.5)),
    ((0.1, 0.5, 0.9), (5.0, 10.0, 20.0)),
]


def numeric_unserved_share(levels: tuple[float, ...], values: tuple[float, ...], c: float) -> float:
    """E[(D - c)+] / E[D] by integrating the quantile function over p, written out directly:
    linear between the quantiles, exponential tails through the neighbouring ones."""
    # Trapezoids on a grid dense towards both ends, where the tails are steep.
    ends = np.logspace(-12, -1, 20_000)
    p = np.unique(np.concatenate([ends, np.linspace(0.1, 0.9, 100_000), 1 - ends]))
    lower = (values[1] - values[0]) / math.log(levels[1] / levels[0])
    upper = (values[-1] - values[-2]) / math.log((1 - levels[-2]) / (1 - levels[-1]))
    q = np.interp(p, levels, values)
    below, above = p < levels[0], p > levels[-1]
    q[below] = np.maximum(0.0, values[0] + lower * np.log(p[below] / levels[0]))
    q[above] = values[-1] + upper * np.log((1 - levels[-1]) / (1 - p[above]))
    return float(np.trapezoid(np.maximum(q - c, 0.0), p) / np.trapezoid(q, p))


@pytest.mark.parametrize(("levels", "values"), DISTRIBUTIONS)
@pytest.mark.parametrize("attainment", [0.5, 0.9, 0.99, 0.999])
def test_planned_level_leaves_the_allowed_share_unserved(
    levels: tuple[float, ...], values: tuple[float, ...], attainment: float
) -> None:
    """Wherever it falls (a tail or between two quantiles), the planned level leaves 1 - a of the
    expected demand unserved, checked by integrating the distribution independently."""
    c = float(planned_level(levels, values, attainment))
    share = numeric_unserved_share(levels, values, c)
    assert share == pytest.approx(1 - attainment, rel=1e-4)


@pytest.mark.parametrize(
    ("levels", "values", "attainment", "level"),
    [
        # A point forecast (one quantile, or all equal): E[(v - c)+] = v - c = (1 - a) v.
        ((0.5,), (10.0,), 0.99, 9.9),
        ((0.5, 0.9), (10.0, 10.0), 0.99, 9.9),
        ((0.5, 0.9), (10.0, 10.0), 0.9, 9.0),
        # No demand expected: nothing planned.
        ((0.5, 0.9, 0.99), (0.0, 0.0, 0.0), 0.99, 0.0),
        # The table's fixture (worked in the module docstring).
        ((0.5, 0.9, 0.99), (80.0, 90.0, 100.0), 0.99, 100 * K),
    ],
)
def test_planned_level_worked_cases(
    levels: tuple[float, ...], values: tuple[float, ...], attainment: float, level: float
) -> None:
    assert float(planned_level(levels, values, attainment)) == pytest.approx(level, rel=1e-4)


def test_planned_level_against_the_quantile() -> None:
    # Right-skewed demand: most of a miss beyond Q0.99 is small, so less than Q0.99 serves 99%.
    assert float(planned_level(*SKEWED, 0.99)) == pytest.approx(225.15, abs=0.01)
    # Demand that is mostly zero: 99% of the demand lies in the rare busy case, beyond Q0.99.
    assert float(planned_level((0.5, 0.9, 0.99), (0.0, 0.0, 1.0), 0.99)) > 1.0
    # A higher target plans more.
    levels = [float(planned_level(*SKEWED, a)) for a in (0.5, 0.9, 0.99, 0.999)]
    assert levels == sorted(levels) and len(set(levels)) == 4


def test_planned_level_row_by_row() -> None:
    """Rows of a forecast are solved independently, whichever piece each falls in."""
    rows = [(80.0, 90.0, 100.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (5.0, 5.0, 5.0)]
    together = planned_level((0.5, 0.9, 0.99), rows, 0.99)
    alone = [float(planned_level((0.5, 0.9, 0.99), r, 0.99)) for r in rows]
    assert together.tolist() == pytest.approx(alone)
    assert alone[2:] == pytest.approx([0.0, 4.95])


def test_planned_level_with_a_target_per_row() -> None:
    """Many services' rows in one call, each with its own attainment target."""
    rows = [(80.0, 90.0, 100.0), (0.0, 0.0, 1.0), (80.0, 90.0, 100.0), (5.0, 5.0, 5.0)]
    targets = [0.99, 0.9, 0.5, 0.999]
    together = planned_level((0.5, 0.9, 0.99), rows, targets)
    alone = [
        float(planned_level((0.5, 0.9, 0.99), r, a)) for r, a in zip(rows, targets, strict=True)
    ]
    assert together.tolist() == pytest.approx(alone, rel=1e-12)
    assert together[0] > together[2]  # the same row planned higher for the higher target


def test_planned_values_of_many_services_as_each_alone() -> None:
    skewed = Forecast(60.0, (0.5, 0.9, 0.99), np.array([[90.0, 80.0, 100.0], [1.0, 2.0, 9.0]]), "t")
    services = [
        (spec(name="a"), obs(1, 10.0, flat(30.0, steps=5))),
        (spec(name="b", attainment=0.9), obs(1, 10.0, skewed)),
        (spec(name="c", attainment=0.999), obs(1, 10.0, forecast(rows(base=12.0, steps=7)))),
    ]
    planned = planned_values_of(services, NOW, PlannerConfig())
    assert planned.keys() == {"a", "b", "c"}
    for s, o in services:
        assert o.forecast is not None
        alone = planned_values(o.forecast, s.attainment)
        assert planned[s.name] == pytest.approx(alone, rel=1e-12)


def test_planned_values_of_leaves_out_what_the_planner_does_not_read_as_it_is() -> None:
    fc = flat(30.0)
    nan = Forecast(60.0, QUANTILES, np.full((3, 3), np.nan), "t")
    services = [
        (spec(name="reactive", mode=Mode.REACTIVE), obs(1, 10.0, fc)),
        (spec(name="none"), obs(1, 10.0, None)),
        (spec(name="stale"), obs(1, 10.0, fc, forecast_origin=NOW - 3600)),
        (spec(name="invalid"), obs(1, 10.0, nan)),
        (spec(name="in-flight", request_s=600.0), obs(1, 10.0, fc)),  # averaged over 10 steps
        (spec(name="used", mode=Mode.RECOMMEND), obs(1, 10.0, fc)),
    ]
    assert planned_values_of(services, NOW, PlannerConfig()).keys() == {"used"}


@pytest.mark.parametrize("request_s", [None, 600.0])
def test_a_decision_is_the_same_with_the_planned_values_given(request_s: float | None) -> None:
    """`planned` is what the planner computes itself; ignored for a forecast it averages in
    flight (not the forecast those values came from)."""
    s = spec(request_s=request_s, cold_start_s=200.0)
    o = obs(2, 25.0, forecast(rows((3, 80.0), (9, 140.0), base=20.0)))
    assert o.forecast is not None
    given = planned_values(o.forecast, s.attainment)
    assert plan_service(s, o, ScaleMemory(), NOW, planned=given) == plan_service(
        s, o, ScaleMemory(), NOW
    )


def test_planned_values_sort_crossed_quantiles() -> None:
    crossed = Forecast(60.0, (0.5, 0.9, 0.99), np.array([[90.0, 80.0, 100.0]]), "t")
    assert planned_values(crossed, 0.99)[0] == pytest.approx(100 * K, rel=1e-4)
