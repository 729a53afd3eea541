"""Status bookkeeping (pure): conditions between the core's `Condition` values and the custom
resources' status lists, and the merge patch that writes a status only when it changed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from aiscaler.core.conditions import condition
from aiscaler.core.types import Condition, Reason
from aiscaler.kube.manifests import FIELD_MANAGER, FieldManager


class SpecReason(StrEnum):
    """Reasons of the Invalid condition (spec validation happens in the operator, not the core)."""

    INVALID_SPEC = "InvalidSpec"
    SPEC_VALID = "SpecValid"
    NOT_OWNED = "TargetNotOwned"  # an object of the owned workload's name belongs to another


class OperatorReason(StrEnum):
    """Reasons of conditions the core does not decide: about the target, and the model."""

    NOT_FOUND = "TargetNotFound"  # Degraded: the scale target does not exist
    UNREADABLE = "TargetUnreadable"  # Degraded: reading it failed (RBAC, API errors)
    SCALED_OUTSIDE = "ScaledOutside"  # ScalingLimited: someone else set its replicas
    MODEL_UNAVAILABLE = "ModelUnavailable"  # Degraded: the checkpoint did not load


# After someone else changes a target's replicas, aiscaler leaves them alone this long: writing
# them back every tick would fight whoever set them (another autoscaler, a GitOps sync of
# spec.replicas, a person), so aiscaler backs off, says so, and takes over again afterwards.
OUTSIDE_HOLD_S = 600.0


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else 0.0


def read_conditions(status: Mapping[str, Any] | None) -> list[Condition]:
    """The status' conditions as core values (what `aiscaler.core.conditions` carries over)."""
    return [
        Condition(
            type=c.get("type", ""),
            status=c.get("status", "Unknown"),
            reason=c.get("reason") or "",
            message=c.get("message") or "",
            last_transition_time=parse_timestamp(c.get("lastTransitionTime")),
        )
        for c in (status or {}).get("conditions") or []
    ]


def invalid_condition(
    previous: Sequence[Condition], problems: Sequence[str], now: float, reason: SpecReason
) -> Condition:
    """Invalid: True with the problems, or False once the spec validates."""
    message = "; ".join(problems) if problems else "spec is valid"
    # The core's helper carries the transition time over; its reason type is the core's closed
    # set, which has no spec-validation reasons, hence the cast.
    return condition(previous, "Invalid", bool(problems), cast(Reason, reason), message, now)


def write_conditions(
    old: Iterable[Mapping[str, Any]] | None, new: Iterable[Condition], generation: int | None
) -> list[dict[str, Any]]:
    """`new` replaces the conditions of its types; others are kept. A condition whose status and
    reason stay the same keeps its message: messages carry numbers that move every tick, and
    rewriting every status on every tick for them would swamp the API server (lastDecision has
    the current message of each decision). Sorted by type, so equal inputs give equal lists."""
    by_type = {c["type"]: dict(c) for c in old or []}
    for c in new:
        previous = by_type.get(c.type, {})
        same = (previous.get("status"), previous.get("reason")) == (c.status, c.reason)
        by_type[c.type] = {
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": previous.get("message", c.message) if same else c.message,
            "lastTransitionTime": timestamp(c.last_transition_time),
            "observedGeneration": generation,
        }
    return [by_type[t] for t in sorted(by_type)]


def status_patch(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level fields of `wanted` that differ from `current` (empty when none do), as a
    merge patch of `.status`. A None inside an object means the key is absent: the patch carries
    it (a merge patch removes the key), and a status without the key matches it."""
    current = current or {}
    return {key: value for key, value in wanted.items() if current.get(key) != _present(value)}


def _present(value: Any) -> Any:
    """`value` as the status holds it after a merge patch: objects without their None keys."""
    if isinstance(value, Mapping):
        return {key: _present(v) for key, v in value.items() if v is not None}
    return value


FORECAST_TOLERANCE = 0.05


def settled_forecast(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The forecast to report: the old one while the new differs only by noise (values within
    5 %, same source, lead time and quantile). A forecast that moves with every shift of the
    history window would otherwise rewrite every status on every tick."""
    if old is None or new is None or set(old) != set(new):
        return new
    for key, value in new.items():
        before = old[key]
        if isinstance(value, float) and isinstance(before, int | float):
            if abs(value - before) > FORECAST_TOLERANCE * max(abs(value), abs(before), 1e-9):
                return new
        elif value != before:
            return new
    return old


def scaled_outside(
    status: Mapping[str, Any],
    left: int | None,
    current: int,
    now: float,
    managers: Sequence[FieldManager] | None = None,
) -> tuple[str, float] | None:
    """(message, since) while aiscaler leaves a target's replicas alone (OUTSIDE_HOLD_S after
    they changed outside aiscaler), else None. A change is seen against `left`, the replicas
    aiscaler left the target at in its last tick (None: unknown to this process, e.g. after a
    restart; then the replicas its status recorded); a target that did not exist at the last
    tick is new, not changed. `managers`, the field managers owning the count now (latest
    writer last; None: not known), name who changed it. A count nobody owns is no one's choice:
    an apply of a manifest that dropped spec.replicas reset it to the default (also when a
    GitOps tool took over a `kubectl scale` and dropped it), so aiscaler takes over at once."""
    if managers is not None and not managers:
        return None
    recorded = left if left is not None else status.get("replicas")
    for c in read_conditions(status):
        kind = (c.type, c.status, c.reason)
        if kind == ("Degraded", "True", OperatorReason.NOT_FOUND):
            return None
        holding = now - c.last_transition_time < OUTSIDE_HOLD_S
        if kind == ("ScalingLimited", "True", OperatorReason.SCALED_OUTSIDE) and holding:
            return c.message, c.last_transition_time
    if isinstance(recorded, int) and recorded != current:
        return (
            f"replicas changed outside aiscaler from {recorded} to {current}"
            f"{_changed_by(managers)}; aiscaler leaves them for {OUTSIDE_HOLD_S:.0f}s, then "
            "decides again (docs/gitops.md)",
            now,
        )
    return None


def _changed_by(managers: Sequence[FieldManager] | None) -> str:
    """Who set the replicas, from the field managers owning them (the latest writer last)."""
    # An update takes ownership only of what it changes, so an updater among the owners set the
    # count; an applier may only share a value it re-applied (Argo CD's RespectIgnoreDifferences).
    others = [m for m in managers or () if m.name != FIELD_MANAGER]
    updates = [m for m in others if m.operation == "Update"]
    if not others:
        return ""
    last = (updates or others)[-1]
    if last.operation == "Apply":
        return (
            f" by {last.name}, which applies spec.replicas from its manifest: remove replicas "
            "from the manifest, or have the GitOps tool ignore the fields aiscaler manages"
        )
    return (
        f" by {last.name} (an update: kubectl scale or edit, another autoscaler, or a "
        "client-side apply of a manifest holding replicas)"
    )


def operator_condition(
    previous: Sequence[Condition], type_: str, reason: OperatorReason, message: str, now: float
) -> Condition:
    """A condition (True) the core does not decide, its transition time carried over."""
    return condition(previous, type_, True, cast(Reason, reason), message, now)


def overriding(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """`conditions` with the one of `new`'s type replaced by `new`."""
    return [c for c in conditions if c.type != new.type] + [new]
