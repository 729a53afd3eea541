"""Per-service planner: desired replicas now, from a quantile forecast, ahead of demand.

Public API (stable; additive changes only):
- `plan_service(spec, obs, memory, now, config, node_provisioning_s, planned) -> ServiceDecision`
- `replicas_needed_within(spec, obs, now, horizon_s, config, margin, planned, basis) -> int | None`
- `quantile_values(forecast, q) -> (values per step, note)`
- `planned_level(levels, values, attainment)`, `planned_values(forecast, attainment)`,
  `planned_values_of(services, now, config) -> {name: planned values}` (many services at once)
- `replicas_for(demand, capacity) -> int`
The whole cluster (budgets, training jobs, nodes) is planned by `aiscaler.core.allocator`.

How a decision is made (docs/core.md has the full table):
0. A request longer than the demand's rate window (`spec.request_s`) is sized in flight: the
   observed demand and each forecast step averaged over the request time (`aiscaler.core.inflight`).
1. Lead time L = cold start, plus the pool's node provisioning time when the replicas to add do
   not fit on the free GPUs.
2. Predicted need = max over the window [L, L + tick] of ceil(c / capacity), c the planned
   demand level: expected unserved demand E[(D - c)+] = (1 - a) E[D], a the attainment target
   (`planned_level`; attainment counts demand, so this is not the quantile Q_a).
   Replicas the forecast needs before L, or within the scale-down window after it, are kept:
   one removed now could not be back in time, and only a lasting drop is followed.
   Both use the planned levels times the SLO margin m (`aiscaler.core.margin`), learned from
   whether the latency objective held.
3. Reactive floor: ceil(m x observed demand now / capacity) — a forecast miss never leaves the
   service below plain reaction. Reactive mode uses the floor alone, and so does predictive mode
   while the service's own backtest says the floor alone would have met the attainment goal
   (`aiscaler.core.floorcheck`; the decision's `basis` says which).
4. HPA-style stabilisation, rate limits, then min/max (`aiscaler.core.scaling`).
Missing, stale, NaN or infinite data never scales down: the planner holds the current replicas
(scaling up only on what valid data asks for) and names the problem in `reason`/`degraded`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiscaler.core.floorcheck import floor_attainment, floor_suffices, record_floor
from aiscaler.core.inflight import in_flight_forecast, steps_in_flight
from aiscaler.core.margin import update_margin
from aiscaler.core.scaling import rate_limit, remember, stabilize
from aiscaler.core.types import (
    DemandSample,
    Forecast,
    Mode,
    PlanBasis,
    PlannerConfig,
    Reason,
    ScaleMemory,
    ServiceDecision,
    ServiceObservation,
    ServiceSpec,
)

# The quantiles the planner asks forecasters for, in the operator and the simulator alike. The
# planned level reads the tail beyond the highest one (`planned_level`), so an attainment goal
# need not be among them; asking for one the model was not trained on would bypass the model.
FORECAST_QUANTILES = (0.5, 0.9, 0.95, 0.99)

# Demand within this much of a whole number of replicas does not round up to one more
# (float noise such as 2.0000000001 replicas' worth must not start a GPU).
_ROUNDING_SLACK = 1e-9


def replicas_for(demand: float, capacity: float) -> int:
    """Replicas needed to serve `demand` units/s at `capacity` units/s per replica."""
    return max(0, math.ceil(demand / capacity - _ROUNDING_SLACK))


def quantile_values(forecast: Forecast, q: float) -> tuple[npt.NDArray[np.float64], str]:
    """Quantile `q` of the forecast for every step, interpolated linearly between the
    forecast's quantiles; outside their range the nearest one is used (the note says so)."""
    qs = np.asarray(forecast.quantiles, dtype=np.float64)
    if q in forecast.quantiles:
        return forecast.values[:, forecast.quantiles.index(q)].astype(np.float64), ""
    note = ""
    if q > qs[-1] or q < qs[0]:
        nearest = float(qs[-1] if q > qs[-1] else qs[0])
        note = f"quantile {q:g} outside the forecast's {forecast.quantiles}, used {nearest:g}"
    values = np.array([np.interp(q, qs, row) for row in forecast.values], dtype=np.float64)
    return values, note


# The demand distribution a forecast row stands for: its quantile function runs linearly between
# the forecast's quantiles and continues beyond the outer ones as exponential tails (each through
# the neighbouring quantile; the lower one clipped at zero demand).

FloatArray = npt.NDArray[np.float64]
_NEWTON_TOLERANCE = 1e-12


def planned_level(
    levels: Sequence[float], values: npt.ArrayLike, attainment: float | npt.ArrayLike
) -> FloatArray:
    """Per row of quantile `values` (at `levels`, increasing in (0, 1); values non-decreasing,
    >= 0), the least capacity c whose expected unserved demand is the share the target allows:
    E[(D - c)+] = (1 - attainment) * E[D] (0 when no demand is expected). `attainment`: one
    target, or one per row (shape `values.shape[:-1]`: many services' forecasts in one call).

    Attainment counts demand, not time: planning for the per-step quantile Q_a would keep the
    chance of any shortfall at 1 - a, which over-provisions (most of a miss is served). Exact
    for the distribution above: E[(D - c)+] falls with slope -P(D > c), so it is quadratic in c
    between two quantiles and exponential in the tails."""
    shape = np.shape(values)[:-1]
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(levels))
    p = np.asarray(levels, dtype=np.float64)
    k, rows = len(levels), np.arange(len(values))
    lower = upper = np.zeros(len(values))
    if k > 1:  # tail scales through the neighbouring quantile; none known from one quantile
        lower = (values[:, 1] - values[:, 0]) / math.log(p[1] / p[0])
        upper = (values[:, -1] - values[:, -2]) / math.log((1 - p[-2]) / (1 - p[-1]))
    # E[(D - v_j)+] at every quantile v_j, from the top: the upper tail's mass times its mean
    # excess, plus each segment above v_j: its width times the mean of P(D > c) over it.
    at = np.zeros((len(values), k))
    segments = (values[:, 1:] - values[:, :-1]) * (1 - (p[:-1] + p[1:]) / 2)
    at[:, :-1] = np.cumsum(segments[:, ::-1], axis=1)[:, ::-1]
    at += ((1 - p[-1]) * upper)[:, None]
    # E[D] adds what lies under the lowest quantile (P(D > c) = 1 - p_0 exp(-(v_0 - c) / lower)).
    safe_lower = np.where(lower > 0, lower, 1.0)
    mean = at[:, 0] + values[:, 0] - p[0] * lower * (1 - np.exp(-values[:, 0] / safe_lower))
    target = (1 - np.broadcast_to(attainment, shape).reshape(-1)) * mean
    above = (at > target[:, None]).sum(axis=1)  # quantiles whose shortfall exceeds the target

    with np.errstate(divide="ignore", invalid="ignore"):
        # Beyond the highest quantile: upper * (1 - p_k) * exp(-(c - v_k) / upper) = target.
        level = values[:, -1] + upper * np.log(upper * (1 - p[-1]) / target)
        # Between quantiles j - 1 and j, P(D <= c) rises linearly: a quadratic in c.
        j = np.minimum(np.maximum(above, 1), k - 1)
        q0, q1, p1 = values[rows, j - 1], values[rows, j], p[j]
        density = (p1 - p[j - 1]) / (q1 - q0)
        rest = target - at[rows, j]
        gap = 2 * rest / ((1 - p1) + np.sqrt((1 - p1) ** 2 + 2 * density * rest))
    level = np.where(above < k, q1 - gap, level)
    low = above == 0
    if low.any():
        level[low] = _below_lowest(p[0], values[low, 0], lower[low], (target - at[:, 0])[low])
    result: FloatArray = level.reshape(shape)
    return result


def _below_lowest(p0: float, bottom: FloatArray, lower: FloatArray, rest: FloatArray) -> FloatArray:
    """The level under the lowest quantile: its distance x below it solves
    x - p0 * lower * (1 - exp(-x / lower)) = rest (the demand the allowed shortfall still has to
    cover). Newton from an upper bound descends monotonically: the left side is convex, rising."""
    tails = lower > 0
    scale = np.where(tails, lower, 1.0)
    x = np.where(tails, rest / (1 - p0), rest)
    for _ in range(100):
        decay = np.where(tails, np.exp(-x / scale), 0.0)
        step = (x - p0 * np.where(tails, lower * (1 - decay), 0.0) - rest) / (1 - p0 * decay)
        x = x - step
        if np.all(step <= _NEWTON_TOLERANCE * np.maximum(1.0, x)):
            break
    result: FloatArray = np.maximum(0.0, bottom - x)
    return result


def planned_values(forecast: Forecast, attainment: float) -> FloatArray:
    """`planned_level` for every step of the forecast (crossed quantiles are sorted first)."""
    return planned_level(forecast.quantiles, np.sort(forecast.values, axis=1), attainment)


def planned_values_of(
    services: Sequence[tuple[ServiceSpec, ServiceObservation]], now: float, config: PlannerConfig
) -> dict[str, FloatArray]:
    """`planned_values` of each service's forecast that the planner reads as it is (predictive
    or recommend mode, a usable forecast, requests within a step: nothing averaged in flight),
    by service name; one `planned_level` call per set of quantiles for all of them (called per
    service, its overhead outweighs its arithmetic: ~75 ms against ~6 ms for 1,000 services).
    What `plan_service` and `replicas_needed_within` take as `planned`."""
    groups: dict[tuple[float, ...], list[tuple[ServiceSpec, Forecast]]] = {}
    for spec, obs in services:
        if spec.mode is Mode.REACTIVE or _forecast_problem(obs, now, config) is not None:
            continue
        assert obs.forecast is not None  # _forecast_problem
        if steps_in_flight(spec.request_s, obs.forecast.step_s) == 1:
            groups.setdefault(obs.forecast.quantiles, []).append((spec, obs.forecast))
    planned: dict[str, FloatArray] = {}
    for quantiles, members in groups.items():
        values = np.sort(np.concatenate([fc.values for _, fc in members]), axis=1)
        targets = np.concatenate([np.full(fc.horizon, spec.attainment) for spec, fc in members])
        levels = planned_level(quantiles, values, targets)
        ends = np.cumsum([fc.horizon for _, fc in members])[:-1]
        for (spec, _), part in zip(members, np.split(levels, ends), strict=True):
            planned[spec.name] = part
    return planned


def _in_flight(spec: ServiceSpec, forecast: Forecast, known: float | None) -> Forecast:
    """The forecast of the requests in flight (core.inflight); `known`: the rate in flight now,
    None: the first step's median stands in."""
    steps = steps_in_flight(spec.request_s, forecast.step_s)
    if steps <= 1:  # the common case: no median to read
        return forecast
    center, _ = quantile_values(forecast, 0.5)
    return in_flight_forecast(forecast, center, steps, center[0] if known is None else known)


def _planned(
    spec: ServiceSpec, fc: Forecast, own: Forecast, given: FloatArray | None
) -> FloatArray:
    """The planned values of `fc` (the forecast the planner reads, `_in_flight` of the service's
    `own`), the SLO margin aside: `given` (`planned_values_of`'s) when `fc` is `own`."""
    if given is not None and fc is own:
        return given
    return planned_values(fc, spec.attainment)


@dataclass(frozen=True)
class _Window:
    """Steps of a forecast (0-based rows) overlapping [start, end] seconds after the origin."""

    first: int
    last: int  # inclusive


def _window(forecast: Forecast, start_s: float, end_s: float) -> _Window | None:
    """Rows whose step (ending h * step_s after the origin) overlaps [start_s, end_s];
    None when the horizon ends before `start_s`. The end is clipped to the horizon."""
    first = max(0, math.floor(start_s / forecast.step_s))  # row h-1 covers ((h-1)s, hs]
    last = max(first, math.ceil(end_s / forecast.step_s) - 1)
    if first >= forecast.horizon:
        return None
    return _Window(first=first, last=min(last, forecast.horizon - 1))


def _peak(values: npt.NDArray[np.float64], window: _Window) -> float:
    return float(np.max(values[window.first : window.last + 1]))


def _demand_problem(
    obs: ServiceObservation, now: float, config: PlannerConfig
) -> tuple[Reason, str] | None:
    why = f": {obs.demand_error}" if obs.demand_error else ""
    if obs.demand is None:
        return Reason.METRICS_MISSING, f"no demand sample{why}"
    if not math.isfinite(obs.demand) or obs.demand < 0:
        return Reason.METRICS_INVALID, f"demand sample is {obs.demand}{why}"
    if obs.demand_time is not None and now - obs.demand_time > config.max_demand_age_s:
        age = now - obs.demand_time
        return Reason.METRICS_STALE, (
            f"demand sample is {age:.0f}s old (limit {config.max_demand_age_s:.0f}s)"
        )
    return None


def _forecast_problem(
    obs: ServiceObservation, now: float, config: PlannerConfig
) -> tuple[Reason, str] | None:
    fc = obs.forecast
    if fc is None or obs.forecast_origin is None:
        return Reason.FORECAST_MISSING, "no forecast"
    if now - obs.forecast_origin > config.max_forecast_age_s:
        age = now - obs.forecast_origin
        return Reason.FORECAST_STALE, (
            f"forecast origin is {age:.0f}s old (limit {config.max_forecast_age_s:.0f}s)"
        )
    qs = fc.quantiles
    if not (
        fc.step_s > 0
        and fc.horizon > 0
        and len(qs) > 0
        and all(a < b for a, b in zip((0.0, *qs), (*qs, 1.0), strict=True))  # 0 < q0 < .. < 1
        and fc.values.shape == (fc.horizon, len(qs))
    ):
        return Reason.FORECAST_INVALID, (
            f"forecast is malformed (step {fc.step_s}s, quantiles {qs}, shape {fc.values.shape})"
        )
    if not np.all(np.isfinite(fc.values)) or np.any(fc.values < 0):
        return Reason.FORECAST_INVALID, "forecast has NaN, infinite or negative values"
    return None


def _capacity(spec: ServiceSpec) -> float | None:
    cap = spec.capacity_per_replica
    if cap is None or not math.isfinite(cap) or cap <= 0:
        return None
    return cap


@dataclass(frozen=True)
class _Prediction:
    replicas: int  # max(kept, window need)
    window_need: int  # need over [L, L + tick]
    lead_time_s: float
    planned: float  # the planned demand level over the window (see planned_level)
    q_value: float  # Q_a over the window, reported
    p50: float
    note: str


def _predict(
    spec: ServiceSpec,
    obs: ServiceObservation,
    capacity: float,
    now: float,
    config: PlannerConfig,
    node_provisioning_s: float,
    margin: float,
    known: float | None,
    given: FloatArray | None,
) -> _Prediction | tuple[Reason, str]:
    assert obs.forecast is not None and obs.forecast_origin is not None  # _forecast_problem
    fc = _in_flight(spec, obs.forecast, known)
    planned = _planned(spec, fc, obs.forecast, given) * margin
    age = now - obs.forecast_origin
    q_values, note = quantile_values(fc, spec.attainment)
    p50_values, _ = quantile_values(fc, 0.5)

    lead = spec.cold_start_s
    window = _window(fc, age + lead, age + lead + config.tick_s)
    if window is None:
        return Reason.FORECAST_INVALID, (
            f"forecast horizon {fc.horizon * fc.step_s:.0f}s ends before the lead time {lead:.0f}s"
        )
    level = _peak(planned, window)
    need = replicas_for(level, capacity)
    to_add_gpus = (need - obs.current_replicas) * spec.gpus_per_replica
    if obs.free_gpus is not None and node_provisioning_s > 0 and to_add_gpus > obs.free_gpus:
        # New replicas wait for a node: plan for the later window too (cold start onwards).
        lead = spec.cold_start_s + node_provisioning_s
        window = _window(fc, age + spec.cold_start_s, age + lead + config.tick_s)
        assert window is not None  # same start as the window above
        level = _peak(planned, window)
        need = replicas_for(level, capacity)

    # A replica removed now is back no sooner than L: keep those the forecast needs until then
    # and through the scale-down window beyond it (scale down only on a lasting drop).
    keep_until = age + lead + config.tick_s + spec.scale_down.stabilization_window_s
    before = _window(fc, age, keep_until)
    assert before is not None  # starts no later than `window`
    kept = min(obs.current_replicas, replicas_for(_peak(planned, before), capacity))
    return _Prediction(
        replicas=max(kept, need),
        window_need=need,
        lead_time_s=lead,
        planned=level,
        q_value=_peak(q_values, window),
        p50=_peak(p50_values, window),
        note=note,
    )


def validate_service(spec: ServiceSpec, obs: ServiceObservation, config: PlannerConfig) -> None:
    """Raise ValueError naming what is inconsistent (planning bad input would mislead)."""
    problems = []
    if not 0 <= spec.min_replicas <= spec.max_replicas or spec.max_replicas < 1:
        problems.append("need 0 <= min_replicas <= max_replicas and max_replicas >= 1")
    if spec.gpus_per_replica < 1:
        problems.append("gpus_per_replica must be >= 1")
    if not 0 < spec.attainment < 1:
        problems.append("attainment must lie in (0, 1)")
    if not spec.cold_start_s >= 0:
        problems.append("cold_start_s must be >= 0")
    for name, rules in (("scale_up", spec.scale_up), ("scale_down", spec.scale_down)):
        if not (
            rules.period_s > 0 and rules.max_percent >= 0 and rules.stabilization_window_s >= 0
        ):
            problems.append(f"{name}: need period_s > 0, max_percent >= 0, window >= 0")
        if rules.max_replicas is not None and rules.max_replicas < 0:
            problems.append(f"{name}: max_replicas must be >= 0")
    if obs.current_replicas < 0:
        problems.append("current_replicas must be >= 0")
    if not (config.tick_s > 0 and config.slo_window_s > 0):
        problems.append("tick_s and slo_window_s must be > 0")
    if problems:
        raise ValueError(f"service {spec.name}: " + "; ".join(problems))


def plan_service(
    spec: ServiceSpec,
    obs: ServiceObservation,
    memory: ScaleMemory,
    now: float,
    config: PlannerConfig = PlannerConfig(),  # noqa: B008 - frozen, shared safely
    node_provisioning_s: float = 0.0,
    planned: FloatArray | None = None,
) -> ServiceDecision:
    """Decide one service's replicas at time `now` (seconds, any epoch shared with the
    observation's times).

    `memory` is the previous decision's `memory` (`ScaleMemory()` at first). The result's
    `memory` is to be passed back next tick; calling again with the same arguments (same `now`)
    returns the same decision. `node_provisioning_s` is the pool's node provisioning time, added
    to the lead time when the replicas to add do not fit on `obs.free_gpus`. `planned`: the
    service's entry of `planned_values_of` when the caller computed it for many services at once
    (None: computed here; the decision is the same).
    In recommend mode the decision is the predictive one with `apply=False` (and no scale event
    is remembered, since nothing is scaled). Raises ValueError for an inconsistent spec.
    """
    validate_service(spec, obs, config)
    current = obs.current_replicas
    predictive = spec.mode in (Mode.PREDICTIVE, Mode.RECOMMEND)
    capacity = _capacity(spec)
    weight = min(1.0, config.tick_s / config.slo_window_s)
    margin = update_margin(memory.margin, obs.slo_met, spec.attainment, now, weight)
    demand_problem = _demand_problem(obs, now, config)
    samples = _demand_samples(spec, memory, now, config, obs.demand if not demand_problem else None)

    problem: tuple[Reason, str] | None = None
    record = memory.floor
    floor: int | None = None
    load: float | None = None  # the demand in flight now
    prediction: _Prediction | None = None
    if capacity is None:
        problem = Reason.CAPACITY_UNKNOWN, f"capacity per replica is {spec.capacity_per_replica}"
    else:
        problem = demand_problem
        if problem is None:
            assert obs.demand is not None
            load = statistics.fmean(s.rate for s in samples) if samples else obs.demand
            floor = replicas_for(load * margin.factor, capacity)
            replica_demand = capacity / margin.factor
            record = record_floor(record, spec, now, floor, load, replica_demand, config.tick_s)
        if predictive:
            forecast_problem = _forecast_problem(obs, now, config)
            if forecast_problem is None:
                predicted = _predict(
                    spec,
                    obs,
                    capacity,
                    now,
                    config,
                    node_provisioning_s,
                    margin.factor,
                    load,
                    planned,
                )
                if isinstance(predicted, _Prediction):
                    prediction = predicted
                else:
                    forecast_problem = predicted
            problem = problem or forecast_problem
    floor_served = floor_attainment(record)
    floor_alone = spec.mode is Mode.REACTIVE or floor_suffices(record, spec.attainment)
    planned_ask = prediction.replicas if prediction and not floor_alone else None

    if problem is not None:
        # Hold: never below the current replicas; valid signals may still ask for more.
        signals = [n for n in (floor, planned_ask) if n is not None]
        recommendation = max([current, *signals])
        value, reason, message = recommendation, problem[0], f"holding: {problem[1]}"
        if recommendation > current:
            message += f"; valid data asks for {recommendation}"
    else:
        assert capacity is not None  # a missing capacity is a problem
        assert load is not None  # valid demand is no problem
        recommendation, reason, message = _recommend(
            spec,
            obs,
            load,
            bool(samples),
            floor,
            prediction,
            capacity,
            margin.factor,
            floor_served if floor_alone else None,
        )
        value, stab_reason = stabilize(
            current, recommendation, memory, now, spec.scale_up, spec.scale_down
        )
        if stab_reason is not None:
            reason = stab_reason
            message += f"; stabilised at {value} (window of recommendations)"

    limited: Reason | None = None
    value, rate_reason = rate_limit(current, value, memory, now, spec.scale_up, spec.scale_down)
    if rate_reason is not None:
        limited = reason = rate_reason
        message += f"; rate limit allows {value} from {current}"
    if value > spec.max_replicas:
        value, limited = spec.max_replicas, Reason.TOO_MANY_REPLICAS
        reason = limited
        message += f"; capped at the maximum {value}"
    elif value < spec.min_replicas:
        value, limited = spec.min_replicas, Reason.TOO_FEW_REPLICAS
        reason = limited
        message += f"; raised to the minimum {value}"

    applied = spec.mode is not Mode.RECOMMEND
    new_memory = remember(
        memory,
        now,
        None if problem is not None else recommendation,
        value - current if applied else 0,
        spec.scale_up,
        spec.scale_down,
        margin,
        samples,
    )
    return ServiceDecision(
        name=spec.name,
        replicas=value,
        reason=reason,
        message=message,
        apply=applied,
        recommendation=recommendation,
        lead_time_s=prediction.lead_time_s if prediction else spec.cold_start_s,
        forecast_value=prediction.q_value if prediction else None,
        forecast_p50=prediction.p50 if prediction else None,
        degraded=problem[0] if problem else None,
        limited=limited,
        memory=dataclasses.replace(new_memory, floor=record),
        planned_demand=prediction.planned if prediction else None,
        basis=PlanBasis.FLOOR if floor_alone else PlanBasis.FORECAST,
        floor_attainment=floor_served,
    )


def _demand_samples(
    spec: ServiceSpec,
    memory: ScaleMemory,
    now: float,
    config: PlannerConfig,
    valid_demand: float | None,
) -> tuple[DemandSample, ...]:
    """The valid demand samples of the last request time, this tick's (`valid_demand`, None when
    unusable) included; none when the demand's own rate window already spans a request (it
    counts the requests in flight)."""
    if spec.request_s is None or spec.request_s <= config.demand_window_s:
        return ()
    kept = tuple(s for s in memory.demand if now - spec.request_s < s.time < now)
    if valid_demand is not None:
        kept += (DemandSample(time=now, rate=valid_demand),)
    return kept


def _recommend(
    spec: ServiceSpec,
    obs: ServiceObservation,
    load: float,
    averaged: bool,
    floor: int | None,
    prediction: _Prediction | None,
    capacity: float,
    margin: float,
    floor_served: float | None,
) -> tuple[int, Reason, str]:
    """Unstabilised desired replicas from valid data, with the rule that set them (`load`: the
    demand in flight now, `averaged` over the request time rather than the demand's window;
    `floor_served`: the floor alone's share of demand served when it suffices, else None)."""
    assert floor is not None
    over = f" (in flight: mean over the last {spec.request_s:g}s)" if averaged else ""
    observed = f"observed {load:.4g}/s{over} needs {floor} at {capacity:.4g}/s per replica"
    if margin != 1.0:
        observed += f" (SLO margin x{margin:.3g})"
    if prediction is not None and floor_served is not None:
        observed += (
            f"; the floor alone would have served {floor_served:.2%} of demand (goal "
            f"{spec.attainment:.2%}): the forecast's {prediction.replicas} not added"
        )
    if prediction is None or floor_served is not None:  # the floor alone
        reason = Reason.IDLE if floor == 0 else Reason.OBSERVED_DEMAND
        return floor, reason, observed
    window = (
        f"forecast demand planned at {prediction.planned:.4g}/s over "
        f"[{prediction.lead_time_s:.0f}s, +tick] (expected unserved {1 - spec.attainment:.2%}, "
        f"Q{spec.attainment:g} {prediction.q_value:.4g}/s) needs {prediction.window_need}"
    )
    if prediction.note:
        window += f" ({prediction.note})"
    if floor > prediction.replicas:
        return floor, Reason.OBSERVED_DEMAND, f"{observed}; above the {window}"
    value = prediction.replicas
    if value == 0:
        return 0, Reason.IDLE, f"{window}; {observed}"
    if value > prediction.window_need:
        return (
            value,
            Reason.DEMAND_BEFORE_LEAD_TIME,
            (
                f"keeping {value}: the forecast needs them before a restarted replica would be "
                f"ready ({prediction.lead_time_s:.0f}s) or within the scale-down window after; "
                f"{window}"
            ),
        )
    if obs.current_replicas == 0 and floor == 0:
        return value, Reason.PREDICTIVE_WAKE_UP, f"waking up: {window}; {observed}"
    return value, Reason.FORECAST_PEAK, f"{window}; {observed}"


def replicas_needed_within(
    spec: ServiceSpec,
    obs: ServiceObservation,
    now: float,
    horizon_s: float,
    config: PlannerConfig = PlannerConfig(),  # noqa: B008 - frozen, shared safely
    margin: float = 1.0,
    planned: FloatArray | None = None,
    basis: PlanBasis = PlanBasis.FORECAST,
) -> int | None:
    """Peak replicas the service needs over [now, now + horizon_s]: the forecast's planned
    demand (`planned_values`, within its horizon) and the observed demand, with the service's
    SLO margin (its decision's `memory.margin.factor`) as the planner applies it. None when
    neither is usable (reactive mode, or its decision's `basis` the floor, uses only the observed
    demand). Used to reserve GPUs ahead (training shrink, node headroom). `planned` as in
    `plan_service`."""
    capacity = _capacity(spec)
    if capacity is None:
        return None
    needs: list[int] = []
    known: float | None = None
    if _demand_problem(obs, now, config) is None:
        assert obs.demand is not None
        known = obs.demand
        needs.append(replicas_for(obs.demand * margin, capacity))
    # A forecast with `planned` values passed `_forecast_problem` at this `now` already.
    usable = planned is not None or _forecast_problem(obs, now, config) is None
    if spec.mode is not Mode.REACTIVE and basis is PlanBasis.FORECAST and usable:
        assert obs.forecast is not None and obs.forecast_origin is not None
        fc = _in_flight(spec, obs.forecast, known)
        age = now - obs.forecast_origin
        window = _window(fc, age, age + horizon_s)
        if window is not None:
            levels = _planned(spec, fc, obs.forecast, planned) * margin
            needs.append(replicas_for(_peak(levels, window), capacity))
    return max(needs) if needs else None
