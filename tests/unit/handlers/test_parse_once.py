"""The observe step validates a custom resource once per resourceVersion (and set of GPU pools):
a steady tick over 1,000 unchanged resources re-used what it found, and any change is parsed
again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from test_mapping import POOLS, service_body

from aiscaler.core.types import PoolSpec
from aiscaler.handlers.mapping import parse_service
from aiscaler.handlers.observe import parse_once
from aiscaler.handlers.state import Operator


@pytest.fixture
def op() -> Iterator[Operator]:
    operator = Operator(None, None, None, None, "ops")  # type: ignore[arg-type]  # no I/O here
    yield operator
    operator.kube_pool.shutdown()


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: Mapping[str, Any], pools: Sequence[PoolSpec]) -> Any:
        self.calls += 1
        return parse_service(body, pools)


def at_version(version: str | None, **spec: Any) -> dict[str, Any]:
    body = service_body(**spec)
    if version is not None:
        body["metadata"]["resourceVersion"] = version
    return body


OTHER_POOLS = [PoolSpec(name="h100", gpus_per_node=4, max_nodes=2)]


@pytest.mark.parametrize(
    ("first", "second", "second_pools", "parses"),
    [
        (at_version("7"), at_version("7"), POOLS, 1),  # unchanged: kept
        (at_version("7"), at_version("8", replicas={"max": 9}), POOLS, 2),  # a change
        (at_version("7"), at_version("7"), OTHER_POOLS, 2),  # the pools changed
        (at_version(None), at_version(None), POOLS, 2),  # not from the API server
    ],
    ids=["same version", "new version", "other pools", "no version"],
)
def test_an_object_is_parsed_again_only_when_it_or_the_pools_changed(
    op: Operator,
    first: dict[str, Any],
    second: dict[str, Any],
    second_pools: list[PoolSpec],
    parses: int,
) -> None:
    parse = Counting()
    before = parse_once(op, first, POOLS, parse)
    after = parse_once(op, second, second_pools, parse)
    assert parse.calls == parses
    assert (after is before) == (parses == 1)
    assert after == parse_service(second, second_pools) and not isinstance(after, list)


def test_an_invalid_spec_stays_invalid_with_its_reasons(op: Operator) -> None:
    parse = Counting()
    body = at_version("3", replicas={"max": -1})
    first = parse_once(op, body, POOLS, parse)
    assert isinstance(first, list) and first
    assert parse_once(op, body, POOLS, parse) == first and parse.calls == 1


def test_what_was_parsed_for_a_deleted_object_is_forgotten(op: Operator) -> None:
    kept, gone = at_version("1"), at_version("2")
    gone["metadata"]["name"] = "gone"
    parse_once(op, kept, POOLS, Counting())
    parse_once(op, gone, POOLS, Counting())
    op.forget_all_but({("InferenceService", "ml/llm")})
    assert list(op.parsed) == [("InferenceService", "ml/llm")]
