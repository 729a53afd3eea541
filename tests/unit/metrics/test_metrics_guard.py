"""The tenancy guard: every selector of a confined query carries exactly the namespace matcher."""

from __future__ import annotations

import promql_parser as pp
import pytest
from harness.promql import queries
from hypothesis import given, settings

from aiscaler.metrics.errors import BadQuery
from aiscaler.metrics.guard import confine, selector_namespace_matchers


def selectors(query: str) -> list[pp.VectorSelector]:
    found: list[pp.VectorSelector] = []
    pp.walk(
        pp.parse(query),
        lambda node: found.append(node) if isinstance(node, pp.VectorSelector) else None,
    )
    return found


def assert_confined(query: str, namespace_matcher: str = 'namespace="team-a"') -> None:
    matchers = selector_namespace_matchers(query)
    assert matchers, "expected at least one selector"
    assert all(found == [namespace_matcher] for found in matchers), matchers


# (query, expected confined text). The expected texts are written by hand from PromQL's
# grammar: selectors gain `namespace="team-a"` last, any namespace matcher is dropped, and
# non-atomic operands are parenthesised.
CONFINED = [
    ("up", 'up{namespace="team-a"}'),
    ('up{job="x"}', 'up{job="x", namespace="team-a"}'),
    ('up{namespace="team-b"}', 'up{namespace="team-a"}'),
    ('up{namespace!="team-a"}', 'up{namespace="team-a"}'),
    ('up{namespace=~".*"}', 'up{namespace="team-a"}'),
    ('up{namespace!~"team-a", namespace=~"team-.*"}', 'up{namespace="team-a"}'),
    ('{__name__=~".+"}', '{__name__=~".+", namespace="team-a"}'),
    ('{namespace=~".+"}', '{namespace="team-a"}'),
    ("rate(x[5m])", 'rate(x{namespace="team-a"}[300s])'),
    ("rate(x[5m] offset 1h)", 'rate(x{namespace="team-a"}[300s] offset 3600s)'),
    ("x offset -5m", 'x{namespace="team-a"} offset -300s'),
    ("x @ 1700000000", 'x{namespace="team-a"} @ 1700000000.000'),
    ("x @ start()", 'x{namespace="team-a"} @ start()'),
    (
        "max_over_time(rate(x[1m])[10m:30s])",
        'max_over_time((rate(x{namespace="team-a"}[60s]))[600s:30s])',
    ),
    ("rate(x[5m:])", 'rate((x{namespace="team-a"})[300s:])'),
    ("sum by (pod) (x)", 'sum by (pod) (x{namespace="team-a"})'),
    ("sum(x) without (pod)", 'sum without (pod) (x{namespace="team-a"})'),
    ("topk(3, x)", 'topk(3.0, x{namespace="team-a"})'),
    ('count_values("v", x)', 'count_values("v", x{namespace="team-a"})'),
    (
        "x / on(pod) group_left(node) y",
        'x{namespace="team-a"} / on(pod) group_left(node) y{namespace="team-a"}',
    ),
    ('x or on() y{namespace="kube-system"}', 'x{namespace="team-a"} or on() y{namespace="team-a"}'),
    ("x > bool 0", 'x{namespace="team-a"} > bool (0.0)'),
    ("-x", '-x{namespace="team-a"}'),
    ("a - b - c", '(a{namespace="team-a"} - b{namespace="team-a"}) - c{namespace="team-a"}'),
    ("a - (b - c)", 'a{namespace="team-a"} - (b{namespace="team-a"} - c{namespace="team-a"})'),
    (
        'label_replace(x, "namespace", "team-b", "", "")',
        'label_replace(x{namespace="team-a"}, "namespace", "team-b", "", "")',
    ),
    ('x{path="a\\"b\\\\c"}', 'x{path="a\\"b\\\\c", namespace="team-a"}'),
    ("vector(1)", "vector(1.0)"),
    ("time() - 5", "time() - (5.0)"),
]


@pytest.mark.parametrize(("query", "expected"), CONFINED)
def test_confine_rewrites_every_selector(query: str, expected: str) -> None:
    assert confine(query, ["team-a"]) == expected


@pytest.mark.parametrize("query", [q for q, _ in CONFINED if selectors(q)])
def test_confined_output_has_exactly_the_namespace_matcher(query: str) -> None:
    assert_confined(confine(query, ["team-a"]))


def test_several_namespaces_become_one_anchored_regex_matcher() -> None:
    out = confine('x{namespace="other"}', ["team-b", "team-a", "team-a"])
    assert out == 'x{namespace=~"team-a|team-b"}'


def test_confining_twice_changes_nothing() -> None:
    once = confine('sum(rate(x{namespace=~".*"}[5m])) / on() group_left y', ["team-a"])
    assert confine(once, ["team-a"]) == once


def test_non_namespace_matchers_are_kept_in_every_selector() -> None:
    out = confine('a{job="j", namespace="x"} + b{pod=~"p.*"}', ["team-a"])
    texts = [{str(m) for m in s.matchers.matchers} for s in selectors(out)]
    assert texts == [{'job="j"', 'namespace="team-a"'}, {'pod=~"p.*"', 'namespace="team-a"'}]


REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    ("up{", "not valid PromQL"),
    ("sum(", "not valid PromQL"),
    ("info(up)", "cannot be confined"),  # Prometheus 3's info() reads series it does not name
    ('sum(info(rate(x[5m]), {k8s_cluster_name=~".+"}))', "cannot be confined"),
    ('up{a="b" or c="d"}', "`or` inside label matchers"),
    ("x" * 5000, "longer than"),
]


@pytest.mark.parametrize(("query", "why"), REJECTED)
def test_unconfinable_queries_are_rejected_with_the_reason(query: str, why: str) -> None:
    with pytest.raises(BadQuery, match=why):
        confine(query, ["team-a"])


@pytest.mark.parametrize("namespace", ["", "Team-A", "a_b", "-a", "a" * 64, 'a"}'])
def test_invalid_namespace_names_are_rejected(namespace: str) -> None:
    with pytest.raises(BadQuery, match="namespace"):
        confine("up", [namespace])


def test_no_namespace_is_rejected() -> None:
    with pytest.raises(BadQuery, match="no namespace"):
        confine("up", [])


# ---- property: random queries from PromQL's grammar (harness.promql) ------------------------


@settings(max_examples=150, deadline=None)
@given(queries)
def test_any_query_is_confined_or_rejected(query: str) -> None:
    try:
        pp.parse(query)
    except ValueError:
        with pytest.raises(BadQuery):
            confine(query, ["team-a"])
        return
    try:
        out = confine(query, ["team-a"])
    except BadQuery as error:  # parsed, yet not confinable: only for the reasons REJECTED names
        assert "cannot be confined" in str(error) or "inside label matchers" in str(error)
        return
    if selectors(query):
        assert_confined(out)
    # The guard only touches namespace matchers: the rest of every selector is unchanged.
    before = [
        sorted(str(m) for m in s.matchers.matchers if m.name != "namespace")
        for s in selectors(query)
    ]
    after = [
        sorted(str(m) for m in s.matchers.matchers if m.name != "namespace") for s in selectors(out)
    ]
    assert before == after
