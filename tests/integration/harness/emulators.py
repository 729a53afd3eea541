"""What the local cluster lacks to close the loop: the workloads' metrics and the node autoscaler.

- `WorkloadEmulator`, one per served Deployment (what an InferenceService scales): vLLM's
  metrics for a demand given as requests/s per time bin (a trace), served by the Deployment's
  Ready pods as read from the API, `capacity` requests/s each, through `harness.serving`; and,
  for a workload behind an Ingress, ingress-nginx's request counter, which counts every request
  that arrives, served or not (what a service scaled to zero reads its demand from).
  Its series carry `namespace`, the engine labels given (e.g. `model_name`) and fixed `job` /
  `instance` labels, so that the history written before Prometheus starts (`history`) and the
  series scraped afterwards are one series.
- `NodeEmulator`, a cluster autoscaler for every GPU pool: when pods that request GPUs stay
  unschedulable and the pool's nodes (free GPUs first-fit) cannot hold them, it adds nodes after
  the pool's provisioning delay, up to maxNodes; a node with no pod for `idle_s` goes, down to
  minNodes.

`python -m harness.emulators --kubeconfig K --cluster C --workloads W --port P` runs both: the
metrics on 127.0.0.1:P, the workloads file re-read when it changes.
"""

from __future__ import annotations

import argparse
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    UnknownMetricFamily,
)

from aiscaler.core.nodes import nodes_needed
from aiscaler.kube.gpus import pod_gpu_request
from aiscaler.sim.state import TTFT_BUCKETS_S

from .prometheus import Series
from .serving import DECODE_S, PREFILL_S, Served, Serving

log = logging.getLogger("emulators")

GPU = "nvidia.com/gpu"
POOL_LABEL = "aiscaler.dev/local-pool"  # the pool a fake GPU node belongs to
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}  # kwok manages nodes that carry it
REQUESTED_FOR = "aiscaler.dev/requested-for"  # on a new node: the pending pods that asked for it
TOKENS_PER_REQUEST = 200  # generated tokens per request (vllm:generation_tokens_total)
# vLLM's bucket bounds of the e2e and queue-time histograms (vllm/v1/metrics/loggers.py).
REQUEST_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
HISTORY_STEP_S = 15.0  # spacing of the samples written as history
# ingress-nginx's request counter. Its Go client names it without `_total`, which
# prometheus_client writes for counters only, so it is exposed untyped, as Prometheus reads it.
INGRESS_REQUESTS = "nginx_ingress_controller_requests"


# -- workloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A Deployment's demand: `rates[i]` requests/s from `start + i * bin_s` (unix seconds); the
    first rate holds before the start, the last one after the end."""

    namespace: str
    deployment: str
    capacity: float  # requests/s one Ready replica serves
    start: float
    bin_s: float
    rates: tuple[float, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    ingress: str | None = None  # the Ingress in front of the Deployment, if any
    # Served by its Deployment's Ready pods; if not, by replicas enough for the demand (a
    # service that ran before its Deployment exists here), so its series has no gap.
    attached: bool = True

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Workload:
        rates = tuple(float(r) for r in raw["rates"])
        if not rates or min(rates) < 0 or not float(raw["capacity"]) > 0:
            raise ValueError(f"workload {raw.get('deployment')}: need rates >= 0 and capacity > 0")
        return cls(
            namespace=str(raw["namespace"]),
            deployment=str(raw["deployment"]),
            capacity=float(raw["capacity"]),
            start=float(raw["start"]),
            bin_s=float(raw["binSeconds"]),
            rates=rates,
            labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
            ingress=raw.get("ingress"),
            attached=bool(raw.get("attached", True)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "capacity": self.capacity,
            "start": self.start,
            "binSeconds": self.bin_s,
            "rates": list(self.rates),
            "labels": dict(self.labels),
            "ingress": self.ingress,
            "attached": self.attached,
        }

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.deployment}"

    @property
    def end(self) -> float:
        return self.start + self.bin_s * len(self.rates)

    def rate_at(self, t: float) -> float:
        i = math.floor((t - self.start) / self.bin_s)
        return self.rates[min(max(i, 0), len(self.rates) - 1)]

    def arrivals(self, t0: float, t1: float) -> float:
        """Requests arriving in [t0, t1]: the integral of the piecewise constant rate."""
        return self._arrived(t1) - self._arrived(t0)

    def _arrived(self, t: float) -> float:
        """Requests arrived from `start` to `t` (negative before the start)."""
        if t <= self.start:
            return self.rates[0] * (t - self.start)
        i = min(math.floor((t - self.start) / self.bin_s), len(self.rates) - 1)
        return sum(self.rates[:i]) * self.bin_s + self.rates[i] * (t - self.start - i * self.bin_s)


def read_workloads(path: Path) -> list[Workload]:
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text()) or {}
    return [Workload.from_dict(w) for w in raw.get("workloads") or []]


def write_workloads(path: Path, workloads: Iterable[Workload]) -> None:
    # Written whole then renamed, so the emulator never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"workloads": [w.to_dict() for w in workloads]}))
    tmp.replace(path)


class _Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0.0] * (len(self.bounds) + 1)  # per bucket, the last one +Inf
        self.sum = 0.0

    def observe(self, value: float, weight: float) -> None:
        i = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[i] += weight
        self.sum += value * weight

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0.0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class WorkloadEmulator:
    """One served Deployment's engine metrics, advanced with the Ready replicas it has."""

    def __init__(self, workload: Workload, now: float) -> None:
        self.workload = workload
        self.serving = Serving()
        self.t = min(now, workload.start)
        self.ready = 0
        self.arrived = 0.0
        self.requests = 0.0
        self.running = 0.0
        self.waiting = 0.0
        self.ttft = _Histogram(TTFT_BUCKETS_S)
        self.e2e = _Histogram(REQUEST_BUCKETS)
        self.queue = _Histogram(REQUEST_BUCKETS)

    def advance(self, now: float, ready: int) -> None:
        """Serve what arrived since the last call with `ready` replicas."""
        if now <= self.t:
            return
        arrivals = self.workload.arrivals(self.t, now)
        self.arrived += arrivals
        self._record(self.serving.step(arrivals, ready, self.workload.capacity, now - self.t))
        self.ready, self.t = ready, now

    def catch_up(self, until: float) -> Iterator[float]:
        """Advance to `until` in HISTORY_STEP_S steps with replicas enough for the demand (a
        service that ran before the emulation started); yields each step's time."""
        while self.t + HISTORY_STEP_S <= until:
            t = self.t + HISTORY_STEP_S
            self.advance(t, self.enough_replicas(t))
            yield t

    def enough_replicas(self, until: float) -> int:
        """Replicas that serve the demand from now to `until` without a queue."""
        peak = max(self.workload.rate_at(self.t), self.workload.rate_at(until))
        return math.ceil(peak / self.workload.capacity) + 1

    def _record(self, served: Served) -> None:
        self.requests += served.finished
        self.running, self.waiting = served.running, served.waiting
        for wait, count in served.waits:
            self.queue.observe(wait, count)
            self.ttft.observe(wait + PREFILL_S, count)
            self.e2e.observe(wait + PREFILL_S + DECODE_S, count)

    def labels(self) -> dict[str, str]:
        w = self.workload
        return {
            "job": "vllm",
            "instance": f"{w.deployment}.{w.namespace}",
            "namespace": w.namespace,
            **w.labels,
        }

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of the engine's metrics now: (name, labels, value)."""
        labels = self.labels()
        out = [
            ("vllm:num_requests_running", labels, self.running),
            ("vllm:num_requests_waiting", labels, self.waiting),
            ("vllm:request_success_total", {**labels, "finished_reason": "stop"}, self.requests),
            ("vllm:generation_tokens_total", labels, self.requests * TOKENS_PER_REQUEST),
        ]
        for name, histogram in zip(HISTOGRAMS, (self.ttft, self.e2e, self.queue), strict=True):
            for bound, count in histogram.cumulative():
                out.append((f"{name}_bucket", {**labels, "le": bound}, count))
            out.append((f"{name}_sum", labels, histogram.sum))
            out.append((f"{name}_count", labels, histogram.cumulative()[-1][1]))
        if self.workload.ingress:
            out.append((INGRESS_REQUESTS, self.ingress_labels(), self.arrived))
        return out

    def ingress_labels(self) -> dict[str, str]:
        w = self.workload
        return {
            "job": "ingress-nginx",
            "instance": "ingress-nginx-controller",
            "namespace": w.namespace,
            "ingress": str(w.ingress),
            "service": w.deployment,
            "status": "200",
        }


def history(workloads: Iterable[Workload], until: float) -> list[Series]:
    """The series the workloads' engines would have exposed from their start until `until`,
    sampled every HISTORY_STEP_S with replicas enough for the demand (for promtool backfill)."""
    points: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}
    for workload in workloads:
        emulator = WorkloadEmulator(workload, workload.start)
        for t in emulator.catch_up(until):
            for name, labels, value in emulator.samples():
                points.setdefault((name, tuple(sorted(labels.items()))), []).append((t, value))
    return [Series(name, dict(labels), samples) for (name, labels), samples in points.items()]


HISTOGRAMS = (
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
)


class WorkloadCollector:
    """prometheus_client collector over the emulators: their samples in typed families."""

    def __init__(self, emulators: Mapping[str, WorkloadEmulator], lock: threading.Lock) -> None:
        self.emulators = emulators
        self.lock = lock

    def collect(self) -> Iterator[Any]:
        with self.lock:
            samples = [s for e in self.emulators.values() for s in e.samples()]
        families: dict[str, Any] = {}
        for name, labels, value in samples:
            base = next((h for h in HISTOGRAMS if name.startswith(h + "_")), None)
            if base is not None:
                family = families.setdefault(base, HistogramMetricFamily(base, "vLLM latency"))
            elif name == INGRESS_REQUESTS:
                family = families.setdefault(name, UnknownMetricFamily(name, "ingress requests"))
            elif name.endswith("_total"):
                base = name.removesuffix("_total")
                family = families.setdefault(base, CounterMetricFamily(base, "vLLM counter"))
            else:
                family = families.setdefault(name, GaugeMetricFamily(name, "vLLM gauge"))
            family.add_sample(name, labels, value)
        yield from families.values()


def ready_pods(core: client.CoreV1Api, apps: client.AppsV1Api, workload: Workload) -> int:
    """Pods of the Deployment that are Ready and not being deleted (0 if it does not exist)."""
    try:
        deployment = apps.read_namespaced_deployment(workload.deployment, workload.namespace)
    except client.ApiException as error:
        if error.status == 404:
            return 0
        raise
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
    pods = core.list_namespaced_pod(workload.namespace, label_selector=selector).items
    return sum(
        1
        for pod in pods
        if pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    )


# -- nodes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """A GPU pool of the local cluster (the chart's pool values, plus the fake node's shape)."""

    name: str
    gpu_type: str
    gpus_per_node: int
    node_selector: Mapping[str, str]
    min_nodes: int
    max_nodes: int
    provisioning_s: float
    cpu: str
    memory: str

    @classmethod
    def from_values(cls, raw: Mapping[str, Any], shape: Mapping[str, str]) -> Pool:
        return cls(
            name=raw["name"],
            gpu_type=raw["gpuType"],
            gpus_per_node=int(raw["gpusPerNode"]),
            node_selector=dict(raw.get("nodeSelector") or {}),
            min_nodes=int(raw.get("minNodes", 0)),
            max_nodes=int(raw["maxNodes"]),
            provisioning_s=float(raw.get("provisioningSeconds", 0)),
            cpu=shape["cpu"],
            memory=shape["memory"],
        )

    def node_labels(self, name: str) -> dict[str, str]:
        return {
            **self.node_selector,
            "nvidia.com/gpu.product": self.gpu_type,
            POOL_LABEL: self.name,
            "kubernetes.io/hostname": name,
            "type": "kwok",
        }

    def fits(self, pod: Mapping[str, Any]) -> bool:
        """A node of this pool could run the pod (its node selector, its GPUs)."""
        spec = pod.get("spec") or {}
        labels = self.node_labels("any")
        selector = spec.get("nodeSelector") or {}
        gpus = pod_gpu_request(pod, GPU)
        return 0 < gpus <= self.gpus_per_node and all(
            labels.get(k) == v for k, v in selector.items()
        )


def fake_node(
    name: str,
    labels: Mapping[str, str],
    cpu: str,
    memory: str,
    gpus: int,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        resources[GPU] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": dict(labels),
            "annotations": {**KWOK_ANNOTATION, **(annotations or {})},
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def _unschedulable(pod: Mapping[str, Any]) -> bool:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or spec.get("nodeName") or status.get("phase") != "Pending":
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


@dataclass
class _Provisioning:
    ready_at: float
    requested_for: tuple[str, ...]


class NodeEmulator:
    """A cluster autoscaler for every pool, over the Node and Pod objects of the API."""

    def __init__(self, core: client.CoreV1Api, pools: Sequence[Pool], idle_s: float) -> None:
        self.core = core
        self.pools = list(pools)
        self.idle_s = idle_s
        self.provisioning: dict[str, list[_Provisioning]] = {p.name: [] for p in pools}
        self.empty_since: dict[str, float] = {}
        self.serial = 0

    def tick(self, now: float) -> None:
        api = self.core.api_client
        nodes = api.sanitize_for_serialization(self.core.list_node().items)
        pods = api.sanitize_for_serialization(self.core.list_pod_for_all_namespaces().items)
        bound: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                bound.setdefault(node, []).append(pod)
        pending = [p for p in pods if _unschedulable(p)]
        for pool in self.pools:
            mine = [n for n in nodes if n["metadata"]["labels"].get(POOL_LABEL) == pool.name]
            self._scale_up(pool, mine, bound, [p for p in pending if pool.fits(p)], now)
            self._scale_down(pool, mine, bound, now)

    def _scale_up(
        self,
        pool: Pool,
        nodes: list[dict[str, Any]],
        bound: Mapping[str, list[dict[str, Any]]],
        pending: list[dict[str, Any]],
        now: float,
    ) -> None:
        in_flight = self.provisioning[pool.name]
        for due in [p for p in in_flight if p.ready_at <= now]:
            in_flight.remove(due)
            nodes.append(self._add_node(pool, due.requested_for))
        # What the pool's nodes (and those on their way) cannot hold, first-fit by GPUs.
        free = [
            pool.gpus_per_node
            - sum(pod_gpu_request(p, GPU) for p in bound.get(n["metadata"]["name"], []))
            for n in nodes
        ] + [pool.gpus_per_node] * len(in_flight)
        left: list[dict[str, Any]] = []
        for pod in sorted(pending, key=lambda p: -pod_gpu_request(p, GPU)):
            size = pod_gpu_request(pod, GPU)
            slot = next((i for i, f in enumerate(free) if f >= size), None)
            if slot is None:
                left.append(pod)
            else:
                free[slot] -= size
        needed = nodes_needed([pod_gpu_request(p, GPU) for p in left], pool.gpus_per_node)
        room = pool.max_nodes - len(nodes) - len(in_flight)
        for _ in range(min(needed, room)):
            names = tuple(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in left)
            in_flight.append(_Provisioning(now + pool.provisioning_s, names))
            log.info("pool %s: node requested for %s", pool.name, ", ".join(names))

    def _add_node(self, pool: Pool, requested_for: Sequence[str]) -> dict[str, Any]:
        self.serial += 1
        name = f"{pool.name}-{int(time.time())}-{self.serial}"
        node = fake_node(
            name,
            pool.node_labels(name),
            pool.cpu,
            pool.memory,
            pool.gpus_per_node,
            {REQUESTED_FOR: ",".join(requested_for)},
        )
        self.core.create_node(node)
        log.info("pool %s: node %s added", pool.name, name)
        return node

    def _scale_down(
        self,
        pool: Pool,
        nodes: list[dict[str, Any]],
        bound: Mapping[str, list[dict[str, Any]]],
        now: float,
    ) -> None:
        count = len(nodes)
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"], reverse=True):
            name = node["metadata"]["name"]
            if bound.get(name):
                self.empty_since.pop(name, None)
                continue
            since = self.empty_since.setdefault(name, now)
            if now - since >= self.idle_s and count > pool.min_nodes:
                self.core.delete_node(name)
                self.empty_since.pop(name, None)
                count -= 1
                log.info("pool %s: empty node %s removed", pool.name, name)


# -- the process ---------------------------------------------------------------------------------


def serve_text_format(registry: CollectorRegistry, port: int) -> None:
    """/metrics in Prometheus' text format on 127.0.0.1:port, whatever the scraper asks for:
    prometheus_client answers an OpenMetrics request with names escaped (`vllm:x` becomes
    `vllm_x`), while vLLM's own endpoint shows the colon names the presets query."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve(
    kubeconfig: Path, pools: Sequence[Pool], idle_s: float, workloads_file: Path, port: int
) -> None:
    """Run both emulators until killed: a loop a second."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    nodes = NodeEmulator(core, pools, idle_s)
    emulators: dict[str, WorkloadEmulator] = {}
    lock = threading.Lock()
    registry = CollectorRegistry()
    registry.register(WorkloadCollector(emulators, lock))  # type: ignore[arg-type]
    serve_text_format(registry, port)
    seen_mtime = -1.0
    while True:
        now = time.time()
        mtime = workloads_file.stat().st_mtime if workloads_file.exists() else 0.0
        if mtime != seen_mtime:
            seen_mtime = mtime
            with lock:
                for workload in read_workloads(workloads_file):
                    known = emulators.get(workload.key)
                    if known is None:
                        emulators[workload.key] = known = WorkloadEmulator(workload, now)
                        for _ in known.catch_up(now):
                            pass
                    known.workload = workload
        for emulator in list(emulators.values()):
            if not emulator.workload.attached:
                with lock:
                    emulator.advance(now, emulator.enough_replicas(now))
                continue
            try:
                ready = ready_pods(core, apps, emulator.workload)
            except client.ApiException as error:
                log.warning("%s: %s", emulator.workload.key, error.reason)
                continue
            with lock:
                emulator.advance(now, ready)
        try:
            nodes.tick(now)
        except client.ApiException as error:
            log.warning("node emulator: %s", error.reason)
        time.sleep(max(0.0, 1.0 - (time.time() - now)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--cluster", type=Path, required=True, help="the cluster's YAML config")
    parser.add_argument("--workloads", type=Path, required=True, help="workloads YAML (watched)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from .cluster import ClusterConfig

    cluster = ClusterConfig.load(args.cluster)
    serve(args.kubeconfig, cluster.pools, cluster.node_idle_s, args.workloads, args.port)


if __name__ == "__main__":
    main()
