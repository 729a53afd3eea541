"""Custom resources made bad, for property tests: a valid example with values replaced at
random paths (wrong types, huge, negative, non-finite-looking, unicode, nested junk), keys
removed and unknown keys added; what the API server, the operator or both must refuse or
handle."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import strategies as st

from .components import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.sampled_from([0, -1, 1, 2**31, 10**30, 0.5, 1e-300, 1e308, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "NaN", "Infinity", "1e999", "🚀", "a" * 300, "vllm", "custom"]),
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def example(name: str) -> dict[str, Any]:
    """The custom resource of an example file (the first aiscaler object in it)."""
    docs = yaml.safe_load_all((EXAMPLES / name).read_text())
    return next(d for d in docs if d and d["apiVersion"].startswith("aiscaler.dev/"))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `value` (dict keys and list indices)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*prefix, index)
            yield from paths(inner, (*prefix, index))


@st.composite
def broken(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """`valid` (a whole object) with one to three of its spec's values replaced or removed, or
    unknown keys added."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        spec_paths = [p for p in paths(doc["spec"])]
        path = draw(st.sampled_from(spec_paths)) if spec_paths else ()
        parent = doc["spec"]
        for part in path[:-1]:
            parent = parent[part]
        change = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if change == "replace" and path:
            parent[path[-1]] = draw(json_values)
        elif change == "remove" and path and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return doc
