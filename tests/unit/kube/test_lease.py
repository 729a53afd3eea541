from datetime import UTC, datetime, timedelta

import pytest

from aiscaler.kube.lease import next_lease_spec

START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
NOW = START.timestamp()


def stamp(delta):
    return (START + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(
    ("current", "takes", "reason", "transitions"),
    [
        (None, True, "acquired", 0),
        ({}, True, "acquired", 0),
        # our own lease: renewed, whatever its age
        (
            {
                "holderIdentity": "me",
                "renewTime": stamp(-timedelta(hours=1)),
                "leaseDurationSeconds": 15,
                "leaseTransitions": 2,
            },
            True,
            "renewed",
            2,
        ),
        # another holder, renewed 10 s ago with a 15 s lease: still theirs
        (
            {
                "holderIdentity": "other",
                "renewTime": stamp(-timedelta(seconds=10)),
                "leaseDurationSeconds": 15,
            },
            False,
            "held by other",
            None,
        ),
        # another holder, expired: taken over, one more transition
        (
            {
                "holderIdentity": "other",
                "renewTime": stamp(-timedelta(seconds=16)),
                "leaseDurationSeconds": 15,
                "leaseTransitions": 1,
            },
            True,
            "acquired",
            2,
        ),
        # a holder that never renewed: taken
        ({"holderIdentity": "other"}, True, "acquired", 1),
    ],
)
def test_next_lease_spec(current, takes, reason, transitions):
    spec, why = next_lease_spec(current, "me", NOW, 15)
    assert why == reason
    if not takes:
        assert spec is None
        return
    assert spec["holderIdentity"] == "me"
    assert spec["leaseDurationSeconds"] == 15
    assert datetime.fromisoformat(spec["renewTime"]) == START
    assert spec["leaseTransitions"] == transitions
