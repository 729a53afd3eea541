"""Pod lifecycle and billing of the simulated service, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from aiscaler.sim.cluster import scale_to, start_with
from aiscaler.sim.serving import advance
from aiscaler.sim.state import KERNELS, SimConfig, make_workload, new_run


def make_run(config: SimConfig, rates: np.ndarray, kernel: str = "exact", split_s: float = 0.0):  # type: ignore[no-untyped-def]
    workload = make_workload(rates, config, 0, KERNELS[kernel])
    return new_run(config, workload, KERNELS[kernel], split_s)


def test_scale_up_waits_the_cold_start_and_is_billed_from_the_request() -> None:
    config = SimConfig(capacity=1.0, cold_start_s=100.0)
    run = make_run(config, np.zeros(1000))
    start_with(run, 1)  # running at 0, requested at -100
    advance(run, 200.0)
    scale_to(run, 200.0, 3)
    advance(run, 299.0)
    assert run.s[0]["ready"] == 1 and run.s[0]["pods"] == 3
    advance(run, 300.0)
    scale_to(run, 300.0, 3)
    assert run.s[0]["ready"] == 3
    advance(run, 1000.0)
    from aiscaler.sim.cluster import bill_live_pods

    bill_live_pods(run)
    # In the trace: 1 pod for 1000 s + 2 from 200 s: 1000 + 2 x 800 GPU-s; the first pod's warm-up
    # before time 0 is billed to the part before the scored one.
    assert run.gpu_s.tolist() == pytest.approx([100.0, 1000 + 1600])
    assert run.cold_starts.sum() == 2 and run.scale_events.sum() == 1


def test_scale_down_removes_starting_pods_first_and_stops_their_bill() -> None:
    config = SimConfig(capacity=1.0, cold_start_s=100.0)
    run = make_run(config, np.zeros(1000))
    start_with(run, 2)
    advance(run, 10.0)
    scale_to(run, 10.0, 4)  # two start, ready at 110
    advance(run, 50.0)
    scale_to(run, 50.0, 3)  # one of the starting ones goes: billed 10..50
    assert run.s[0]["ready"] == 2 and run.s[0]["pods"] == 3
    assert run.gpu_s.sum() == pytest.approx(40.0)
    scale_to(run, 50.0, 1)  # the other starting one, then the most recently ready
    assert run.s[0]["ready"] == 1 and run.s[0]["pods"] == 1


def test_a_removed_pod_is_billed_until_its_requests_finish() -> None:
    # One request every 10 s, each held 95 s (deterministic) on 20-slot pods: a pod removed at
    # 300 s still runs requests that started before, the last one finishing at 290 + 95 s.
    config = SimConfig(capacity=20 / 95, slots=20, service_cv=0.0, cold_start_s=0.0)
    run = make_run(config, np.zeros(1000))
    run = run._replace(arrival_s=np.arange(0.0, 1000.0, 10.0), service_s=np.full(100, 95.0))
    start_with(run, 1)
    advance(run, 300.0)
    scale_to(run, 300.0, 0)
    assert run.gpu_s.sum() == pytest.approx(385.0)  # from 0 (cold start 0) to 290 + 95


def test_no_free_gpu_adds_node_provisioning_and_spare_gpus_avoid_it() -> None:
    for free, ready_at in ((0, 400.0), (1, 100.0)):
        config = SimConfig(capacity=1.0, cold_start_s=100.0, node_provision_s=300.0, free_gpus=free)
        run = make_run(config, np.zeros(1000))
        start_with(run, 1)
        scale_to(run, 0.0, 2)
        advance(run, ready_at - 1)
        scale_to(run, ready_at - 1, 2)
        assert run.s[0]["ready"] == 1
        advance(run, ready_at)
        scale_to(run, ready_at, 2)
        assert run.s[0]["ready"] == 2


def test_billing_is_split_at_the_tune_window() -> None:
    config = SimConfig(capacity=1.0, cold_start_s=0.0)
    run = make_run(config, np.zeros(1000), split_s=400.0)
    start_with(run, 2)
    advance(run, 1000.0)
    from aiscaler.sim.cluster import bill_live_pods

    bill_live_pods(run)
    assert run.gpu_s.tolist() == pytest.approx([800.0, 1200.0])
