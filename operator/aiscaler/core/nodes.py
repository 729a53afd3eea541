"""Node plan per GPU pool: bin-pack planned pods onto node shapes; headroom as balloon pods.

A balloon pod is a low-priority pause container requesting a whole node's GPUs: while it is
pending, the cluster autoscaler (or Karpenter) adds a node for it; real pods preempt it. One
balloon per node the forecast will need within the pool's provisioning time plus the service's
cold start (the allocator's horizon), beyond the nodes the planned pods need now.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiscaler.core.types import PoolPlan, PoolSpec, Reason


def nodes_needed(pod_gpus: Sequence[int], gpus_per_node: int) -> int:
    """Nodes of `gpus_per_node` GPUs that hold pods of the given GPU sizes (first-fit
    decreasing; pods with 0 GPUs need no GPU node). Raises ValueError for a pod that fits no
    node."""
    free: list[int] = []  # free GPUs per opened node
    # first[s]: no node before it has s GPUs free. A node's free GPUs only fall, so the search
    # for the first fit of a size resumes there: linear in pods plus nodes per size, not their
    # product (thousands of replicas on hundreds of nodes).
    first = [0] * (gpus_per_node + 1)
    for size in sorted(pod_gpus, reverse=True):
        if size <= 0:
            continue
        if size > gpus_per_node:
            raise ValueError(f"a pod of {size} GPUs does not fit a {gpus_per_node}-GPU node")
        i = first[size]
        while i < len(free) and free[i] < size:
            i += 1
        first[size] = i
        if i == len(free):
            free.append(gpus_per_node - size)
        else:
            free[i] -= size
    return len(free)


def plan_pool(pool: PoolSpec, pods_now: Sequence[int], pods_at_lead: Sequence[int]) -> PoolPlan:
    """The pool's node plan from the GPU sizes of the pods planned now and of those needed
    within its provisioning time (`pods_at_lead`, a superset of `pods_now` in practice)."""
    now = nodes_needed(pods_now, pool.gpus_per_node)
    ahead = max(now, nodes_needed(pods_at_lead, pool.gpus_per_node))
    target = min(max(ahead, pool.min_nodes), pool.max_nodes)
    # Nodes the min_nodes floor already keeps need no balloon.
    balloons = max(0, target - max(now, pool.min_nodes))
    gpus = sum(max(0, g) for g in pods_now)
    if ahead > pool.max_nodes or now > pool.max_nodes:
        reason = Reason.MAX_NODES_REACHED
        message = (
            f"pods need {ahead} nodes within {pool.provisioning_s:.0f}s + a cold start, "
            f"the pool allows {pool.max_nodes}"
        )
    elif balloons > 0:
        reason = Reason.HEADROOM
        message = (
            f"{now} nodes now, {ahead} within {pool.provisioning_s:.0f}s + a cold start: "
            f"{balloons} balloon pod(s) of {pool.gpus_per_node} GPUs"
        )
    else:
        reason = Reason.NO_HEADROOM_NEEDED
        message = f"{now} nodes now, {ahead} within {pool.provisioning_s:.0f}s + a cold start"
    return PoolPlan(
        name=pool.name,
        gpus_planned=gpus,
        nodes_now=now,
        nodes_at_lead=target,
        balloon_pods=balloons,
        balloon_gpus=pool.gpus_per_node,
        reason=reason,
        message=message,
    )
