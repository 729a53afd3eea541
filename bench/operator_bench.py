"""Operator scale: one planning tick over many InferenceServices.

Starts the real components of the integration tests (etcd + kube-apiserver built from source,
Debian's Prometheus), creates N Deployments and N InferenceServices (vLLM preset) in the API
server and six hours of request counters for each in Prometheus, then runs planning ticks
in-process exactly as the operator's loop does (bodies as the kopf index holds them, the real
KubeApi, PrometheusMetrics and default forecaster) and prints each tick's duration per stage
(observe, measure, forecast, plan, act) and the process' peak RSS.

    .venv/bin/python bench/operator_bench.py [--services 1000] [--ticks 3] [--namespaces 1]

Tick 1 writes everything (1,000 scales, statuses and events); later ticks find nothing to
change, which is the steady state. Times are wall-clock on this machine, with the API server,
etcd and Prometheus sharing its CPUs; no test asserts them.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness.kube import KubeControlPlane  # noqa: E402
from harness.prometheus import PrometheusServer, Series  # noqa: E402

from aiscaler.forecast import load_default_forecaster  # noqa: E402
from aiscaler.forecast.baselines import HoltWintersForecaster  # noqa: E402
from aiscaler.handlers.operator import use_one_compute_thread  # noqa: E402
from aiscaler.handlers.tick import Operator, run_tick  # noqa: E402
from aiscaler.kube.client import KubeApi, load_api_client  # noqa: E402
from aiscaler.metrics.prometheus import PrometheusMetrics  # noqa: E402
from aiscaler.settings import Settings  # noqa: E402

API_VERSION = "aiscaler.dev/v1alpha1"
OPERATOR_NAMESPACE = "bench"  # the operator's own (balloons: none here, no GPU pools)
HISTORY_S = 6 * 3600
STEP_S = 30


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


def history(keys: list[tuple[str, str]], end: float, seed: int = 0) -> list[Series]:
    """A daily-shaped request rate per service (1..40 req/s), as a counter every 30 s, for
    the six hours before `end`."""
    rng = random.Random(seed)
    series = []
    times = [end - HISTORY_S + i * STEP_S for i in range(HISTORY_S // STEP_S + 1)]
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


def memory_mb() -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS), RssAnon and RssFile of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def memory() -> str:
    """Resident set size of this process now and its peak (VmHWM); RssAnon is the part that is
    the process' own (RssFile: pages of shared libraries, shared with other processes)."""
    fields = memory_mb()
    return (
        f"RSS {fields['VmRSS']:.0f} MB (anon {fields['RssAnon']:.0f}, "
        f"file {fields['RssFile']:.0f}), peak RSS {fields['VmHWM']:.0f} MB"
    )


def operate(kubeconfig: str, prometheus_url: str, ticks: int, which: str) -> None:
    """What the operator process does: build its clients once, then run ticks."""
    print(f"operator process at start: {memory()}")
    if which == "default":
        forecaster, why = load_default_forecaster()
    else:
        forecaster, why = HoltWintersForecaster(), "holt_winters (asked for)"
    use_one_compute_thread()  # as build_operator does
    print(f"forecaster: {why}")
    print(f"operator process with its forecaster loaded (torch, if used): {memory()}")
    op = Operator(
        KubeApi(load_api_client(kubeconfig)),
        PrometheusMetrics(prometheus_url, timeout_s=30),
        forecaster,
        Settings(prometheus_url=prometheus_url),
        OPERATOR_NAMESPACE,
    )
    print(f"operator process before the first tick: {memory()}")
    print(
        "tick  total_s  observe  measure  forecast  plan  act   resized  status_writes  "
        "events  errors  rss_MB  peak_MB"
    )
    for i in range(1, ticks + 1):
        # What the kopf index holds: the custom resources as the API server has them.
        bodies = op.kube.list(API_VERSION, "InferenceService")
        started = time.perf_counter()
        report = run_tick(op, bodies, [], time.time())
        total = time.perf_counter() - started
        s, mem = report.seconds, memory_mb()
        print(
            f"{i:>4}  {total:7.2f}  {s.get('observe', 0):7.2f}  {s.get('measure', 0):7.2f}  "
            f"{s.get('forecast', 0):8.2f}  {s.get('plan', 0):4.2f}  {s.get('act', 0):5.2f}  "
            f"{len(report.resized):7d}  {report.status_writes:13d}  {report.events:6d}  "
            f"{len(report.errors):6d}  {mem['VmRSS']:6.0f}  {mem['VmHWM']:7.0f}"
        )
        for error in report.errors[:3]:
            print(f"      error: {error}")
    print(f"operator process after {ticks} ticks: {memory()}")
    op.metrics.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument(
        "--namespaces", type=int, default=1, help="spread the services over this many namespaces"
    )
    parser.add_argument(
        "--forecaster",
        choices=["default", "holt_winters"],
        default="default",
        help="default: what the operator loads (the shipped model when present)",
    )
    args = parser.parse_args()
    spaces = namespaces(args.namespaces)
    keys = [(spaces[i % len(spaces)], f"svc-{i:04d}") for i in range(args.services)]

    with tempfile.TemporaryDirectory(prefix="aiscaler-bench-") as tmp:
        work = Path(tmp)
        plane = KubeControlPlane(work / "kube")
        prometheus = PrometheusServer(work / "prometheus")
        try:
            t0 = time.perf_counter()
            plane.start()
            plane.apply_crds(REPO / "crds")
            admin = KubeApi(plane.new_api_client())

            def create_namespace(namespace: str) -> None:
                admin.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})

            def create(key: tuple[str, str]) -> None:
                namespace, name = key
                admin.request(
                    "POST",
                    f"/apis/apps/v1/namespaces/{namespace}/deployments",
                    body=deployment(name),
                )
                admin.request(
                    "POST",
                    f"/apis/{API_VERSION}/namespaces/{namespace}/inferenceservices",
                    body=service(name),
                )

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(create_namespace, spaces))
                list(pool.map(create, keys))
            t1 = time.perf_counter()
            # The counters run ten minutes into the future, so that the ticks below see data as
            # fresh as a live scrape would give (a rate() over a series that stopped drifts).
            prometheus.backfill(history(keys, time.time() + 600))
            prometheus.start()
            t2 = time.perf_counter()
            print(
                f"setup: {args.services} services created in {t1 - t0:.1f}s, "
                f"{args.services} series backfilled and Prometheus started in {t2 - t1:.1f}s "
                f"({len(spaces)} namespaces)"
            )

            # The operator runs in a process of its own, so that its peak RSS is its own and
            # not the set-up's.
            child = multiprocessing.get_context("spawn").Process(
                target=operate,
                args=(str(plane.kubeconfig), prometheus.url, args.ticks, args.forecaster),
            )
            child.start()
            child.join()
        finally:
            prometheus.stop()
            plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
