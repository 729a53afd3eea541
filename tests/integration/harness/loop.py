"""The closed loop on the local cluster, shared by tests/e2e and `make demo`: install the chart,
apply the examples (with what they expect to find), replay a demand, and record a timeline of
what the cluster and the operator did.

Time in the local cluster is compressed (hack/local-cluster.yaml): the examples' own times
(cold start 300 s, stabilisation 600 s, resize cooldown 900 s) are patched to the cluster's
scale by `COMPRESSED` after they are applied as they are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client

from aiscaler.sim.state import TTFT_BUCKETS_S

from .cluster import LocalCluster
from .components import REPO_ROOT
from .emulators import REQUESTED_FOR, Workload
from .helm import NAMESPACE, Helm
from .kube import load_manifests

EXAMPLES = REPO_ROOT / "examples"
CHART_CRDS = REPO_ROOT / "charts" / "aiscaler" / "crds"
API = "aiscaler.dev/v1alpha1"
LLAMA = ("inference", "llama-3-70b")  # the flagship example: a vLLM Deployment scaled by aiscaler
# The scale-to-zero example: a Deployment aiscaler owns, behind an Ingress of the same name.
ASSISTANT = ("inference", "qwen-assistant")
LLAMA_MODEL = "meta-llama/Llama-3.1-70B-Instruct"
TRAINING = ("ml-training", "llm-pretrain")
BALLOON_LABEL = "aiscaler.dev/balloon-pool"


def install_chart(cluster: LocalCluster, helm: Helm, *args: str) -> str:
    """`helm upgrade --install` with the cluster's pools, tick and Prometheus, then wait until
    the chart's CRDs are served; returns helm's output (NOTES included)."""
    values = cluster.workdir / "cluster-values.yaml"
    values.write_text(yaml.safe_dump(cluster.config.helm_values(cluster.prometheus.url)))
    output = helm.install("-f", str(values), *args)
    cluster.plane.wait_served(crd.stem for crd in CHART_CRDS.glob("*.yaml"))
    return output


def compressed(cluster: LocalCluster) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Merge patches that put the examples' times on the local cluster's scale."""
    cold = round(cluster.config.cold_start_s)
    return {
        ("InferenceService", *LLAMA): {
            "spec": {
                "coldStart": {"seconds": cold},
                "policy": {
                    "scaleUp": {"periodSeconds": 10},
                    "scaleDown": {"stabilizationWindowSeconds": 60, "periodSeconds": 15},
                },
            }
        },
        ("InferenceService", "inference", "qwen-assistant"): {
            "spec": {
                "coldStart": {"seconds": cold},
                "policy": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            }
        },
        ("TrainingJob", *TRAINING): {"spec": {"resize": {"cooldownSeconds": 30}}},
    }


def prerequisites(cluster: LocalCluster) -> list[dict[str, Any]]:
    """What the examples expect to exist: their namespaces, the vLLM Deployment the flagship
    example scales (as the vLLM Helm chart would make it, on the h100 pool), the claims their
    pods mount (bound to local volumes) and the Hugging Face token Secret."""
    [h100] = [p for p in cluster.config.pools if p.name == "h100"]
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        for ns in ("inference", "ml-training")
    ]
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": LLAMA[1], "namespace": LLAMA[0]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": LLAMA[1]}},
                "template": {
                    "metadata": {"labels": {"app": LLAMA[1]}},
                    "spec": {
                        "nodeSelector": dict(h100.node_selector),
                        "containers": [
                            {
                                "name": "vllm",
                                "image": "vllm/vllm-openai:v0.11.0",
                                "args": [f"--model={LLAMA_MODEL}", "--tensor-parallel-size=4"],
                                "resources": {
                                    "limits": {"nvidia.com/gpu": "4"},
                                    "requests": {"cpu": "32", "memory": "320Gi"},
                                },
                            }
                        ],
                    },
                },
            },
        }
    )
    for namespace, claim in (
        ("ml-training", "llm-pretrain-checkpoints"),
        ("inference", "hf-cache"),
    ):
        volume = f"{namespace}-{claim}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "10Ti"},
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "hostPath": {"path": f"/tmp/{volume}"},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "1Ti"}},
                },
            }
        )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "huggingface", "namespace": "inference"},
            "stringData": {"token": "hf_local_cluster"},
        }
    )
    return docs


def apply_examples(cluster: LocalCluster) -> list[tuple[str, str, str]]:
    """Create the prerequisites, then every manifest in examples/ as `kubectl create` would
    (strict), then the compressed-time patches. Returns (kind, namespace, name) of each example
    object."""
    plane = cluster.plane
    for doc in prerequisites(cluster):
        plane.create(doc)
    created = []
    for doc in load_manifests(sorted(EXAMPLES.glob("*.yaml"))):
        plane.create(doc)
        created.append((doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]))
    custom = client.CustomObjectsApi(plane.api_client)
    for (kind, namespace, name), patch in compressed(cluster).items():
        custom.patch_namespaced_custom_object(
            "aiscaler.dev", "v1alpha1", namespace, plural(kind), name, patch
        )
    return created


def wait_ready(cluster: LocalCluster, replicas: int, timeout: float = 120.0) -> None:
    """Scale the flagship example's vLLM Deployment to `replicas` (the size it had before
    aiscaler) and wait until they are Ready."""
    apps = client.AppsV1Api(cluster.plane.api_client)
    apps.patch_namespaced_deployment_scale(LLAMA[1], LLAMA[0], {"spec": {"replicas": replicas}})
    deadline = time.monotonic() + timeout
    while (
        apps.read_namespaced_deployment(LLAMA[1], LLAMA[0]).status.ready_replicas or 0
    ) < replicas:
        if time.monotonic() > deadline:
            raise AssertionError(f"{LLAMA[1]}: fewer than {replicas} Ready pods after {timeout}s")
        time.sleep(1)


def plural(kind: str) -> str:
    return {"InferenceService": "inferenceservices", "TrainingJob": "trainingjobs"}[kind]


def replay_at(history: Workload, at: float, rates: Sequence[float]) -> Workload:
    """`history`'s workload, whose rates become `rates` (bins of `history.bin_s`) from the
    first bin boundary at or after `at`; it keeps its last rate until then."""
    bins = math.ceil((at - history.start) / history.bin_s)
    before = [history.rate_at(history.start + (i + 0.5) * history.bin_s) for i in range(bins)]
    return replace(history, rates=(*before, *rates))


def example_service_spec(file: str) -> dict[str, Any]:
    """The spec of the InferenceService in examples/`file`."""
    [spec] = [
        d["spec"] for d in load_manifests([EXAMPLES / file]) if d["kind"] == "InferenceService"
    ]
    return dict(spec)


def llama_workload(start: float, bin_s: float, rates: Sequence[float]) -> Workload:
    """The flagship example's vLLM Deployment; a replica serves its `capacity.perReplica`."""
    spec = example_service_spec("inferenceservice-vllm-h100.yaml")
    return Workload(
        namespace=LLAMA[0],
        deployment=LLAMA[1],
        capacity=float(spec["capacity"]["perReplica"]),
        start=start,
        bin_s=bin_s,
        rates=tuple(rates),
        labels=spec["demand"]["selector"]["matchLabels"],
    )


def idle_assistant_workload(start: float, bin_s: float) -> Workload:
    """The scale-to-zero example at night: nobody comes, and the ingress counts no request."""
    spec = example_service_spec("inferenceservice-owned-scale-to-zero.yaml")
    return Workload(
        namespace=ASSISTANT[0],
        deployment=ASSISTANT[1],
        capacity=float(spec["capacity"]["perReplica"]),
        start=start,
        bin_s=bin_s,
        rates=(0.0,),
        labels={"model_name": "Qwen/Qwen2.5-7B-Instruct"},
        ingress=ASSISTANT[1],
    )


# -- the timeline --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    t: float  # unix seconds
    demand: float  # requests/s arriving (the workload's rate now)
    served: float | None  # requests/s finished, as Prometheus shows it (1m rate)
    forecast: float | None  # the service's forecast at its lead time (status)
    desired: int | None  # replicas aiscaler wants (status)
    ready: int  # Ready pods of the Deployment
    pods: int  # pods of the Deployment, Ready or not (Pending included)
    pending: int  # of which not bound to a node
    workers: int  # training workers: pods of the training Job
    nodes: dict[str, int]  # GPU nodes per pool
    balloons: int  # balloon pods (any phase)
    # GPU nodes there now that the node emulator added for a pending balloon pod (a node is
    # recorded while it exists: one emptied after the drop is removed before the run ends).
    balloon_nodes: tuple[str, ...]
    attainment: float | None  # share of the last minute's requests within the TTFT target


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)

    def at(self, t: float) -> Sample:
        return min(self.samples, key=lambda s: abs(s.t - t))

    def between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]


def ttft_bound(target_s: float) -> float:
    """The largest TTFT bucket bound within the target: requests counted as on time surely are."""
    return max(b for b in TTFT_BUCKETS_S if b <= target_s)


class Recorder:
    """Samples the loop: the API (pods, nodes, status) and Prometheus (served, attainment)."""

    def __init__(self, cluster: LocalCluster, workload: Workload, ttft_target_s: float) -> None:
        self.cluster = cluster
        self.workload = workload
        self.bound = ttft_bound(ttft_target_s)
        api = cluster.plane.api_client
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def sample(self) -> Sample:
        now = time.time()
        namespace, name = LLAMA
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"app={name}").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        try:
            status = self.custom.get_namespaced_custom_object(
                "aiscaler.dev", "v1alpha1", namespace, "inferenceservices", name
            ).get("status", {})
        except client.ApiException:
            status = {}
        workers = self.core.list_namespaced_pod(
            TRAINING[0], label_selector=f"job-name={TRAINING[1]}"
        ).items
        nodes = self.core.list_node().items
        per_pool: dict[str, int] = {}
        for node in nodes:
            pool = (node.metadata.labels or {}).get("aiscaler.dev/local-pool")
            if pool:
                per_pool[pool] = per_pool.get(pool, 0) + 1
        balloons = self.core.list_namespaced_pod(NAMESPACE, label_selector=BALLOON_LABEL).items
        selector = f'namespace="{namespace}"'
        served = self.query(f"sum(rate(vllm:request_success_total{{{selector}}}[1m]))")
        on_time = self.query(
            f'sum(increase(vllm:time_to_first_token_seconds_bucket{{{selector},le="{self.bound}"}}[1m]))'
        )
        total = self.query(
            f"sum(increase(vllm:time_to_first_token_seconds_count{{{selector}}}[1m]))"
        )
        forecast = (status.get("forecast") or {}).get("value")
        return Sample(
            t=now,
            demand=self.workload.rate_at(now),
            served=served,
            forecast=float(forecast) if forecast is not None else None,
            desired=status.get("desiredReplicas"),
            ready=sum(1 for p in live if _ready(p)),
            pods=len(live),
            pending=sum(1 for p in live if not p.spec.node_name),
            workers=sum(1 for p in workers if p.metadata.deletion_timestamp is None),
            nodes=per_pool,
            balloons=len(balloons),
            balloon_nodes=tuple(n.metadata.name for n in nodes if _requested_by_balloon(n)),
            attainment=on_time / total if on_time is not None and total else None,
        )

    def results(self, promql: str) -> list[Any]:
        """Prometheus' answer to an instant query now (an error if it refuses the query)."""
        answer = requests.get(
            f"{self.cluster.prometheus.url}/api/v1/query", params={"query": promql}, timeout=10
        ).json()
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused {promql!r}: {answer}")
        return list(answer["data"]["result"])

    def query(self, promql: str) -> float | None:
        """The first value of the answer, None when there is none (or it is not finite)."""
        result = self.results(promql)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def attainment_since(self, start: float) -> float:
        """Share of the requests finished since `start` whose TTFT was within the target."""
        window = f"{math.ceil(time.time() - start)}s"
        selector = f'namespace="{LLAMA[0]}"'
        name = "vllm:time_to_first_token_seconds"
        on_time = self.query(
            f'sum(increase({name}_bucket{{{selector},le="{self.bound}"}}[{window}]))'
        )
        total = self.query(f"sum(increase({name}_count{{{selector}}}[{window}]))")
        if on_time is None or not total:
            raise AssertionError("no TTFT histogram in Prometheus")
        return on_time / total

    def record(
        self, until: float, every_s: float, on_sample: Callable[[Sample], None] | None = None
    ) -> Iterator[Sample]:
        while time.time() < until:
            started = time.time()
            sample = self.sample()
            if on_sample is not None:
                on_sample(sample)
            yield sample
            time.sleep(max(0.0, every_s - (time.time() - started)))


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _requested_by_balloon(node: Any) -> bool:
    asked = (node.metadata.annotations or {}).get(REQUESTED_FOR, "")
    return any(pod.startswith(f"{NAMESPACE}/aiscaler-balloon-") for pod in asked.split(","))


def timeline_table(samples: Sequence[Sample], start: float) -> Iterator[str]:
    """The timeline as text rows (the demo prints them as they come)."""
    yield (
        "   t  demand  served  forecast  desired  ready  pods  workers  nodes(h100)  balloons  "
        "attainment"
    )
    for s in samples:
        yield timeline_row(s, start)


def timeline_row(s: Sample, start: float) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return (
        f"{s.t - start:4.0f}  {s.demand:6.1f}  {num(s.served, '6.1f')}  {num(s.forecast, '8.1f')}"
        f"  {num(s.desired, '7d')}  {s.ready:5d}  {s.pods:4d}  {s.workers:7d}"
        f"  {s.nodes.get('h100', 0):11d}  {s.balloons:8d}  {num(s.attainment, '10.3f')}"
    )


def write_plot(samples: Sequence[Sample], start: float, path: Path, title: str) -> None:
    """Demand, forecast and capacity (ready x capacity) over time, with nodes and attainment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [(s.t - start) / 60 for s in samples]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    top.plot(t, [s.demand for s in samples], label="demand (req/s)", color="black")
    top.plot(t, [s.forecast for s in samples], label="forecast at lead time", linestyle="--")
    top.plot(t, [s.served for s in samples], label="served (Prometheus, 1m)", alpha=0.7)
    top.set_ylabel("requests/s")
    top.legend(loc="upper left")
    middle.step(t, [s.desired for s in samples], label="desired replicas", where="post")
    middle.step(t, [s.ready for s in samples], label="ready replicas", where="post")
    middle.step(t, [s.workers for s in samples], label="training workers", where="post")
    middle.step(t, [s.nodes.get("h100", 0) for s in samples], label="h100 nodes", where="post")
    middle.step(t, [s.balloons for s in samples], label="balloon pods", where="post", alpha=0.6)
    middle.legend(loc="upper left")
    bottom.plot(t, [s.attainment for s in samples], label="TTFT attainment (1m)", color="green")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("minutes")
    bottom.legend(loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
