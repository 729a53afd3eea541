"""`make demo`: aiscaler on the local GPU cluster, replaying a real LLM trace for a few minutes.

It brings the local cluster up (harness.cluster), installs the chart with Helm, applies the
examples, and replays the bundled ServeGen excerpt (aiscaler/data, ten-minute bins played as
15 s each) as the demand of the flagship example's vLLM Deployment, after writing the day before
the replay into Prometheus as history. A timeline is printed as it happens and a plot
written to out/demo.png; the cluster is then torn down, or left up with --keep (KEEP=1).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aiscaler.sim.trace import load_trace

from . import loop
from .cluster import DEFAULT_DIR, ClusterConfig, LocalCluster
from .components import REPO_ROOT, ComponentFailed
from .helm import NAMESPACE, RELEASE, Helm
from .release import ReleasedOperator

TRACE = REPO_ROOT / "operator" / "aiscaler" / "data" / "servegen_language_m_mid_5days_10min.csv"
BIN_S = 15.0  # wall seconds per ten-minute bin of the trace
REPLAY_START_BIN = 189  # the second day's quietest bin: a morning ramp follows
REPLAY_BINS = 20  # five minutes
HISTORY_BINS = 144  # the day before the replay, written into Prometheus
PEAK = 52.0  # requests/s the replay's busiest bin is scaled to (8 replicas of 6.5)
TTFT_TARGET_S = 2.0


def trace_rates() -> tuple[list[float], list[float]]:
    """(history, replay) requests/s per bin, scaled so the replay peaks at PEAK."""
    rate = load_trace(TRACE).rate
    first = REPLAY_START_BIN
    replay = rate[first : first + REPLAY_BINS]
    scale = PEAK / float(np.max(replay))
    history = rate[first - HISTORY_BINS : first]
    return [float(r) * scale for r in history], [float(r) * scale for r in replay]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "out" / "demo.png")
    args = parser.parse_args()
    if args.keep and (DEFAULT_DIR / "state.json").exists():
        print("demo: a local cluster is already up: `make cluster-down` first", file=sys.stderr)
        return 1
    workdir = DEFAULT_DIR if args.keep else Path(tempfile.mkdtemp(prefix="aiscaler-demo-"))
    if args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    history, replay = trace_rates()
    now = time.time()
    steady = loop.llama_workload(now - len(history) * BIN_S, BIN_S, history)
    print(f"== local cluster (logs in {workdir})", flush=True)
    started = time.monotonic()
    try:
        cluster = LocalCluster(workdir, ClusterConfig.load())
    except ComponentFailed as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    cluster.start([steady])
    operator = ReleasedOperator(cluster, workdir / "operator", NAMESPACE, RELEASE)
    keep = False
    try:
        print(f"   up in {time.monotonic() - started:.0f}s; helm install", flush=True)
        print(loop.install_chart(cluster, Helm.installed(cluster.kubeconfig)), flush=True)
        loop.apply_examples(cluster)
        # The service as it was before aiscaler: sized for the load it had, with one spare.
        capacity = steady.capacity
        loop.wait_ready(cluster, replicas=math.ceil(history[-1] / capacity) + 1)
        cluster.set_workloads([steady])
        operator.start()
        workload = loop.replay_at(steady, time.time() + 20, replay)
        start = workload.end - BIN_S * len(replay)
        cluster.set_workloads([workload])
        print(
            f"== replaying {TRACE.name} bins {REPLAY_START_BIN}-{REPLAY_START_BIN + REPLAY_BINS}"
            f" (ten minutes each, {BIN_S:.0f}s here), peak {PEAK:.0f} requests/s, as the demand"
            f" of {'/'.join(loop.LLAMA)}; t=0 is the start of the replay",
            flush=True,
        )
        recorder = loop.Recorder(cluster, workload, TTFT_TARGET_S)
        rows = loop.timeline_table([], start)
        print(next(rows), flush=True)
        samples = list(
            recorder.record(
                workload.end,
                every_s=5.0,
                on_sample=lambda s: print(loop.timeline_row(s, start), flush=True),
            )
        )
        loop.write_plot(samples, start, args.plot, f"aiscaler on the local cluster: {TRACE.name}")
        print(
            f"== plot: {args.plot}\n"
            f"   TTFT within {loop.ttft_bound(TTFT_TARGET_S):g}s for "
            f"{100 * recorder.attainment_since(start):.1f}% of the replay's requests "
            "(Prometheus); most h100 nodes "
            f"{max(s.nodes.get('h100', 0) for s in samples)}",
            flush=True,
        )
        keep = args.keep
    finally:
        if keep:
            state = cluster.state()
            assert operator.process is not None and operator.process.pid is not None
            state["pids"]["aiscaler"] = operator.process.pid
            (workdir / "state.json").write_text(json.dumps(state, indent=2))
            print(
                "== left up (make cluster-down stops it):\n"
                f"   export KUBECONFIG={cluster.kubeconfig}\n"
                "   .venv/bin/kubectl get ais,atj -A\n"
                "   .venv/bin/kubectl get nodes -L nvidia.com/gpu.product\n"
                f"   Prometheus: {cluster.prometheus.url}"
            )
        else:
            operator.stop()
            cluster.stop()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    print("== the simulator on the same trace: aiscaler simulate", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
