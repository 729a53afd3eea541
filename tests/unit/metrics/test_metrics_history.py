"""The demand history kept between ticks (metrics/history.py): what each tick asks Prometheus
for, and that what it holds is what a full read would give, through gaps, late samples,
restarts and query changes. Pure: Prometheus is a function of what it has ingested by `now`."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from aiscaler.metrics.history import HistoryCache
from aiscaler.metrics.readings import Point

STEP = 60.0
POINTS = 10
REREAD = 180.0
T0 = 1_700_000_040.0  # a multiple of the step
QUERY = ("vllm", "requestsPerSecond", None, (("model_name", "m"),))


class FakePrometheus:
    """A demand rate `rate(t)` at every grid point, except `gaps`; the point at t is answered
    only once `now >= t + lateness(t)` (its last samples arrived late)."""

    def __init__(
        self,
        rate: Callable[[float], float] = lambda t: 1.0 + (t - T0) / STEP,
        gaps: set[float] | None = None,
        lateness: Callable[[float], float] = lambda t: 0.0,
    ) -> None:
        self.rate = rate
        self.gaps = gaps or set()
        self.lateness = lateness
        self.reads: list[tuple[float, float]] = []

    def range(self, start: float, end: float, now: float) -> list[Point]:
        self.reads.append((start, end))
        times = np.arange(start, end + 1, STEP)
        return [
            (float(t), self.rate(t))
            for t in times
            if t not in self.gaps and now >= t + self.lateness(t)
        ]


def tick(cache: HistoryCache, prometheus: FakePrometheus, now: float, query: object = QUERY):
    """What one tick does for one service: read from where the cache needs, store, give."""
    start, end = cache.read_from("svc", query, now), cache.grid_end(now)
    cache.store("svc", query, start, end, prometheus.range(start, end, now))
    return cache.history("svc")


def full_read(prometheus: FakePrometheus, now: float) -> np.ndarray:
    """The history a just-started operator would build at `now`."""
    fresh = HistoryCache(STEP, POINTS, REREAD)
    history = tick(
        fresh, FakePrometheus(prometheus.rate, prometheus.gaps, prometheus.lateness), now
    )
    assert history is not None
    return history.values


def new_cache() -> HistoryCache:
    return HistoryCache(STEP, POINTS, REREAD)


def test_the_first_read_covers_the_window_and_later_ones_only_the_new_points_and_a_re_read():
    cache, prometheus = new_cache(), FakePrometheus()
    now = T0 + 10 * STEP + 7  # not on the grid: the newest grid point is T0 + 10 steps
    history = tick(cache, prometheus, now)
    assert history is not None
    assert (history.start, history.end) == (T0 + STEP, T0 + 10 * STEP)
    np.testing.assert_array_equal(history.values, np.arange(2.0, 12.0))
    for later in (now + 30, now + 60, now + 90):  # ticks every 30 s
        tick(cache, prometheus, later)
    end = T0 + 11 * STEP
    assert prometheus.reads == [
        (T0 + STEP, T0 + 10 * STEP),
        (T0 + 10 * STEP - REREAD, T0 + 10 * STEP),  # the same grid end: only the re-read
        (T0 + 10 * STEP - REREAD, end),
        (end - REREAD, end),
    ]


def test_a_history_kept_over_ticks_equals_a_full_read_with_gaps():
    gaps = {T0 + 4 * STEP, T0 + 12 * STEP, T0 + 13 * STEP}  # missed scrapes: no rate there
    cache, prometheus = new_cache(), FakePrometheus(gaps=gaps)
    for i in range(40):
        now = T0 + 9 * STEP + 30 * i + 5
        history = tick(cache, prometheus, now)
        assert history is not None
        np.testing.assert_array_equal(history.values, full_read(prometheus, now))
    assert history is not None and np.isnan(history.values).sum() == 0  # the gaps scrolled out


def test_late_samples_within_the_re_read_are_picked_up():
    # Every point's samples arrive 2 minutes late: the first read misses the newest two points.
    cache, prometheus = new_cache(), FakePrometheus(lateness=lambda t: 2 * STEP)
    now = T0 + 12 * STEP + 1
    first = tick(cache, prometheus, now)
    assert first is not None and np.isnan(first.values[-2:]).all()
    later = now + 3 * STEP
    history = tick(cache, prometheus, later)
    assert history is not None
    np.testing.assert_array_equal(history.values, full_read(prometheus, later))
    assert np.isnan(history.values[-2:]).all() and not np.isnan(history.values[:-2]).any()


def test_samples_later_than_the_re_read_are_not_read_again():
    # What the re-read bounds: a point whose samples came 5 minutes late stays missing (a
    # restart, which reads everything, would see it).
    late = T0 + 10 * STEP
    prometheus = FakePrometheus(lateness=lambda t: 5 * STEP if t == late else 0.0)
    cache = new_cache()
    for i in range(12):
        tick(cache, prometheus, late + 30 * i + 1)
    now = late + 30 * 11 + 1
    history = tick(cache, prometheus, now)
    assert history is not None
    index = round((late - history.start) / STEP)
    assert np.isnan(history.values[index])
    assert full_read(prometheus, now)[index] == prometheus.rate(late)


def test_a_restart_rebuilds_the_same_history_from_prometheus():
    prometheus = FakePrometheus(gaps={T0 + 15 * STEP})
    before = new_cache()
    for i in range(20):
        tick(before, prometheus, T0 + 9 * STEP + 30 * i)
    now = T0 + 9 * STEP + 30 * 20
    kept = tick(before, prometheus, now)
    restarted = tick(new_cache(), prometheus, now)
    assert kept is not None and restarted is not None
    assert (kept.start, kept.end) == (restarted.start, restarted.end)
    np.testing.assert_array_equal(kept.values, restarted.values)


def test_a_changed_query_reads_the_whole_window_again():
    cache, prometheus = new_cache(), FakePrometheus()
    now = T0 + 10 * STEP
    tick(cache, prometheus, now)
    other = FakePrometheus(rate=lambda t: 100.0)
    changed = ("vllm", "tokensPerSecond", None, (("model_name", "m"),))
    history = tick(cache, other, now + 30, changed)
    assert other.reads == [(T0 + STEP, T0 + 10 * STEP)]
    assert history is not None and (history.values == 100.0).all()


def test_an_absence_longer_than_the_window_reads_it_whole_and_shorter_ones_fill_in():
    cache, prometheus = new_cache(), FakePrometheus()
    tick(cache, prometheus, T0 + 10 * STEP)
    later = T0 + 14 * STEP  # 4 steps without a tick (a leader change): read from the re-read on
    history = tick(cache, prometheus, later)
    assert prometheus.reads[-1] == (T0 + 10 * STEP - REREAD, later)
    assert history is not None
    np.testing.assert_array_equal(history.values, full_read(prometheus, later))
    much_later = later + 30 * STEP
    history = tick(cache, prometheus, much_later)
    assert prometheus.reads[-1] == (much_later - (POINTS - 1) * STEP, much_later)
    assert history is not None
    np.testing.assert_array_equal(history.values, full_read(prometheus, much_later))


def test_no_point_at_all_is_no_history():
    cache = new_cache()
    assert tick(cache, FakePrometheus(gaps=set(T0 + STEP * np.arange(0, 20))), T0 + 10 * STEP) is (
        None
    )
    assert cache.history("never-read") is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_points_are_missing(value: float):
    cache = new_cache()
    end = T0 + 10 * STEP
    cache.store("svc", QUERY, end - STEP, end, [(end - STEP, 5.0), (end, value)])
    history = cache.history("svc")
    assert history is not None and history.values[-2] == 5.0 and np.isnan(history.values[-1])


def test_points_off_the_range_or_off_the_grid_land_on_the_nearest_grid_point_inside_it():
    cache = new_cache()
    end = T0 + 10 * STEP
    cache.store(
        "svc", QUERY, end - 2 * STEP, end, [(end - 2 * STEP - 20, 1.0), (end - 3 * STEP, 9.0)]
    )
    cache.store("svc", QUERY, end - 2 * STEP, end, [(end - STEP + 10, 2.0), (end + STEP, 9.0)])
    history = cache.history("svc")
    assert history is not None
    np.testing.assert_array_equal(history.values[-3:], [np.nan, 2.0, np.nan])


def test_retain_forgets_at_once_the_series_of_services_no_longer_asked_for():
    cache, prometheus = new_cache(), FakePrometheus()
    tick(cache, prometheus, T0 + 10 * STEP)
    cache.retain({"svc", "other"})
    assert cache.history("svc") is not None
    cache.retain({"other"})  # svc deleted
    assert cache.history("svc") is None
    # Back again: read over the whole window, as the first time.
    assert (
        cache.read_from("svc", QUERY, T0 + 11 * STEP)
        == cache.grid_end(T0 + 11 * STEP) - (POINTS - 1) * STEP
    )
