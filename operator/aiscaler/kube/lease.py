"""Leader election over a coordination.k8s.io/v1 Lease: with two operator replicas, only the
holder of the Lease plans and acts; the other waits and takes over when the lease expires."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiscaler.kube.client import KubeApi, KubeError, NotFound


def _parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _format_time(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # MicroTime


def next_lease_spec(
    current: Mapping[str, Any] | None, identity: str, now: float, duration_s: int
) -> tuple[dict[str, Any] | None, str]:
    """The spec to write to take or renew the lease, or None when another holder's lease is
    still valid; with the reason."""
    spec = dict(current or {})
    holder = spec.get("holderIdentity")
    renewed = _parse_time(spec.get("renewTime"))
    held_for = int(spec.get("leaseDurationSeconds") or duration_s)
    new = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration_s,
        "renewTime": _format_time(now),
    }
    if holder == identity:
        return {**spec, **new}, "renewed"
    if holder and renewed is not None and now < renewed + held_for:
        return None, f"held by {holder}"
    transitions = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
    return {**new, "acquireTime": _format_time(now), "leaseTransitions": transitions}, "acquired"


def try_lead(
    api: KubeApi, namespace: str, name: str, identity: str, now: float, duration_s: int
) -> tuple[bool, str]:
    """Take or renew the Lease; (True, reason) when this replica leads now. A write that loses
    a race (409) or any API error means not leading this time."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    try:
        try:
            lease = api.request("GET", f"{path}/{name}")
        except NotFound:
            lease = None
        spec, reason = next_lease_spec(lease and lease.get("spec"), identity, now, duration_s)
        if spec is None:
            return False, reason
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }
            api.request("POST", path, body=body)
        else:
            body = {**lease, "spec": spec}
            api.request("PUT", f"{path}/{name}", body=body)  # resourceVersion guards the race
        return True, reason
    except KubeError as exc:
        return False, f"lease not written: {exc.message}"
