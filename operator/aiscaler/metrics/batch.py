"""Plan one tick's queries for all services and jobs, and read the answers back. Pure.

`plan` groups services that can share a query (same engine, unit or latency metric, and the
same selector label keys) and builds one confined range query per group and metric kind;
custom and training queries are one query each. `assemble` attributes each answer's series
to the services by their (namespace, selector values) and turns points into readings.

Every reading is the newest point of a range query ending now (at `probe_step_s` over the last
`probe_s`), so its age is known: a point older than `stale_after_s` is Stale, no point within
the window is Empty. The demand history is read separately, on the model's step, and only as
far back as the `HistoryCache` needs (metrics/history.py): the whole window once, then the new
points and a re-read of the last `reread_s` each tick.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiscaler.core.errors import detached
from aiscaler.metrics import presets
from aiscaler.metrics.errors import BadQuery, Empty, MetricError
from aiscaler.metrics.guard import confine
from aiscaler.metrics.history import HistoryCache
from aiscaler.metrics.readings import Point, Series, newest
from aiscaler.metrics.source import (
    History,
    JobQuery,
    Measurements,
    Reading,
    Sample,
    ServiceMetrics,
    ServiceQuery,
)


@dataclass(frozen=True)
class Settings:
    history_step_s: int = 60  # the forecaster's step
    history_points: int = 288  # the forecaster's context length
    window_s: int = 120  # rate()/*_over_time() window for everything but demand history
    probe_s: int = 300  # how far back the newest point of a reading is looked for
    probe_step_s: int = 15  # resolution of that look-back
    stale_after_s: float = 90.0  # a newest point older than this is Stale
    reread_s: int = 300  # history points this recent are read again (late samples)

    @property
    def demand_window_s(self) -> int:
        """The rate window of the demand sample planned on (at least one history step)."""
        return max(self.history_step_s, self.window_s)


@dataclass(frozen=True)
class RangeQuery:
    promql: str
    start: float
    end: float
    step_s: int


@dataclass(frozen=True)
class Batch:
    """One query and the services (or jobs) it answers for."""

    kind: str  # demand | served | latency | queue | gpu | custom_demand | throughput
    by: tuple[str, ...]  # labels that identify a member in the answer
    members: tuple[ServiceQuery | JobQuery, ...]
    query: RangeQuery | MetricError  # the error when no query can be built


def plan(
    services: Sequence[ServiceQuery],
    jobs: Sequence[JobQuery],
    now: float,
    settings: Settings,
    history: HistoryCache,
) -> list[Batch]:
    """The queries of one tick. Demand history is read from where `history` needs it (the
    whole window for a service it does not hold, else only the latest points): services of a
    group that need the same range share one query."""
    end = float(round(now))  # the client sends whole seconds
    history_end = history.grid_end(now)
    demand_window = settings.demand_window_s
    probe_start = end - settings.probe_s

    def probe(promql: str) -> RangeQuery:
        return RangeQuery(promql, probe_start, end, settings.probe_step_s)

    def history_from(start: float) -> Callable[[str], RangeQuery]:
        return lambda promql: RangeQuery(promql, start, history_end, settings.history_step_s)

    batches: list[Batch] = []
    # (kind, engine, unit or latency metric, quantile, selector keys, history start) -> services
    groups: dict[tuple[str, str, str, float, tuple[str, ...], float | None], list[ServiceQuery]] = (
        defaultdict(list)
    )
    for service in services:
        start = history.read_from(service.key, service.demand_identity, now)
        if service.preset == "custom":
            batches += _custom(service, history_from(start), probe)
            continue
        keys = tuple(sorted(service.selector))
        for kind, variant, quantile, since in (
            ("history", service.unit, 0.0, start),
            ("demand", service.unit, 0.0, None),
            ("served", "", 0.0, None),
            ("queue", "", 0.0, None),
            ("latency", service.latency_metric, service.latency_quantile, None),
        ):
            groups[(kind, service.preset, variant, quantile, keys, since)].append(service)

    for (kind, engine, variant, quantile, keys, since), members in groups.items():
        namespaces = {m.namespace for m in members}
        try:
            by = presets.group_labels(keys)
            if kind in ("history", "demand"):
                promql = confine(
                    presets.demand_query(engine, variant, by, demand_window), namespaces
                )
                query = history_from(since)(promql) if since is not None else probe(promql)
            else:
                query = probe(
                    confine(
                        _probe_query(kind, engine, variant, quantile, by, settings.window_s),
                        namespaces,
                    )
                )
        except BadQuery as error:
            batches.append(Batch(kind, (), tuple(members), detached(error)))
            continue
        batches.append(Batch(kind, by, tuple(members), query))

    if services:
        gpu_query = presets.gpu_utilisation_query(settings.window_s)
        namespaces = {s.namespace for s in services}
        batches.append(
            Batch(
                "gpu",
                ("namespace", "pod"),
                tuple(services),
                _or_error(lambda: probe(confine(gpu_query, namespaces))),
            )
        )
    for job in jobs:
        batches.append(_throughput(job, probe))
    return batches


def _probe_query(
    kind: str, engine: str, variant: str, quantile: float, by: tuple[str, ...], window_s: int
) -> str:
    if kind == "served":
        return presets.served_query(engine, by, window_s)
    if kind == "queue":
        return presets.queue_query(engine, by, window_s)
    return presets.latency_query(engine, variant, quantile, by, window_s)


def _throughput(job: JobQuery, probe: Callable[[str], RangeQuery]) -> Batch:
    return Batch(
        "throughput", (), (job,), _or_error(lambda: probe(confine(job.query, [job.namespace])))
    )


def _custom(
    service: ServiceQuery,
    history: Callable[[str], RangeQuery],
    probe: Callable[[str], RangeQuery],
) -> list[Batch]:
    """A custom demand query: its history and its newest value, each a query of its own."""
    try:
        if not service.query:
            raise BadQuery("preset custom needs demand.query")
        promql = confine(service.query, [service.namespace])
    except BadQuery as error:
        kept = detached(error)
        return [Batch(kind, (), (service,), kept) for kind in ("custom_history", "custom_demand")]
    return [
        Batch("custom_history", (), (service,), history(promql)),
        Batch("custom_demand", (), (service,), probe(promql)),
    ]


def _or_error(build: Callable[[], RangeQuery]) -> RangeQuery | MetricError:
    try:
        return build()
    except BadQuery as error:
        return detached(error)


Answer = list[Series] | MetricError


def assemble(
    batches: Sequence[Batch],
    answers: Sequence[Answer],
    services: Sequence[ServiceQuery],
    jobs: Sequence[JobQuery],
    now: float,
    settings: Settings,
    history: HistoryCache,
) -> Measurements:
    """Readings per service and job from each batch's answer (same order as `batches`); the
    history reads go into `history`, which then gives each service's demand history."""
    readings: dict[tuple[str, tuple[str, str]], Reading] = {}
    history_errors: dict[tuple[str, str], MetricError] = {}
    for batch, answer in zip(batches, answers, strict=True):
        if isinstance(batch.query, MetricError):
            answer = batch.query
        if batch.kind == "gpu":
            readings.update(_gpu(batch, answer, now, settings))
            continue
        kind = batch.kind.removeprefix("custom_")
        for member, points in zip(batch.members, _points_per_member(batch, answer), strict=True):
            if isinstance(points, MetricError):
                readings[(kind, member.key)] = points
                if kind == "history":
                    history_errors[member.key] = points
            elif kind == "history":
                assert isinstance(member, ServiceQuery) and isinstance(batch.query, RangeQuery)
                query = batch.query
                history.store(member.key, member.demand_identity, query.start, query.end, points)
            else:
                what = f"{kind} of {member.namespace}/{member.name}"
                readings[(kind, member.key)] = newest(points, now, settings.stale_after_s, what)
    history.retain({s.key for s in services})

    def get(kind: str, key: tuple[str, str]) -> Reading:
        return readings.get((kind, key), Empty(f"no {kind} query for {key[0]}/{key[1]}"))

    def demand_history(service: ServiceQuery) -> History | MetricError:
        if service.key in history_errors:
            return history_errors[service.key]
        held = history.history(service.key)
        return held or Empty(f"no data for demand of {service.namespace}/{service.name}")

    result: dict[tuple[str, str], ServiceMetrics] = {}
    for service in services:
        key = service.key
        custom = service.preset == "custom"
        result[key] = ServiceMetrics(
            demand=get("demand", key),
            demand_history=demand_history(service),
            served=None if custom else get("served", key),
            latency=None if custom else get("latency", key),
            queue=None if custom else get("queue", key),
            gpu_utilisation=get("gpu", key),
        )
    return Measurements(result, {job.key: get("throughput", job.key) for job in jobs})


def _points_per_member(batch: Batch, answer: Answer) -> list[tuple[Point, ...] | MetricError]:
    """Each member's points (in `batch.members` order); () when it has no series."""
    if isinstance(answer, MetricError):
        return [answer] * len(batch.members)
    if not batch.by:  # a member's own query: it must answer with one series
        if len(answer) > 1:
            member = batch.members[0]
            return [
                BadQuery(
                    f"the query of {member.namespace}/{member.name} returns {len(answer)} "
                    "series; it must return one (aggregate it, e.g. with sum(...))"
                )
            ]
        return [answer[0].points if answer else ()]
    # A batch answer: each series carries its service's namespace and selector values.
    index = {tuple(s.labels.get(label, "") for label in batch.by): s.points for s in answer}
    return [index.get(_wanted(member, batch.by), ()) for member in batch.members]


def _wanted(member: ServiceQuery | JobQuery, by: tuple[str, ...]) -> tuple[str, ...]:
    assert isinstance(member, ServiceQuery)
    return tuple(
        member.namespace if label == "namespace" else member.selector[label] for label in by
    )


# A Deployment's pod: <deployment>-<replicaset hash>-<suffix>.
_DEPLOYMENT_POD = re.compile(r"^(.+)-[a-z0-9]+-[a-z0-9]+$")


def _gpu(
    batch: Batch,
    answer: Answer,
    now: float,
    settings: Settings,
) -> dict[tuple[str, tuple[str, str]], Reading]:
    """GPU utilisation per service: the mean over its Deployment's pods."""
    if isinstance(answer, MetricError):
        return {("gpu", member.key): answer for member in batch.members}
    pods: dict[tuple[str, str], list[Series]] = defaultdict(list)
    for series in answer:
        match = _DEPLOYMENT_POD.match(series.labels.get("pod", ""))
        if match:
            pods[(series.labels.get("namespace", ""), match.group(1))].append(series)
    out: dict[tuple[str, tuple[str, str]], Reading] = {}
    for member in batch.members:
        assert isinstance(member, ServiceQuery)
        what = f"GPU utilisation of {member.namespace}/{member.name}"
        own = pods.get((member.namespace, member.workload or member.name), [])
        readings = [newest(s.points, now, settings.stale_after_s, what) for s in own]
        out[("gpu", member.key)] = _mean(readings, what)
    return out


def _mean(readings: list[Reading], what: str) -> Reading:
    if not readings:
        return Empty(f"no data for {what}")
    for reading in readings:
        if isinstance(reading, MetricError):
            return reading
    samples = [r for r in readings if isinstance(r, Sample)]
    return Sample(sum(s.value for s in samples) / len(samples), min(s.time for s in samples))
