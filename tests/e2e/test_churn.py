"""Churn (issue 17): services created, changed and deleted while the operator, installed with
the chart and held to its RBAC, plans for all of them. A small version of the load that
bench/churn_bench.py runs at 1,000 services for ten minutes, with the same checks
(harness.churn)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness.churn import ChurnLoad, Outcome, churn_and_settle, released
from harness.components import component_or_skip
from harness.helm import Helm

LOAD = ChurnLoad(services=60, namespaces=3, rate=1.0, duration_s=60.0)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    with component_or_skip():
        Helm.installed()
    with released(tmp_path_factory.mktemp("churn"), LOAD) as (churn, operator):
        yield churn_and_settle(churn, operator, sample_every_s=10.0)


def test_the_churn_ran_at_its_rate(outcome: Outcome) -> None:
    steps = round(LOAD.duration_s * LOAD.rate)
    assert outcome.done == {"create": LOAD.services + steps, "update": steps, "delete": steps}


def test_every_deletion_and_update_was_followed_and_nothing_is_left_behind(
    outcome: Outcome,
) -> None:
    # No owned Deployment outlives its service, no user Deployment went with one, every live
    # service's status is of its latest spec, /metrics shows exactly the live services, and
    # kopf stored nothing on them.
    assert outcome.leftovers.clean(), outcome.leftovers


def test_the_operator_made_no_error_under_churn(outcome: Outcome) -> None:
    assert outcome.errors == {}
    assert outcome.log_problems == []
