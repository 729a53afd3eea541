"""The PromQL tenancy guard: confine a query to the custom resource's namespace(s).

A user of one namespace may write PromQL (a custom demand preset, a training throughput query);
it must not read another namespace's series. The query is parsed with a real PromQL parser
(`promql-parser`, a binding of the Rust PromQL parser, Prometheus 2.45 grammar) and rendered back
by this module with every vector and matrix selector carrying exactly one `namespace` matcher:
`namespace="<ns>"` (or `namespace=~"a|b"` for an operator-built query spanning several
namespaces). Any namespace matcher already there, of any kind (`=`, `!=`, `=~`, `!~`), is
dropped first. Selectors are the only way PromQL reads data, so confining every selector confines
the query, whatever functions, binary operators, subqueries or offset/@ modifiers surround them.

The binding's own printer is not used: it drops subquery brackets (`rate(x[5m:])` prints as
`rate(x[5m])`) and does not escape quotes in strings. This renderer is checked on every call:
the output is parsed again and must have the same structure as the input (parentheses aside)
with the forced matcher, or the query is rejected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import promql_parser as pp

from aiscaler.metrics.errors import BadQuery

NAMESPACE_LABEL = "namespace"
MAX_QUERY_LENGTH = 4096

# Kubernetes namespace names are DNS-1123 labels; they contain no regex metacharacter
# other than '-', which is literal outside brackets, so they can be joined into `=~"a|b"`.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def confine(query: str, namespaces: Collection[str]) -> str:
    """Return `query` with every selector restricted to `namespaces`; raise BadQuery if it
    cannot be parsed or confined. One namespace gives `namespace="ns"`, several give
    `namespace=~"a|b"` (sorted)."""
    forced = _namespace_matcher(namespaces)
    if not query.strip():
        raise BadQuery("the PromQL query is empty")
    if len(query) > MAX_QUERY_LENGTH:
        raise BadQuery(f"the PromQL query is longer than {MAX_QUERY_LENGTH} characters")
    expr = _parse(query, "the query")
    confined = _render(expr, forced)
    # Re-parse what we produced: the structure must be the input's, with the forced matcher.
    reparsed = _parse(confined, "the confined query (internal error)")
    if _shape(reparsed, None) != _shape(expr, forced):
        raise BadQuery(f"cannot confine the query {query!r}: rendering it changed its meaning")
    return confined


def selector_namespace_matchers(query: str) -> list[list[str]]:
    """For each selector in `query`, the namespace matchers it carries (as PromQL text): the
    guard's invariant is that each list is exactly the forced matcher."""
    found: list[list[str]] = []

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector):
            found.append(
                [_matcher_text(m) for m in node.matchers.matchers if m.name == NAMESPACE_LABEL]
            )

    pp.walk(_parse(query, "the query"), visit)
    return found


def _namespace_matcher(namespaces: Collection[str]) -> pp.Matcher:
    names = sorted(set(namespaces))
    if not names:
        raise BadQuery("no namespace to confine the query to")
    for name in names:
        if not _DNS1123_LABEL.match(name):
            raise BadQuery(f"{name!r} is not a valid namespace name")
    if len(names) == 1:
        return pp.Matcher(pp.MatchOp.Equal, NAMESPACE_LABEL, names[0])
    return pp.Matcher(pp.MatchOp.Re, NAMESPACE_LABEL, "|".join(names))


def _parse(query: str, what: str) -> pp.Expr:
    try:
        return pp.parse(query)
    except ValueError as exc:
        raise BadQuery(f"{what} is not valid PromQL: {exc}") from exc


# ---- rendering -------------------------------------------------------------------------------

# Functions that read series not named by a selector in the query (Prometheus 3's info()
# joins `target_info` series); no namespace matcher can be forced onto those.
_IMPLICIT_READERS = frozenset({"info"})

# MatchOp values are not hashable, so look them up by their text.
_MATCH_OPS = {
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}


def _render(node: Any, forced: pp.Matcher) -> str:
    if isinstance(node, pp.ParenExpr):
        return f"({_render(node.expr, forced)})"
    if isinstance(node, pp.NumberLiteral):
        return _number(node.val)
    if isinstance(node, pp.StringLiteral):
        return _string(node.val)
    if isinstance(node, pp.VectorSelector):
        return _selector(node, forced) + _modifiers(node.offset, node.at)
    if isinstance(node, pp.MatrixSelector):
        vs = node.vector_selector
        return f"{_selector(vs, forced)}[{_duration(node.range)}]" + _modifiers(vs.offset, vs.at)
    if isinstance(node, pp.SubqueryExpr):
        if node.range is None:
            raise BadQuery("a subquery without a range cannot be confined")
        step = _duration(node.step) if node.step is not None else ""
        return f"({_render(node.expr, forced)})[{_duration(node.range)}:{step}]" + _modifiers(
            node.offset, node.at
        )
    if isinstance(node, pp.Call):
        if node.func.name in _IMPLICIT_READERS:
            raise BadQuery(
                f"{node.func.name}() reads series it does not name (info metrics "
                "of any namespace), so it cannot be confined"
            )
        args = ", ".join(_render(arg, forced) for arg in node.args)
        return f"{node.func.name}({args})"
    if isinstance(node, pp.AggregateExpr):
        grouping = ""
        if node.modifier is not None:
            word = "by" if node.modifier.type == pp.AggModifierType.By else "without"
            grouping = f" {word} ({', '.join(node.modifier.labels)}) "
        param = f"{_render(node.param, forced)}, " if node.param is not None else ""
        return f"{node.op}{grouping}({param}{_render(node.expr, forced)})"
    if isinstance(node, pp.UnaryExpr):
        return f"-{_operand(node.expr, forced)}"
    if isinstance(node, pp.BinaryExpr):
        return (
            f"{_operand(node.lhs, forced)} {node.op}{_binary_modifier(node.modifier)} "
            f"{_operand(node.rhs, forced)}"
        )
    raise BadQuery(f"cannot confine a query containing {type(node).__name__}")


# Operands that need no parentheses whatever the operator around them.
_ATOMS = (
    pp.VectorSelector,
    pp.MatrixSelector,
    pp.Call,
    pp.AggregateExpr,
    pp.StringLiteral,
    pp.ParenExpr,
)


def _operand(node: Any, forced: pp.Matcher) -> str:
    # Other operands are parenthesised, so precedence and associativity never matter.
    text = _render(node, forced)
    return text if isinstance(node, _ATOMS) else f"({text})"


def _selector(vs: pp.VectorSelector, forced: pp.Matcher) -> str:
    if vs.matchers.or_matchers:
        raise BadQuery(
            "`or` inside label matchers is not supported; write two selectors "
            "joined with the `or` operator instead"
        )
    kept = [m for m in vs.matchers.matchers if m.name != NAMESPACE_LABEL]
    inner = ", ".join(_matcher_text(m) for m in [*kept, forced])
    return f"{vs.name or ''}{{{inner}}}"


def _matcher_text(m: pp.Matcher) -> str:
    return f"{m.name}{_MATCH_OPS[str(m.op)]}{_string(m.value)}"


def _modifiers(offset: timedelta | None, at: pp.AtModifier | None) -> str:
    text = ""
    if offset is not None:
        text += f" offset {_duration(offset)}"
    if at is not None:
        if at.type == pp.AtModifierType.Start:
            text += " @ start()"
        elif at.type == pp.AtModifierType.End:
            text += " @ end()"
        elif at.at is not None:
            text += f" @ {at.at.timestamp():.3f}"
    return text


def _binary_modifier(mod: pp.BinModifier | None) -> str:
    if mod is None:
        return ""
    if mod.fill_values.lhs is not None or mod.fill_values.rhs is not None:
        raise BadQuery("fill values in vector matching are not supported")
    text = " bool" if mod.return_bool else ""
    if mod.matching is not None:
        word = "on" if mod.matching.type == pp.LabelModifierType.Include else "ignoring"
        text += f" {word}({', '.join(mod.matching.labels)})"
    if mod.card == pp.VectorMatchCardinality.ManyToOne:
        text += f" group_left({', '.join(mod.group_labels or [])})"
    elif mod.card == pp.VectorMatchCardinality.OneToMany:
        text += f" group_right({', '.join(mod.group_labels or [])})"
    return text


def _duration(d: timedelta) -> str:
    ms = round(d / timedelta(milliseconds=1))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(value)


def _string(value: str) -> str:
    # JSON escaping (\", \\, \n, \uXXXX) is a subset of PromQL's Go-style string escapes.
    return json.dumps(value, ensure_ascii=False)


# ---- structural comparison -------------------------------------------------------------------


def _shape(node: Any, forced: pp.Matcher | None) -> Any:
    """A comparable description of the AST, parentheses removed. With `forced`, each selector's
    namespace matchers are replaced by it, which is what `_render` must have produced."""
    if isinstance(node, pp.ParenExpr):
        return _shape(node.expr, forced)
    if isinstance(node, pp.NumberLiteral):
        return ("num", _number(node.val))
    if isinstance(node, pp.StringLiteral):
        return ("str", node.val)
    if isinstance(node, pp.VectorSelector):
        matchers = [(m.name, str(m.op), m.value) for m in node.matchers.matchers]
        if forced is not None:
            matchers = [m for m in matchers if m[0] != NAMESPACE_LABEL]
            matchers.append((forced.name, str(forced.op), forced.value))
        return ("vs", node.name, sorted(matchers), node.offset, _at(node.at))
    if isinstance(node, pp.MatrixSelector):
        return ("ms", _shape(node.vector_selector, forced), node.range)
    if isinstance(node, pp.SubqueryExpr):
        return ("sq", _shape(node.expr, forced), node.range, node.step, node.offset, _at(node.at))
    if isinstance(node, pp.Call):
        return ("call", node.func.name, [_shape(a, forced) for a in node.args])
    if isinstance(node, pp.AggregateExpr):
        agg = node.modifier
        return (
            "agg",
            str(node.op),
            agg and (str(agg.type), list(agg.labels)),
            node.param is not None and _shape(node.param, forced),
            _shape(node.expr, forced),
        )
    if isinstance(node, pp.UnaryExpr):
        return ("neg", _shape(node.expr, forced))
    if isinstance(node, pp.BinaryExpr):
        mod = node.modifier
        mod_shape = mod and (
            str(mod.card),
            mod.return_bool,
            mod.matching and (str(mod.matching.type), list(mod.matching.labels)),
            list(mod.group_labels or []),
        )
        return ("bin", str(node.op), mod_shape, _shape(node.lhs, forced), _shape(node.rhs, forced))
    raise BadQuery(f"cannot confine a query containing {type(node).__name__}")


def _at(at: pp.AtModifier | None) -> Any:
    return at and (str(at.type), at.at and round(at.at.timestamp(), 3))
