"""aiscaler installed with Helm into the local GPU cluster, closing the loop on a demand ramp
(tests/e2e/conftest.py runs it once; each test asserts one outcome of that run).

The flagship example (Llama 3.1 70B on vLLM, 4 x H100 a replica, 6.5 requests/s each, SLO: TTFT
within 2 s) goes from 8 to 56 requests/s over six minutes of the compressed clock (an hour in
real time), holds the peak, and drops back. The elastic training example shares the h100 pool:
at the peak the service alone needs more nodes than the pool had before the ramp.
"""

from __future__ import annotations

import math
import re

import pytest
from conftest import LOW, PEAK, UPGRADE_BUDGET, Run
from harness import loop

CAPACITY = 6.5  # the example's capacity.perReplica
# Outcomes that depend on how well today's planner follows a fast ramp and a sudden drop.
# Measured (runs in docs/local-cluster.md): attainment 0.94-1.00 over this replay, the ramp's
# worst minute down to 0.2-0.4 in some runs (the ramp outruns a node's provisioning plus a cold
# start, 80 s, from an hour of flat history, and the training job holds the GPUs the next
# replicas need); 2, 3 or 5 replicas desired three minutes after the drop to 8 requests/s (2
# needed): the forecaster's upper quantiles stay wide while the ramp's and the drop's errors
# are in its recent record. They run and report every time; a failure shows as xfail until the
# planner holds them. From the peak on, every minute has held 0.99 in every run since a leaving
# replica drains what it serves (f1b6056): that is strict.
PLANNER_DEPENDENT = pytest.mark.xfail(
    strict=False, reason="closed-loop quality of the current planner (see module comment)"
)
H100_NODE_GPUS = 8


def before(run: Run, t: float) -> list[loop.Sample]:
    return run.timeline.between(run.timeline.samples[0].t, t)


def test_every_example_is_valid_with_the_chart_defaults(closed_loop: Run):
    kinds = {kind for kind, _, _ in closed_loop.examples}
    assert {"InferenceService", "TrainingJob"} <= kinds
    for key, status in closed_loop.statuses.items():
        invalid = [c for c in status.get("conditions", []) if c["type"] == "Invalid"]
        assert all(c["status"] == "False" for c in invalid), (key, invalid)
        assert status.get("lastDecision"), f"{key}: no decision recorded"


def test_install_prints_the_next_steps(closed_loop: Run):
    assert "kubectl get ais,atj -A" in closed_loop.install_output
    assert "helm uninstall" in closed_loop.install_output


def test_pods_are_scheduled_and_ready_before_the_demand_peak(closed_loop: Run):
    needed = math.ceil(PEAK / CAPACITY)
    at_peak = closed_loop.timeline.at(closed_loop.peak_start)
    assert at_peak.ready >= needed, at_peak
    assert at_peak.pending == 0, at_peak
    # Scaled during the ramp, not at the peak: more Ready halfway than at the start.
    halfway = closed_loop.timeline.at((closed_loop.ramp_start + closed_loop.peak_start) / 2)
    assert closed_loop.timeline.at(closed_loop.ramp_start).ready < halfway.ready


def test_gpu_nodes_are_added_ahead_of_the_peak_through_balloons(closed_loop: Run):
    # Seen in the timeline: a node emptied after the drop is gone by the end of the run.
    every = closed_loop.balloon_nodes(closed_loop.end)
    assert closed_loop.balloon_nodes(closed_loop.peak_start), f"none before the peak; all: {every}"
    samples = before(closed_loop, closed_loop.peak_start)
    assert any(s.balloons > 0 for s in samples)
    assert samples[-1].nodes["h100"] > closed_loop.timeline.at(closed_loop.ramp_start).nodes["h100"]


def test_attainment_holds_from_the_peak_on(closed_loop: Run):
    # Every minute as Prometheus shows it, from the peak to the end: the peak, the drop and the
    # scale-down after it. (Not during the ramp: it outruns a node's provisioning plus a cold
    # start from an hour of flat history; module comment.)
    after = closed_loop.timeline.between(closed_loop.peak_start, closed_loop.end)
    measured = [s.attainment for s in after if s.attainment is not None]
    assert measured and min(measured) >= 0.99, measured


@PLANNER_DEPENDENT
def test_attainment_over_the_whole_replay(closed_loop: Run):
    # Requests whose TTFT is within the target's largest bucket (1 s of vLLM's), ramp included.
    assert closed_loop.attainment >= 0.95, closed_loop.attainment


def test_training_is_lent_gpus_and_gives_them_back_before_the_peak(closed_loop: Run):
    warm_up = before(closed_loop, closed_loop.ramp_start)
    lent = max(s.workers for s in warm_up)
    assert lent >= 4, f"training was not lent spare GPUs: {lent} workers before the ramp"
    at_peak = closed_loop.timeline.at(closed_loop.peak_start)
    assert at_peak.workers < lent, at_peak
    # What the training kept and the service needs fit the pool together at the peak.
    gpus = at_peak.workers * H100_NODE_GPUS + at_peak.pods * 4
    assert gpus <= at_peak.nodes["h100"] * H100_NODE_GPUS


def test_scale_down_after_the_stabilisation_window(closed_loop: Run):
    window_s = 60  # the example's stabilisation, compressed (harness.loop.compressed)
    peak = closed_loop.timeline.at(closed_loop.peak_end)
    held = closed_loop.timeline.between(closed_loop.peak_end, closed_loop.peak_end + window_s - 5)
    # What the peak needed stays through the window (what it held beyond that may go: the
    # recommendations of the last window are lower).
    needed = math.ceil(PEAK / CAPACITY)
    assert all(s.desired >= needed for s in held), ("scaled down inside the window", held)
    last = closed_loop.timeline.samples[-1]
    assert last.desired < peak.desired, (peak, last)


@PLANNER_DEPENDENT
def test_back_near_the_low_demand_by_the_end(closed_loop: Run):
    # How far it goes down depends on the forecast's upper quantiles after a 7x drop: the
    # residuals of the ramp and the drop keep them wide (module comment).
    last = closed_loop.timeline.samples[-1]
    assert last.desired <= math.ceil(2 * LOW / CAPACITY) + 1, last


def test_the_operator_ran_with_the_chart_rbac_without_errors(closed_loop: Run):
    errors = re.findall(r'^aiscaler_errors_total\{stage="(\w+)"\} ([0-9.e+]+)$',
                        closed_loop.operator_metrics, re.M)  # fmt: skip
    failed = {stage: float(n) for stage, n in errors if float(n) > 0}
    assert not failed, failed
    assert re.search(r"^aiscaler_leader 1\.0$", closed_loop.operator_metrics, re.M)


def test_every_dashboard_query_reads_the_operator_metrics(closed_loop: Run):
    exposed = set(re.findall(r"^# TYPE (aiscaler_\w+) ", closed_loop.operator_metrics, re.M))
    for expr, result in closed_loop.dashboard.items():
        names = set(re.findall(r"\b(aiscaler_[a-z_]+?)(?:_bucket|_sum|_count)?\b", expr))
        assert names and names <= exposed, (expr, names - exposed)
        if "aiscaler_errors_total" not in expr:  # no error happened, so no series
            assert result, f"no data for {expr}"


def test_helm_upgrade_with_changed_values_takes_effect(closed_loop: Run):
    upgrade = closed_loop.upgrade
    assert f"gpu_budget: {UPGRADE_BUDGET}" in upgrade["config"]
    assert upgrade["checksum_after"] != upgrade["checksum_before"]  # the pods roll
    # The budget holds the service's GPUs and leaves none to training, which is paused.
    assert upgrade["training_desired_workers"] == 0
    assert upgrade["service_desired_replicas"] * 4 <= UPGRADE_BUDGET


def test_helm_uninstall_leaves_nothing_behind_but_the_crds(closed_loop: Run):
    assert closed_loop.leftovers == {}
    assert {"inferenceservices.aiscaler.dev", "trainingjobs.aiscaler.dev"} <= set(
        closed_loop.crds_after_uninstall
    )
