"""Operator scale: planning ticks over many InferenceServices, against the issue 16 targets.

Starts the real components of the integration tests (etcd + kube-apiserver built from source,
Debian's Prometheus), creates N Deployments and N InferenceServices (vLLM preset) in the API
server and six hours of request counters for each in Prometheus (running on past the end of the
run, as a live scrape would), then runs the operator in a process of its own (its RSS is the
operator's: it imports kopf and the kubernetes client like `aiscaler run`) with the real
KubeApi, PrometheusMetrics and default forecaster.

    .venv/bin/python bench/operator_bench.py [--services 1000] [--namespaces 1]
        [--ticks 6] [--tick-seconds 30] [--compare REV] [--duration SECONDS]

Ticks mode (default): ticks on the operator's schedule (every --tick-seconds). Tick 1 is the
start-up: the whole demand history is read and every service changes (~900 scales, 1,000
statuses and events). The middle ticks are the steady state (nothing to change). Before the last
tick every InferenceService's spec changes (capacity per replica 5 -> 4, as a GitOps change of
every CR would): ~1,000 scales, statuses and events. It prints each tick's stages, writes,
Prometheus queries and points read, RSS; then the model's inference time for 1,000 series
(network alone, and the whole forecast with its calibration); then each target, met or by how
much it misses.

Loop mode (--duration S): the operator's own planning loop (Lease included) for S seconds,
with the bodies refreshed from the API server every 5 s as kopf's index would be; it prints how
far each tick's start is from the schedule (drift), skipped ticks and tick durations.

--compare REV runs the same measurement first with the operator of git revision REV (its
`operator/` and `model/checkpoint` extracted to a temporary folder), on the same API server and
Prometheus (the custom resources and Deployments are recreated in between), and prints the
ratios. Times are wall-clock on this machine, with the API server, etcd and Prometheus sharing
its CPUs; no test asserts them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
API_VERSION = "aiscaler.dev/v1alpha1"
OPERATOR_NAMESPACE = "bench"  # the operator's own (balloons: none here, no GPU pools)
HISTORY_S = 6 * 3600
STEP_S = 30
RESULT = "RESULT "  # the child's last line: its measurements as JSON

# Issue 16's targets.
STEADY_TICK_S = 2.0
CHANGED_TICK_S = 5.0
PEAK_RSS_MB = 400.0
INFERENCE_MS = 20.0


# -- the operator process ------------------------------------------------------------------------


def memory_mb() -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS), RssAnon and RssFile of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def memory() -> str:
    fields = memory_mb()
    return (
        f"RSS {fields['VmRSS']:.0f} MB (anon {fields['RssAnon']:.0f}, "
        f"file {fields['RssFile']:.0f}), peak RSS {fields['VmHWM']:.0f} MB"
    )


def build_operator(kubeconfig: str, prometheus_url: str, tick_s: float) -> Any:
    """The operator as `aiscaler run` builds it (works with the code of earlier revisions)."""
    from aiscaler.forecast import load_default_forecaster
    from aiscaler.handlers import operator as handlers
    from aiscaler.handlers.tick import Operator
    from aiscaler.kube.client import KubeApi, load_api_client
    from aiscaler.metrics.prometheus import PrometheusMetrics
    from aiscaler.settings import Settings

    print(f"operator process at start: {memory()}")
    forecaster, why = load_default_forecaster()
    if hasattr(handlers, "use_one_compute_thread"):  # revisions that ran the model in torch
        handlers.use_one_compute_thread()
    print(f"forecaster: {why}")
    print(f"operator process with its forecaster loaded: {memory()}")
    settings = Settings(prometheus_url=prometheus_url, tick_seconds=tick_s)
    op = Operator(
        KubeApi(load_api_client(kubeconfig)),
        PrometheusMetrics(prometheus_url, timeout_s=30),
        forecaster,
        settings,
        OPERATOR_NAMESPACE,
    )
    count_prometheus_reads(op.metrics)
    return op


def count_prometheus_reads(metrics: Any) -> None:
    """Count the queries and the points of their answers (the bench reads `metrics.reads`)."""
    metrics.reads = {"queries": 0, "points": 0}
    query_range = metrics.query_range

    def counted(query: Any) -> Any:
        answer = query_range(query)
        metrics.reads["queries"] += 1
        if isinstance(answer, list):
            metrics.reads["points"] += sum(len(s.points) for s in answer)
        return answer

    metrics.query_range = counted


def close(op: Any) -> None:
    (op.close if hasattr(op, "close") else op.metrics.close)()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def next_start(scheduled: float, tick_s: float, now: float) -> float:
    return scheduled + tick_s * max(1, math.ceil((now - scheduled) / tick_s))


def operate_ticks(
    kubeconfig: str, prometheus_url: str, ticks: int, tick_s: float, components: dict[str, int]
) -> dict:
    """Ticks on the schedule; `components`: name -> pid of the API server, etcd and Prometheus,
    whose CPU time during each tick is counted with the operator's."""
    from aiscaler.handlers.operator import free_memory_releaser
    from aiscaler.handlers.tick import run_tick

    op = build_operator(kubeconfig, prometheus_url, tick_s)
    release_free_memory = free_memory_releaser()  # after each tick, as the operator's loop does
    print(
        "tick  total_s  observe  measure  forecast  plan   act  scales  status  events  errors"
        "  queries  points  rss_MB  peak_MB  cpu_s: operator " + " ".join(components)
    )
    pids = {"operator": os.getpid(), **components}
    rows = []
    scheduled = time.monotonic()
    for i in range(1, ticks + 1):
        if i == ticks and ticks > 2:  # every spec changes: the last tick acts on all of them
            for body in op.kube.list(API_VERSION, "InferenceService"):
                meta = body["metadata"]
                op.kube.patch(
                    API_VERSION,
                    "InferenceService",
                    meta["namespace"],
                    meta["name"],
                    {"spec": {"capacity": {"perReplica": 4}}},
                )
        # What the kopf index holds: the custom resources as the API server has them.
        bodies = op.kube.list(API_VERSION, "InferenceService")
        time.sleep(max(0.0, scheduled - time.monotonic()))
        before = dict(op.metrics.reads)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        report = run_tick(op, bodies, [], time.time())
        total = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        release_free_memory()
        s, mem = report.seconds, memory_mb()
        row = {
            "tick": i,
            "total_s": total,
            **{k: s.get(k, 0.0) for k in ("observe", "measure", "forecast", "plan", "act")},
            "scales": len(report.resized),
            "status": report.status_writes,
            "events": report.events,
            "errors": len(report.errors),
            "queries": op.metrics.reads["queries"] - before["queries"],
            "points": op.metrics.reads["points"] - before["points"],
            "rss_mb": mem["VmRSS"],
            "peak_mb": mem["VmHWM"],
            "cpu_s": cpu,
        }
        rows.append(row)
        print(
            f"{i:>4}  {total:7.2f}  {row['observe']:7.2f}  {row['measure']:7.2f}  "
            f"{row['forecast']:8.2f}  {row['plan']:4.2f}  {row['act']:5.2f}  {row['scales']:6d}  "
            f"{row['status']:6d}  {row['events']:6d}  {row['errors']:6d}  {row['queries']:7d}  "
            f"{row['points']:6d}  {row['rss_mb']:6.0f}  {row['peak_mb']:7.0f}  "
            + " ".join(f"{v:5.2f}" for v in cpu.values()),
            flush=True,
        )
        for error in report.errors[:3]:
            print(f"      error: {error}")
        scheduled = next_start(scheduled, tick_s, time.monotonic())
    print(f"operator process after {ticks} ticks: {memory()}")
    peak_mb = memory_mb()["VmHWM"]  # the operator's: the timing below forecasts in one call
    inference = time_inference(op.forecaster)
    close(op)
    return {"ticks": rows, "peak_mb": peak_mb, **inference, **time_plan()}


def time_inference(forecaster: Any, n: int = 1000, runs: int = 5) -> dict[str, float]:
    """The model's time for n series of the operator's history length (288 points at 60 s):
    the network alone (one origin per series) and the whole forecast (with its calibration on
    past origins), medians of `runs`."""
    import numpy as np

    from aiscaler.forecast.model import gather_lags, input_lags, make_inputs

    if getattr(forecaster, "name", "") != "model":
        return {}
    cfg = forecaster.cfg
    rng = np.random.default_rng(0)
    t = np.arange(288)
    y = rng.uniform(1, 40, (n, 1)) * (1 + 0.3 * np.sin(t / 60)) * rng.gamma(20, 0.05, (n, 288))
    recent, seasonal = input_lags(cfg, 60.0)
    rows, origins = np.arange(n), np.full(n, 287)
    x, _, _ = make_inputs(
        gather_lags(y, rows, origins, recent), gather_lags(y, rows, origins, seasonal), cfg
    )
    network = forecaster.net
    if hasattr(network, "parameters"):  # a torch module (revisions before numpy inference)
        import torch

        torch_net = network

        def network(batch: Any) -> Any:
            with torch.inference_mode():
                return torch_net(torch.from_numpy(batch)).numpy()

    def median_ms(fn: Any) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)

    histories = list(y)
    network_ms = median_ms(lambda: network(x))
    try:  # the tick's own batching, where the revision has it
        from aiscaler.handlers.measure import forecast_in_batches
    except ImportError:

        def forecast_in_batches(forecaster: Any, histories: Any, step_s: float, horizon: int):
            return forecaster.forecast(histories, step_s, horizon, (0.5, 0.9, 0.95, 0.99))

    forecast_ms = median_ms(lambda: forecast_in_batches(forecaster, histories, 60.0, 10))
    print(
        f"model inference, {n} series: network {network_ms:.1f} ms, whole forecast (with "
        f"calibration, in the tick's batches) {forecast_ms:.0f} ms"
    )
    return {"network_ms": network_ms, "forecast_ms": forecast_ms}


def time_plan(n: int = 1000, jobs: int = 2, runs: int = 5) -> dict[str, float]:
    """`plan_cluster` for n services with forecasts of 30 steps, over two GPU pools that `jobs`
    elastic training jobs share (the ticks above plan without pools: the bench's API server has
    no GPU nodes), median of `runs`."""
    import numpy as np

    from aiscaler.core.allocator import plan_cluster
    from aiscaler.core.planner import FORECAST_QUANTILES
    from aiscaler.core.types import (
        Forecast,
        PoolSpec,
        ServiceObservation,
        ServiceSpec,
        TrainingObservation,
        TrainingSpec,
    )

    rng, now = np.random.default_rng(0), 1e6
    pools = [PoolSpec(name=f"pool{i}", gpus_per_node=8, max_nodes=400) for i in range(2)]
    services = []
    for i in range(n):
        level = rng.uniform(1, 50) * (1 + 0.3 * np.sin(np.arange(30) / 5 + i))
        values = level[:, None] * np.array([1.0, 1.2, 1.3, 1.5])
        services.append(
            (
                ServiceSpec(f"s{i}", 100, pool=pools[i % 2].name, capacity_per_replica=6.5),
                ServiceObservation(
                    current_replicas=math.ceil(level[0] / 6.5),
                    demand=float(level[0]),
                    demand_time=now,
                    forecast=Forecast(60.0, FORECAST_QUANTILES, values, "model"),
                    forecast_origin=now - 10,
                    free_gpus=8,
                ),
            )
        )
    trainings = [
        (TrainingSpec(f"job{j}", max_workers=8, pool=pools[j % 2].name), TrainingObservation(4))
        for j in range(jobs)
    ]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        plan_cluster(services, trainings, pools, {}, now)
        times.append(time.perf_counter() - started)
    plan_ms = 1000 * statistics.median(times)
    print(f"plan_cluster, {n} services in 2 pools with {jobs} training jobs: {plan_ms:.0f} ms")
    return {"plan_ms": plan_ms}


def operate_loop(kubeconfig: str, prometheus_url: str, duration_s: float, tick_s: float) -> dict:
    """The operator's own planning loop for `duration_s`; every tick's start and duration."""
    import asyncio

    from aiscaler.handlers import operator as handlers
    from aiscaler.handlers.http import Health

    op = build_operator(kubeconfig, prometheus_url, tick_s)
    index: dict[None, list[dict]] = {None: op.kube.list(API_VERSION, "InferenceService")}
    stop = threading.Event()

    def refresh() -> None:  # kopf's index follows the API server through its watch
        while not stop.wait(5.0):
            index[None] = op.kube.list(API_VERSION, "InferenceService")

    ticks: list[tuple[float, float, int]] = []  # (start, seconds, writes)
    run_tick = handlers.run_tick

    def recorded(*args: Any) -> Any:
        started = time.monotonic()
        report = run_tick(*args)
        writes = len(report.resized) + report.status_writes + report.events
        ticks.append((started, time.monotonic() - started, writes))
        print(f"tick {len(ticks)}: {ticks[-1][1]:.2f}s, {writes} writes", flush=True)
        return report

    handlers.run_tick = recorded
    options = handlers.RunOptions(None, "bench", OPERATOR_NAMESPACE)

    async def run() -> None:
        loop = asyncio.create_task(
            handlers.planning_loop(op, Health(tick_s=tick_s), index, {}, options)
        )
        await asyncio.sleep(duration_s)
        loop.cancel()

    refresher = threading.Thread(target=refresh, daemon=True)
    refresher.start()
    asyncio.run(run())
    stop.set()
    close(op)
    starts = [start for start, _, _ in ticks]
    offsets = [start - (starts[0] + k * tick_s) for k, start in enumerate(starts)]
    # A skipped tick shows as an offset of a whole period; drift is what is left besides.
    skipped = round(offsets[-1] / tick_s) if offsets else 0
    drift = [o - tick_s * round(o / tick_s) for o in offsets]
    durations = sorted(seconds for _, seconds, _ in ticks)
    result = {
        "ticks": len(ticks),
        "skipped": skipped,
        "max_drift_s": max(abs(d) for d in drift),
        "last_drift_s": drift[-1],
        "tick_p50_s": statistics.median(durations),
        "tick_max_s": durations[-1],
        "peak_mb": memory_mb()["VmHWM"],
    }
    print(
        f"{len(ticks)} ticks in {duration_s:.0f}s, {skipped} skipped; start of each tick vs the "
        f"schedule: at most {result['max_drift_s'] * 1000:.0f} ms off, the last "
        f"{result['last_drift_s'] * 1000:+.0f} ms; tick p50 {result['tick_p50_s']:.2f}s, max "
        f"{result['tick_max_s']:.2f}s; {memory()}"
    )
    return result


# -- set-up --------------------------------------------------------------------------------------


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
            },
        },
    }


def service(name: str) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "replicas": {"min": 1, "max": 50},
            "demand": {"preset": "vllm", "selector": {"matchLabels": {"service": name}}},
            "capacity": {"perReplica": 5},
            "coldStart": {"seconds": 120},
        },
    }


def namespaces(count: int) -> list[str]:
    return ["bench"] if count == 1 else [f"bench-{i:04d}" for i in range(count)]


def history(keys: list[tuple[str, str]], end: float, seed: int = 0) -> list[Any]:
    """A daily-shaped request rate per service (1..40 req/s), as a counter every 30 s, for the
    six hours before `end`."""
    from harness.prometheus import Series

    rng = random.Random(seed)
    series = []
    first = end - HISTORY_S
    times = [first + i * STEP_S for i in range(int((end - first) // STEP_S) + 1)]
    for namespace, name in keys:
        base, phase = rng.uniform(1, 40), rng.uniform(0, 6.28)
        total, samples = 0.0, []
        for i, t in enumerate(times):
            if i:
                rate = base * (1 + 0.3 * math.sin(phase + t / 86400 * 2 * math.pi))
                total += rate * STEP_S
            samples.append((t, total))
        series.append(
            Series("vllm:request_success_total", {"namespace": namespace, "service": name}, samples)
        )
    return series


def create_objects(admin: Any, keys: list[tuple[str, str]]) -> None:
    def create(key: tuple[str, str]) -> None:
        namespace, name = key
        admin.request(
            "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=deployment(name)
        )
        admin.request(
            "POST",
            f"/apis/{API_VERSION}/namespaces/{namespace}/inferenceservices",
            body=service(name),
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, keys))


def delete_objects(admin: Any, spaces: list[str]) -> None:
    """Everything the previous operator run wrote to: custom resources, Deployments, events,
    the Lease."""

    def delete(namespace: str) -> None:
        for path in (
            f"/apis/{API_VERSION}/namespaces/{namespace}/inferenceservices",
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            f"/api/v1/namespaces/{namespace}/events",
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
        ):
            admin.request("DELETE", path)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(delete, sorted({*spaces, OPERATOR_NAMESPACE})))


def extract(rev: str, into: Path) -> Path:
    """The operator package and the shipped checkpoint of git revision `rev`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "operator", "model/checkpoint"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "operator"


def run_operator(package_root: Path, label: str, args: argparse.Namespace, urls: dict) -> dict:
    """The operator process of the code under `package_root`; its measurements."""
    print(f"\n== {label} ==", flush=True)
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    config = {**vars(args), **urls, "label": label, "json": None}  # label: tells them apart
    command = [sys.executable, __file__, "--operate", json.dumps(config)]
    process = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    result: dict = {}
    for line in process.stdout.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line.removeprefix(RESULT))
        else:
            print(line)
    if process.returncode or not result:
        raise SystemExit(f"the operator process of {label} failed (exit {process.returncode})")
    return result


# -- the report ----------------------------------------------------------------------------------


def writes(tick: dict) -> int:
    return int(tick["scales"] + tick["status"] + tick["events"])


def summary(result: dict) -> dict[str, float]:
    """The figures the targets are about, from one ticks-mode run. Steady ticks: those between
    the first and the last that wrote less than 1% of what the first wrote (the rate limits
    spread tick 1's scale-ups over the next tick or two)."""
    ticks = result["ticks"]
    middle = ticks[1:-1] or ticks
    steady = [t for t in middle if writes(t) < 0.01 * writes(ticks[0])] or middle
    out = {
        "steady tick s (max)": max(t["total_s"] for t in steady),
        "steady tick s (median)": statistics.median(t["total_s"] for t in steady),
        "steady measure s": statistics.median(t["measure"] for t in steady),
        "steady forecast s": statistics.median(t["forecast"] for t in steady),
        "steady plan s": statistics.median(t["plan"] for t in steady),
        "steady Prometheus points": statistics.median(t["points"] for t in steady),
        "start-up tick s": ticks[0]["total_s"],
        "changed tick s": ticks[-1]["total_s"],
        "peak RSS MB": result["peak_mb"],
    }
    for name, tick in (("start-up", ticks[0]), ("changed", ticks[-1]), ("steady", steady[-1])):
        cpu = tick["cpu_s"]
        out[f"{name} tick writes"] = writes(tick)
        out[f"{name} tick CPU s: operator"] = cpu["operator"]
        out[f"{name} tick CPU s: API server+etcd"] = cpu["apiserver"] + cpu["etcd"]
    for key, label in (
        ("network_ms", "1,000 series network ms"),
        ("forecast_ms", "1,000 series forecast ms"),
        ("plan_ms", "1,000 services plan ms"),
    ):
        if key in result:
            out[label] = result[key]
    return out


def verdicts(figures: dict[str, float]) -> list[str]:
    lines = []
    for name, target, what in (
        ("steady tick s (max)", STEADY_TICK_S, "steady tick < 2 s"),
        ("changed tick s", CHANGED_TICK_S, "tick with 1,000 changed services < 5 s"),
        ("start-up tick s", CHANGED_TICK_S, "start-up tick (whole history, 1,000 changes) < 5 s"),
        ("peak RSS MB", PEAK_RSS_MB, "peak RSS < 400 MB"),
        ("1,000 series network ms", INFERENCE_MS, "model inference for 1,000 series < 20 ms"),
    ):
        if name not in figures:
            continue
        value = figures[name]
        if value < target:
            lines.append(f"MET   {what}: {value:.2f} ({value / target:.0%} of the target)")
            continue
        lines.append(f"MISS  {what}: {value:.2f}, {value / target - 1:.0%} over")
        tick = name.split(" tick")[0]
        if tick in ("changed", "start-up"):  # where the tick's time went: CPU on the cores
            server = figures[f"{tick} tick CPU s: API server+etcd"]
            writes_ = figures[f"{tick} tick writes"]
            lines.append(
                f"      why: {writes_:.0f} writes; the API server and etcd, on the same "
                f"{os.cpu_count()} cores, used {server:.1f} CPU-s for them "
                f"({1000 * server / max(writes_, 1):.1f} ms each), the operator "
                f"{figures[f'{tick} tick CPU s: operator']:.1f} CPU-s for the whole tick"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=1, help="spread the services")
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--tick-seconds", type=float, default=30.0)
    parser.add_argument("--duration", type=float, help="loop mode: run the planning loop this long")
    parser.add_argument("--compare", metavar="REV", help="also measure the operator of this rev")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--operate", help=argparse.SUPPRESS)  # the operator process
    args = parser.parse_args()
    if args.operate:
        config = json.loads(args.operate)
        if config["duration"]:
            result = operate_loop(
                config["kubeconfig"],
                config["prometheus"],
                config["duration"],
                config["tick_seconds"],
            )
        else:
            result = operate_ticks(
                config["kubeconfig"],
                config["prometheus"],
                config["ticks"],
                config["tick_seconds"],
                config["components"],
            )
        print(RESULT + json.dumps(result))
        return 0

    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from harness.kube import KubeControlPlane
    from harness.prometheus import PrometheusServer

    from aiscaler.kube.client import KubeApi

    spaces = namespaces(args.namespaces)
    keys = [(spaces[i % len(spaces)], f"svc-{i:04d}") for i in range(args.services)]
    runs = 2 if args.compare else 1
    run_s = args.duration or args.ticks * args.tick_seconds
    with tempfile.TemporaryDirectory(prefix="aiscaler-bench-") as tmp:
        work = Path(tmp)
        plane = KubeControlPlane(work / "kube")
        prometheus = PrometheusServer(work / "prometheus")
        try:
            t0 = time.perf_counter()
            plane.start()
            plane.apply_crds(REPO / "crds")
            admin = KubeApi(plane.new_api_client())
            for namespace in sorted({*spaces, OPERATOR_NAMESPACE}):
                admin.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
            # The counters run on past the end of every run, so that each tick sees data as fresh
            # as a live scrape would give.
            prometheus.backfill(history(keys, time.time() + runs * (run_s + 300) + 600))
            prometheus.start()
            print(
                f"setup: {args.services} series backfilled and Prometheus started in "
                f"{time.perf_counter() - t0:.1f}s ({len(spaces)} namespaces)"
            )
            urls = {
                "kubeconfig": str(plane.kubeconfig),
                "prometheus": prometheus.url,
                "components": {
                    "apiserver": plane.apiserver.pid,
                    "etcd": plane.etcd.pid,
                    "prometheus": prometheus.process.pid,
                },
            }
            results = {}
            versions = [(args.compare, extract(args.compare, work))] if args.compare else []
            versions.append(("this tree", REPO / "operator"))
            for i, (label, root) in enumerate(versions):
                if i:
                    delete_objects(admin, spaces)
                create_objects(admin, keys)
                results[label] = run_operator(root, label, args, urls)
        finally:
            prometheus.stop()
            plane.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    report(results, args)
    return 0


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    print()
    if args.duration:
        for label, result in results.items():
            print(f"{label}: {json.dumps(result)}")
        return
    figures = {label: summary(result) for label, result in results.items()}
    labels = list(figures)
    print(f"{'figure':<32}" + "".join(f"{label:>14}" for label in labels))
    for name in figures[labels[-1]]:
        values = [figures[label].get(name) for label in labels]
        line = f"{name:<32}" + "".join(
            f"{v:14.2f}" if v is not None else f"{'-':>14}" for v in values
        )
        if len(labels) == 2 and values[0] and values[1] is not None:
            line += f"   ratio {values[1] / values[0]:.2f}"
        print(line)
    print(
        f"\nissue 16's targets (set for 1,000 services; this run: {args.services}), {labels[-1]}:"
    )
    for line in verdicts(figures[labels[-1]]):
        print("  " + line)


if __name__ == "__main__":
    sys.exit(main())
