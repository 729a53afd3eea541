"""The PromQL tenancy guard against a real Prometheus: a confined query, however hostile, reads
nothing outside its namespace.

Two Prometheus servers hold the same series of namespace team-a; one also holds team-b's. Every
generated query (harness.promql: other namespaces, regex matchers on `namespace`, `or` /
`unless` / subqueries, `label_replace` and `count_values` writing `namespace`, ...) is confined
to team-a and evaluated on both at the same instant: the answers must be the same. Any
difference would be data read from team-b.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from harness.prometheus import PrometheusServer, Series
from harness.promql import METRICS, OTHER, OWN, queries
from hypothesis import HealthCheck, event, given, settings

from aiscaler.metrics.errors import BadQuery
from aiscaler.metrics.guard import confine

AT = float(round(time.time()) - 120)  # the instant every query is evaluated at
STEP_S = 15


def series(namespace: str) -> list[Series]:
    """Every metric the queries name, for two pods, with values that differ per namespace."""
    base = 100.0 if namespace == OWN else 7_000.0
    out = []
    for m, metric in enumerate(METRICS):
        for p, pod in enumerate(("p1", "p2")):
            labels = {"namespace": namespace, "pod": pod, "job": "a" if p else "b"}
            value = base + 10 * m + p
            samples = [(AT - age, value + age / 60) for age in range(1200, -1, -STEP_S)]
            out.append(Series(metric, labels, samples))
    return out


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    # Module-scoped (the fixture prometheus_factory is per test): started once for all examples.
    started = []
    for name, history in (("both", series(OWN) + series(OTHER)), ("own", series(OWN))):
        server = PrometheusServer(tmp_path_factory.mktemp(name))
        server.backfill(history)
        server.start()
        started.append(server)
    yield started[0].url, started[1].url
    for server in started:
        server.stop()


def evaluate(url: str, query: str) -> Any:
    """The sorted answer of an instant query at AT, or the error type."""
    body = requests.get(f"{url}/api/v1/query", params={"query": query, "time": AT}, timeout=10)
    answer = body.json()
    if answer["status"] != "success":
        return ("error", answer["errorType"])
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return data["result"][1]
    return sorted(
        (sorted(s["metric"].items()), s.get("value", s.get("values"))) for s in data["result"]
    )


def test_the_data_differ_between_the_two_servers(servers: tuple[str, str]) -> None:
    # Otherwise the property below proves nothing.
    both, own = servers
    assert evaluate(both, "sum(x)") != evaluate(own, "sum(x)")
    assert evaluate(both, confine("sum(x)", [OWN])) == evaluate(own, "sum(x)")


HOSTILE = [
    f'x{{namespace="{OTHER}"}}',
    f'x{{namespace=~"{OWN}|{OTHER}"}}',
    'x{namespace!=""}',
    '{__name__=~".+"}',
    'sum by (namespace) ({__name__=~".+"})',
    'x or on() y{namespace=~".*"}',
    f'x unless on(pod) x{{namespace="{OTHER}"}}',
    f'label_replace(x, "namespace", "{OTHER}", "", "") or x{{namespace="{OTHER}"}}',
    f'max_over_time(x{{namespace!="{OWN}"}}[10m:1m])',
    'count_values("namespace", y{namespace=~"team-.*"})',
    f'absent(x{{namespace="{OTHER}", pod="p1"}})',
    f'x{{namespace="{OTHER}"}} @ end() offset 1m',
    f'sum(rate(x{{namespace=~".+"}}[5m])) / on() group_left sum(y{{namespace="{OTHER}"}})',
]


@pytest.mark.parametrize("query", HOSTILE)
def test_a_hostile_query_sees_its_own_namespace_only(servers: tuple[str, str], query: str) -> None:
    both, own = servers
    confined = confine(query, [OWN])
    assert evaluate(both, confined) == evaluate(own, confined)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_a_confined_query_reads_only_its_namespace(servers: tuple[str, str], query: str) -> None:
    both, own = servers
    try:
        confined = confine(query, [OWN])
    except BadQuery:
        event("rejected by the guard")
        return
    answer = evaluate(both, confined)
    event("error in Prometheus" if answer and answer[0] == "error" else "evaluated")
    assert answer == evaluate(own, confined), (query, confined)
