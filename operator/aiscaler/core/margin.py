"""The SLO margin: a factor on the planned demand, learned from whether the SLO held.

The planned level takes the forecast at its word, but what users are promised is the latency
objective, and three things the forecast cannot see break it: its own miscalibration, bursts
inside a forecast step, and the backlog a shortfall leaves behind. So every tick that measured the
objective moves the factor, as adaptive conformal inference moves its miss level (Gibbs and
Candès, "Adaptive Conformal Inference Under Distribution Shift", NeurIPS 2021):

    log m <- log m + STEP * (missed - (1 - a))

A tick that missed the objective raises the margin by about STEP; each tick that met it lowers it
by STEP * (1 - a). Where the two balance, the objective misses in a share 1 - a of the measured
ticks, whatever the forecast's errors are (the long-run guarantee of the paper's Prop. 4.1, as
long as the factor is not held at a bound). Raising at most once per lead time (the replicas a
raise adds are not ready before) was tried: it saves GPU-hours, but misses then come in runs that
count once, the share of missed ticks exceeds 1 - a, and attainment fell below the reactive
baselines' on dc_alibaba2018 (bench/RESULTS.md); not kept.

The factor stays within [1, MAX_MARGIN]: it only adds to what the forecast asks for (a factor below
1 was tried in the simulator: it saved GPU-hours on smooth traces by missing the SLO more often,
bench/RESULTS.md). Learning the share of requests missed rather than each tick's met/missed was
measured too: 0.02-0.04 cheaper on five of 11 traces and no worse elsewhere, but it needs the
histogram's buckets, not the latency at the SLO quantile the operator reads (not kept). Ticks
without a measurement leave it as it is. When the SLO is measured over a window longer than the
tick, consecutive ticks see overlapping windows; each then moves the factor by its share `weight` =
tick / window of a step, so one slow minute counts once.
"""

from __future__ import annotations

import math

from aiscaler.core.types import SloMargin

STEP = 0.05
MIN_MARGIN = 1.0
MAX_MARGIN = 4.0


def update_margin(
    margin: SloMargin, slo_met: bool | None, attainment: float, now: float, weight: float = 1.0
) -> SloMargin:
    """The margin after the tick at `now`. A second update at the same `now` replaces the first
    (it starts from the value before it), so re-planning a tick changes nothing."""
    start = margin.before if margin.time == now else margin.factor
    factor = start
    if slo_met is not None:
        missed = 0.0 if slo_met else 1.0
        factor = start * math.exp(weight * STEP * (missed - (1 - attainment)))
        factor = min(MAX_MARGIN, max(MIN_MARGIN, factor))
    return SloMargin(factor=factor, time=now, before=start)
