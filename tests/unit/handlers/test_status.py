from datetime import UTC, datetime

import pytest

from aiscaler.core.types import Condition
from aiscaler.handlers.status import (
    OUTSIDE_HOLD_S,
    SpecReason,
    invalid_condition,
    read_conditions,
    scaled_outside,
    status_patch,
    timestamp,
    write_conditions,
)
from aiscaler.kube.manifests import FieldManager

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC).timestamp()
T1 = T0 + 300


def test_conditions_round_trip_through_the_status():
    conds = [Condition("Ready", "True", "ReplicasReady", "2 of 2", T0)]
    written = write_conditions([], conds, generation=4)
    assert written == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "ReplicasReady",
            "message": "2 of 2",
            "lastTransitionTime": "2026-11-28T12:00:00Z",
            "observedGeneration": 4,
        }
    ]
    assert read_conditions({"conditions": written}) == conds


@pytest.mark.parametrize(
    ("was_invalid", "problems", "expected_since", "status"),
    [
        (True, ["spec.replicas.min: must be <= max"], T0, "True"),  # still invalid: time kept
        (False, ["spec.replicas.min: must be <= max"], T1, "True"),  # became invalid: now
        (True, [], T1, "False"),  # fixed: now
        (False, [], T0, "False"),
    ],
)
def test_invalid_condition_transition_time(was_invalid, problems, expected_since, status):
    previous = [Condition("Invalid", "True" if was_invalid else "False", "x", "y", T0)]
    reason = SpecReason.INVALID_SPEC if problems else SpecReason.SPEC_VALID
    cond = invalid_condition(previous, problems, T1, reason)
    assert (cond.status, cond.last_transition_time) == (status, expected_since)
    assert cond.reason == reason.value
    if problems:
        assert problems[0] in cond.message


def test_other_condition_types_are_kept_and_order_is_stable():
    foreign = {"type": "Custom", "status": "True", "lastTransitionTime": "x"}
    merged = write_conditions(
        [foreign],
        [Condition("Ready", "True", "R", "", T0), Condition("Invalid", "False", "V", "", T0)],
        1,
    )
    assert [c["type"] for c in merged] == ["Custom", "Invalid", "Ready"]
    assert merged[0] == foreign


def test_unchanged_conditions_give_an_empty_patch():
    conds = write_conditions([], [Condition("Ready", "True", "R", "m", T0)], 1)
    current = {"replicas": 2, "conditions": conds}
    again = write_conditions(conds, read_conditions(current), 1)
    assert status_patch(current, {"replicas": 2, "conditions": again}) == {}


@pytest.mark.parametrize(
    ("current", "wanted", "patch"),
    [
        (None, {"replicas": 1}, {"replicas": 1}),
        (
            {"replicas": 1, "mode": "predictive"},
            {"replicas": 2, "mode": "predictive"},
            {"replicas": 2},
        ),
        ({"forecast": {"value": 1.0}}, {"forecast": {"value": 1.5}}, {"forecast": {"value": 1.5}}),
        ({"replicas": 1, "extra": 5}, {"replicas": 1}, {}),  # fields not managed here stay
        # None inside an object: absent. Sent while the status has the key (the merge patch
        # removes it); no patch once it is gone.
        (
            {"plan": {"basis": "floor", "share": 0.9}},
            {"plan": {"basis": "forecast", "share": None}},
            {"plan": {"basis": "forecast", "share": None}},
        ),
        ({"plan": {"basis": "forecast"}}, {"plan": {"basis": "forecast", "share": None}}, {}),
        ({}, {"forecast": None}, {}),  # a None field: as absent, as before
    ],
)
def test_status_patch(current, wanted, patch):
    assert status_patch(current, wanted) == patch


@pytest.mark.parametrize(
    ("last_loop", "now", "alive"),
    [
        (None, 1000.0, True),  # starting: not yet looped
        (1000.0, 1089.0, True),  # within three ticks of 30 s
        (1000.0, 1091.0, False),  # missed three ticks: stuck
    ],
)
def test_liveness_fails_only_when_the_loop_is_stuck(last_loop, now, alive):
    from aiscaler.handlers.http import Health

    assert Health(tick_s=30, last_loop=last_loop).live(now)[0] is alive


FORECAST = {"leadTimeSeconds": 120, "quantile": 0.99, "value": 10.0, "p50": 8.0, "source": "model"}


@pytest.mark.parametrize(
    ("new", "kept"),
    [
        ({**FORECAST, "value": 10.4, "p50": 7.7}, True),  # within 5 %: the old one stays
        ({**FORECAST, "value": 10.6}, False),  # 6 % more
        ({**FORECAST, "p50": 7.5}, False),
        ({**FORECAST, "source": "holt_winters"}, False),
        ({**FORECAST, "leadTimeSeconds": 420}, False),  # node provisioning joined the lead
        (None, False),
    ],
)
def test_forecast_noise_does_not_rewrite_the_status(new, kept):
    from aiscaler.handlers.status import settled_forecast

    assert settled_forecast(FORECAST, new) == (FORECAST if kept else new)
    assert settled_forecast(None, new) == new


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        ("False", "DesiredWithinRange", "old numbers"),  # same status and reason: kept
        ("False", "Other", "new numbers"),  # reason changed: refreshed
        ("True", "DesiredWithinRange", "new numbers"),  # status changed: refreshed
    ],
)
def test_a_message_is_refreshed_only_with_its_status_or_reason(status, reason, message):
    old = write_conditions(
        [], [Condition("ScalingLimited", "False", "DesiredWithinRange", "old numbers", T0)], 1
    )
    [cond] = write_conditions(
        old, [Condition("ScalingLimited", status, reason, "new numbers", T1)], 1
    )
    assert cond["message"] == message


NOW = 1_800_000_000.0


def _limited(reason: str, since: float) -> dict:
    return {
        "type": "ScalingLimited",
        "status": "True",
        "reason": reason,
        "message": "held",
        "lastTransitionTime": timestamp(since),
    }


@pytest.mark.parametrize(
    ("status", "left", "current", "held_since"),
    [
        ({"replicas": 4}, None, 4, None),  # as aiscaler left it
        ({"replicas": 4}, None, 9, NOW),  # changed since: newly seen, held from now
        ({"replicas": 9}, 4, 9, NOW),  # this process left 4 (its status write had failed)
        ({"replicas": 4}, 9, 9, None),  # this process left 9: its status is just behind
        ({}, None, 3, None),  # nothing recorded yet (a new service)
        # held 100 s ago: still held, from then, whatever the replicas are now
        ({"replicas": 9, "conditions": [_limited("ScaledOutside", NOW - 100)]}, None, 9, NOW - 100),
        ({"replicas": 9, "conditions": [_limited("ScaledOutside", NOW - 700)]}, None, 9, None),
        ({"replicas": 9, "conditions": [_limited("BudgetLimited", NOW - 100)]}, None, 9, None),
        # the target did not exist at the last tick: it is new, not changed
        (
            {
                "replicas": 4,
                "conditions": [
                    {
                        "type": "Degraded",
                        "status": "True",
                        "reason": "TargetNotFound",
                        "lastTransitionTime": timestamp(NOW - 30),
                    }
                ],
            },
            None,
            1,
            None,
        ),
    ],
)
def test_replicas_changed_outside_aiscaler_are_held(status, left, current, held_since):
    held = scaled_outside(status, left, current, NOW)
    assert (held and held[1]) == held_since
    if held_since == NOW:
        assert f"to {current}" in held[0] and f"{OUTSIDE_HOLD_S:.0f}s" in held[0]


@pytest.mark.parametrize(
    ("managers", "says"),
    [
        (None, "to 9; aiscaler leaves them"),  # owners not known: no attribution
        ((FieldManager("kubectl", "Update"),), "by kubectl (an update: kubectl scale"),
        (
            (FieldManager("aiscaler", "Apply"), FieldManager("argocd-controller", "Apply")),
            "by argocd-controller, which applies spec.replicas from its manifest",
        ),
        # an updater set the count (an applier among the owners may only share it)
        (
            (FieldManager("kube-controller-manager", "Update"), FieldManager("argocd", "Apply")),
            "by kube-controller-manager (an update",
        ),
    ],
)
def test_an_outside_change_names_who_made_it(managers, says):
    message, since = scaled_outside({"replicas": 4}, None, 9, NOW, managers)
    assert since == NOW and says in message and "docs/gitops.md" in message


@pytest.mark.parametrize(
    "status",
    [
        {"replicas": 4},  # changed since aiscaler's last write
        {"replicas": 9, "conditions": [_limited("ScaledOutside", NOW - 100)]},  # during a hold
    ],
)
def test_a_count_nobody_owns_is_no_change_and_ends_a_hold(status):
    # A manifest dropped spec.replicas (or a GitOps tool took a kubectl scale over and dropped
    # it): the API server's default is nobody's choice, so aiscaler takes over at once.
    assert scaled_outside(status, None, 1, NOW, ()) is None
