"""Bin packing onto node shapes and balloon headroom, worked by hand."""

from __future__ import annotations

import random

import pytest

from aiscaler.core.nodes import nodes_needed, plan_pool
from aiscaler.core.types import PoolSpec, Reason


@pytest.mark.parametrize(
    ("pods", "gpus_per_node", "nodes"),
    [
        ([], 8, 0),
        ([1] * 8, 8, 1),
        ([1] * 9, 8, 2),
        ([2, 2, 2, 2], 4, 2),
        ([3, 3, 2], 4, 3),  # no two fit together
        ([3, 1, 3, 1], 4, 2),  # decreasing order pairs 3 with 1
        ([4, 4, 2, 2, 2, 2], 8, 2),
        ([0, 0], 8, 0),  # pods without GPUs need no GPU node
    ],
)
def test_nodes_needed(pods: list[int], gpus_per_node: int, nodes: int) -> None:
    assert nodes_needed(pods, gpus_per_node) == nodes


def first_fit_decreasing(pods: list[int], gpus_per_node: int) -> int:
    """The textbook packing, every node searched from the first for every pod."""
    free: list[int] = []
    for size in sorted((p for p in pods if p > 0), reverse=True):
        fits = [i for i, left in enumerate(free) if left >= size]
        if fits:
            free[fits[0]] -= size
        else:
            free.append(gpus_per_node - size)
    return len(free)


@pytest.mark.parametrize("seed", range(20))
def test_nodes_needed_packs_as_first_fit_decreasing(seed: int) -> None:
    rng = random.Random(seed)
    gpus_per_node = rng.choice([2, 4, 8, 16])
    pods = [rng.randint(0, gpus_per_node) for _ in range(rng.randint(0, 300))]
    assert nodes_needed(pods, gpus_per_node) == first_fit_decreasing(pods, gpus_per_node)


def test_pod_larger_than_a_node_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        nodes_needed([9], 8)


def pool(**changes: object) -> PoolSpec:
    fields: dict[str, object] = {"name": "p", "gpus_per_node": 8, "max_nodes": 10}
    fields.update(changes)
    return PoolSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "now", "ahead", "plan", "reason"),
    [
        (pool(), [1] * 4, [1] * 4, (1, 1, 0), Reason.NO_HEADROOM_NEEDED),
        (pool(), [1] * 4, [1] * 12, (1, 2, 1), Reason.HEADROOM),
        (pool(), [4, 4], [4] * 5, (1, 3, 2), Reason.HEADROOM),
        (pool(min_nodes=2), [1] * 4, [1] * 12, (1, 2, 0), Reason.NO_HEADROOM_NEEDED),
        (pool(min_nodes=2), [1] * 4, [1] * 20, (1, 3, 1), Reason.HEADROOM),
        (pool(max_nodes=1), [1] * 4, [1] * 12, (1, 1, 0), Reason.MAX_NODES_REACHED),
        (pool(max_nodes=2), [1] * 4, [1] * 30, (1, 2, 1), Reason.MAX_NODES_REACHED),
        (pool(), [1] * 12, [1] * 4, (2, 2, 0), Reason.NO_HEADROOM_NEEDED),  # ahead >= now
    ],
)
def test_plan_pool(
    spec: PoolSpec, now: list[int], ahead: list[int], plan: tuple[int, int, int], reason: Reason
) -> None:
    p = plan_pool(spec, now, ahead)
    assert (p.nodes_now, p.nodes_at_lead, p.balloon_pods) == plan
    assert p.reason == reason
    assert p.balloon_gpus == spec.gpus_per_node
    assert p.gpus_planned == sum(now)
