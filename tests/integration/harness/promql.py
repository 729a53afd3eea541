"""PromQL queries generated from the grammar for property tests of the tenancy guard, hostile
ones included: matchers of every kind on `namespace` (other namespaces, regexes, empty values),
`{__name__=~".+"}`, `or` / `unless` / `and` with vector matching, subqueries, offsets and `@`,
and functions that rewrite or invent labels (`label_replace` writing `namespace`,
`count_values("namespace", ...)`, `absent`)."""

from __future__ import annotations

from hypothesis import strategies as st

# The namespaces the test data uses: a query is confined to the first, the second is foreign.
OWN, OTHER = "team-a", "team-b"
METRICS = ["x", "y", "vllm:num_requests_waiting"]

_label = st.sampled_from(["job", "pod", "namespace", "namespace", "le", "instance"])
_value = st.text(alphabet='ab.*"\\\n-', max_size=6)
_op = st.sampled_from(["=", "!=", "=~", "!~"])
_namespace_value = st.sampled_from(
    [OTHER, OWN, "", ".*", ".+", f"{OWN}|{OTHER}", "team-.*", f"(?i){OTHER.upper()}"]
)


@st.composite
def _matcher(draw: st.DrawFn) -> str:
    label, op = draw(_label), draw(_op)
    if label == "namespace":
        value = draw(_namespace_value)
    elif op in ("=~", "!~"):
        value = draw(st.sampled_from([".*", ".+", "a|b", "team-.*"]))
    else:
        value = draw(_value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{label}{op}"{escaped}"'


@st.composite
def _plain_selector(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from([*METRICS, ""]))
    matchers = draw(st.lists(_matcher(), max_size=3))
    if not name:
        matchers.append('__name__=~".+"')
    return f"{name}{{{', '.join(matchers)}}}"


_modifier = st.sampled_from(["", " offset 5m", " offset -1m", " @ end()"])
_selector = st.builds(lambda s, m: s + m, _plain_selector(), _modifier)
_range = st.builds(lambda s, m: f"{s}[5m]{m}", _plain_selector(), _modifier)


_BINARY = [
    "+",
    "-",
    "*",
    "/",
    "and",
    "or",
    "unless",
    "> bool",
    "/ on() group_left",
    "* ignoring(pod)",
    "or on()",
    "unless on(namespace)",
    "and on(job)",
]


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    agg = st.sampled_from(["sum", "max", "avg", "count", "group"])
    return st.one_of(
        st.builds(lambda a, b, op: f"{a} {op} {b}", children, children, st.sampled_from(_BINARY)),
        st.builds(lambda a, g: f"{g} by (namespace, pod) ({a})", children, agg),
        st.builds(lambda a: f"({a})", children),
        st.builds(lambda a: f"-{a}", children),
        st.builds(lambda a: f"max_over_time(({a})[10m:1m])", children),
        st.builds(lambda a: f'label_replace({a}, "namespace", "{OTHER}", "", "")', children),
        st.builds(lambda a: f'label_join({a}, "namespace", "", "pod")', children),
        st.builds(lambda a: f'count_values("namespace", {a})', children),
        st.builds(lambda a: f"topk(2, {a})", children),
        st.builds(lambda a: f"absent({a})", children),
        st.builds(lambda a: f"abs({a})", children),
    )


def _leaf() -> st.SearchStrategy[str]:
    range_function = st.sampled_from(["rate", "last_over_time", "absent_over_time"])
    return st.one_of(
        _selector,
        st.builds(lambda f, r: f"{f}({r})", range_function, _range),
        st.just("vector(1)"),
    )


queries = st.recursive(_leaf(), _extend, max_leaves=6)
"""PromQL expressions; some are not valid PromQL (the guard must reject those)."""
